"""Linux inotify read by one thread that hands each event straight to its handler: a save reaches
the watcher without passing through watchdog's reader, dispatcher, emitter and observer threads
(and its coalescing of reads that come less than a millisecond apart). It offers the part of
watchdog's observer interface the watcher uses, and watchdog's event classes. Depends on
nothing in pyplantd.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from watchdog import events

_IN_MODIFY = 0x2
_IN_CLOSE_WRITE = 0x8
_IN_MOVED_FROM = 0x40
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x1000000
_IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_MASK = (
    _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE
    | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR
)  # fmt: skip
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, length of the name that follows
_READ_SIZE = 1 << 16
# A rename shows as a moved-from and a moved-to event, queued together by the kernel; one
# that ends a read waits this long at most for its pair in the next one.
_PAIR_WAIT_MS = 10


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    return libc if hasattr(libc, "inotify_init1") else None


_LIBC = _libc()


def available() -> bool:
    """Whether this system has inotify (Linux)."""
    return _LIBC is not None


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
    return result


@dataclass(eq=False)
class FolderWatch:
    """One watched folder (watchdog's ObservedWatch and emitter in one): the events of its
    files go to `handler`; dead once the folder is gone (deleted, unmounted)."""

    path: str
    handler: events.FileSystemEventHandler
    kinds: tuple[type[events.FileSystemEvent], ...]
    wd: int
    alive: bool = True

    @property
    def watch(self) -> FolderWatch:
        return self

    def is_alive(self) -> bool:
        return self.alive


@dataclass
class _Pending:
    """What the reader thread has read but not handed on yet (see InotifyObserver.event_queue)."""

    count: int = 0
    fd: int = -1

    def empty(self) -> bool:
        """No event read and waiting, none in the kernel's queue."""
        if self.count:
            return False
        return not _readable(self.fd, 0)


@dataclass
class InotifyObserver:
    """Watches folders through one inotify descriptor; `on_overflow` is called when the
    kernel's event queue overflowed (events were lost)."""

    on_overflow: Callable[[], None] = lambda: None
    _watches: dict[int, FolderWatch] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _fd: int = -1
    _wake: tuple[int, int] | None = None
    event_queue: _Pending = field(default_factory=_Pending)

    def __post_init__(self) -> None:
        if _LIBC is None:
            raise OSError(errno.ENOSYS, "inotify is not available on this system")
        self._fd = _check(_LIBC.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC), "inotify_init1")
        self.event_queue.fd = self._fd
        self._wake = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    # -- the parts of watchdog's BaseObserver the watcher uses ------------------------------
    @property
    def emitters(self) -> list[FolderWatch]:
        with self._lock:
            return list(self._watches.values())

    @property
    def ident(self) -> int | None:
        return self._thread.ident if self._thread is not None else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pyplantd-inotify", daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Ask the reader thread to end (it closes the descriptors); idempotent."""
        if self._thread is None:
            self._close()
            return
        with self._lock:  # not closed meanwhile by the thread (its number could be reused)
            if self._wake is not None:
                os.write(self._wake[1], b"x")

    def _close(self) -> None:
        with self._lock:
            wake, self._wake = self._wake, None
        if wake is not None:
            for fd in (self._fd, *wake):
                os.close(fd)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def schedule(
        self,
        handler: events.FileSystemEventHandler,
        path: str,
        recursive: bool = False,
        event_filter: Iterable[type[events.FileSystemEvent]] | None = None,
    ) -> FolderWatch:
        """Watch the files directly in folder `path` (never recursively)."""
        assert _LIBC is not None
        wd = _check(_LIBC.inotify_add_watch(self._fd, os.fsencode(path), _MASK), path)
        kinds = tuple(event_filter) if event_filter is not None else (events.FileSystemEvent,)
        watch = FolderWatch(path, handler, kinds, wd)
        with self._lock:
            self._watches[wd] = watch  # the same folder twice: one wd, the later handler
        return watch

    def unschedule(self, watch: FolderWatch) -> None:
        """Stop watching; KeyError if not watched (any more)."""
        with self._lock:
            if self._watches.get(watch.wd) is not watch:
                raise KeyError(watch.path)
            del self._watches[watch.wd]
        assert _LIBC is not None
        _LIBC.inotify_rm_watch(self._fd, watch.wd)  # fails only if the folder went already

    # -- the reader thread ------------------------------------------------------------------
    def _run(self) -> None:
        assert self._wake is not None
        stop = self._wake[0]
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(stop, select.POLLIN)
        try:
            while True:
                ready = {fd for fd, _ in poller.poll()}
                if stop in ready:
                    return
                data = self._read()
                if data is not None:
                    self._hand_on(list(self._parse(data)))
        finally:
            self._close()

    def _read(self, wait_ms: int = 0) -> bytes | None:
        if wait_ms and not _readable(self._fd, wait_ms):
            return None
        try:
            return os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return None

    @staticmethod
    def _parse(data: bytes) -> Iterator[tuple[int, int, int, str]]:
        offset = 0
        while offset + _HEADER.size <= len(data):
            wd, mask, cookie, length = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            name = data[offset : offset + length].rstrip(b"\0")
            offset += length
            yield wd, mask, cookie, os.fsdecode(name)

    def _hand_on(self, raw: list[tuple[int, int, int, str]]) -> None:
        """Turn a read's events into watchdog's, pairing renames, and hand each on in order."""
        if raw and raw[-1][1] & _IN_MOVED_FROM:  # its moved-to may be in the next read
            more = self._read(_PAIR_WAIT_MS)
            if more is not None:
                raw += self._parse(more)
        moved_to = {
            (w, cookie): i for i, (w, mask, cookie, _) in enumerate(raw) if mask & _IN_MOVED_TO
        }
        paired: set[int] = set()
        self.event_queue.count = len(raw)
        try:
            for i, (wd, mask, cookie, name) in enumerate(raw):
                self.event_queue.count = len(raw) - i - 1  # those after this one wait
                if i in paired:
                    continue
                if mask & _IN_Q_OVERFLOW:
                    self.on_overflow()
                    continue
                with self._lock:
                    watch = self._watches.get(wd)
                    if watch is not None and mask & _IN_IGNORED:
                        watch.alive = False  # the folder is gone (deleted, unmounted)
                        del self._watches[wd]
                if watch is None or not name or mask & _IN_ISDIR:
                    continue
                path = os.path.join(watch.path, name)
                if mask & _IN_MOVED_FROM and (wd, cookie) in moved_to:  # renamed in the folder
                    j = moved_to[wd, cookie]
                    paired.add(j)
                    dest = os.path.join(watch.path, raw[j][3])
                    self._emit(watch, events.FileMovedEvent(path, dest))
                else:  # (between two folders: gone from one, moved whole into the other)
                    self._emit(watch, _event(mask, path))
        finally:
            self.event_queue.count = 0

    @staticmethod
    def _emit(watch: FolderWatch, event: events.FileSystemEvent | None) -> None:
        if event is not None and isinstance(event, watch.kinds):
            watch.handler.dispatch(event)


def _readable(fd: int, wait_ms: int) -> bool:
    """Whether `fd` has data within `wait_ms` (poll, not select: any descriptor number); a
    closed one has none."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return any(mask & select.POLLIN for _, mask in poller.poll(wait_ms))


def _event(mask: int, path: str) -> events.FileSystemEvent | None:
    if mask & _IN_CLOSE_WRITE:
        return events.FileClosedEvent(path)
    if mask & _IN_MODIFY:
        return events.FileModifiedEvent(path)
    if mask & _IN_CREATE:
        return events.FileCreatedEvent(path)
    if mask & (_IN_DELETE | _IN_MOVED_FROM):  # moved away, out of the watched folders
        return events.FileDeletedEvent(path)
    if mask & _IN_MOVED_TO:  # moved in whole from a folder not watched: its write is over
        return events.FileMovedEvent("", path)
    return None
