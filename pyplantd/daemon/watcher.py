"""Report which watched files changed content: watchdog folder watches, a debounce, content
hashes, and a stat scan (a safety net, and the fallback). Depends on nothing in pyplantd.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from watchdog import events
from watchdog.observers import Observer

from ..fingerprint import file_fingerprint, stream_fingerprint
from . import inotify

logger = logging.getLogger(__name__)

# How long a file modified in place may stay open before it is read anyway (editors close at
# once; this covers platforms and file systems that report no close).
WRITE_GRACE = 1.0

# What can change a file's bytes or existence. Opens and read-only closes stay out: our own
# hashing would otherwise wake us up again.
_EVENT_KINDS: list[type[events.FileSystemEvent]] = [
    events.FileModifiedEvent, events.FileCreatedEvent, events.FileMovedEvent,
    events.FileDeletedEvent, events.FileClosedEvent,
]  # fmt: skip
# Linux file leases (fcntl(2)): a read lease is refused while any process has the file open for
# writing, and makes whoever opens it for writing wait until it is released. The lease's break
# is signalled with SIGURG, which is ignored unless handled (SIGIO, the default, would kill).
_F_SETLEASE = getattr(fcntl, "F_SETLEASE", None)
_F_SETSIG = getattr(fcntl, "F_SETSIG", None)
# watchdog reports a kernel queue overflow only as a warning on this logger.
_INOTIFY_LOGGER = "watchdog.observers.inotify_c"
StatKey = tuple[int, int, int, int]
# A watchdog observer, or an InotifyObserver: the same interface, as far as it is used here.
ObserverLike = Any
Seen = tuple[StatKey | None, str | None]  # what a file looked like, and its content hash


def content_hash(path: str) -> str | None:
    """The file's content fingerprint, the one the store and the code index use (the
    xxh3-128 hex digest of its bytes); None if it cannot be read (gone)."""
    try:
        return file_fingerprint(path)
    except OSError:
        return None


def _stat_key(path: str) -> StatKey | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino


def _folder_inode(folder: str) -> int | None:
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_ino if stat.S_ISDIR(st.st_mode) else None


def _read(path: str) -> Seen:
    return _stat_key(path), content_hash(path)  # stat first: a write in between shows later


class _OpenForWritingError(Exception):
    """The kernel refused a read lease: someone has the file open for writing right now."""


def _read_unshared(path: str) -> Seen | None:
    """`_read`, while nobody has the file open for writing and nobody can open it so (a read
    lease); None if no lease can be taken (not our file, not Linux, a network file system):
    then it is no save known to be over. Raises _OpenForWritingError if someone has it open so."""
    if _F_SETLEASE is None or _F_SETSIG is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return _read(path)  # gone: what the events say next decides
    try:
        try:
            fcntl.fcntl(fd, _F_SETSIG, signal.SIGURG)
            fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_RDLCK)
        except OSError as err:
            if err.errno == errno.EAGAIN:
                raise _OpenForWritingError(path) from None
            if err.errno not in (errno.EACCES, errno.EINVAL, errno.EPERM):
                raise
            return None
        try:
            st = os.fstat(fd)
            with os.fdopen(os.dup(fd), "rb") as handle:
                digest = stream_fingerprint(handle)
        finally:
            fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_UNLCK)
    finally:
        os.close(fd)
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino), digest


def _key(path: Path | str) -> str:
    # Resolve the directory but not the file (an atomic save replaces it), so keys equal event
    # paths on systems that report real paths (macOS: /tmp is /private/tmp).
    absolute = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))


def _ended_write(event: events.FileSystemEvent, keys: list[str]) -> str | None:
    """The file whose writing this event definitively ended: closed after writing, or renamed
    into place (a creation may still be followed by writes)."""
    if event.event_type == events.EVENT_TYPE_CLOSED:
        return keys[0]
    if event.event_type == events.EVENT_TYPE_MOVED:
        return keys[1]
    return None


class _Handler(events.FileSystemEventHandler):
    def __init__(self, callback: Callable[[events.FileSystemEvent], None]) -> None:
        self._callback = callback

    def dispatch(self, event: events.FileSystemEvent) -> None:
        self._callback(event)


class Watcher:
    """Calls ``on_change(paths)`` once per burst of saves, with the files whose bytes changed.

    A save that ends definitively (the file closed after writing, or renamed into place) while
    no other watched file is open for writing and no other event is waiting is read at once;
    anything else waits for the quiet window, and so does the rest of a burst over several
    files (the first file of a `git checkout` is reported at once, ``on_burst`` is called at
    the next one's first event, the others come together after the quiet window).

    >>> watcher = Watcher(lambda paths: print(sorted(paths)), on_notice=print)
    >>> watcher.watch([Path("pipeline.py").absolute()])
    >>> watcher.start()
    >>> watcher.stop()
    """

    def __init__(
        self,
        on_change: Callable[[set[Path]], None],
        debounce: float = 0.02,
        poll_interval: float = 0.5,
        force_polling: bool = False,
        on_notice: Callable[[str], None] | None = None,
        observer_factory: Callable[[], ObserverLike] | None = None,
        on_unchanged: Callable[[set[Path]], None] | None = None,
        on_burst: Callable[[], object] | None = None,
    ) -> None:
        self._on_change = on_change
        self._on_burst = on_burst  # more changes right after a report: whatever it started is stale
        self._on_unchanged = on_unchanged  # saved, but the bytes are the ones already seen
        self._on_notice = on_notice or logger.warning
        self._debounce = debounce
        self._poll_interval = poll_interval
        self._observer_factory = observer_factory  # None: our own inotify reader, or watchdog's
        self._mode = "polling" if force_polling else "native"
        # _cond guards the state below it. It is never held while calling into watchdog, whose
        # observer holds its own lock while it calls our handler.
        self._cond = threading.Condition()
        self._paths: dict[str, Path] = {}
        self._seen: dict[str, Seen] = {}
        self._dirty: set[str] = set()
        self._writing: dict[str, float] = {}  # modified in place, not closed yet: since when
        self._complete: set[str] = set()  # dirty, and their last event ended a write
        self._reading: set[str] = set()  # being read by a flush
        self._last_event = 0.0
        self._batch_start = 0.0  # first event since the last report
        self._last_report = -float("inf")  # when a flush last reported changed files
        self._reported: set[str] = set()  # and which
        self._overflowed = False
        self._stopping = False
        # _sync serializes changes to the observer and its watches (watch, tick, fallback, stop).
        self._sync = threading.RLock()
        self._observer: ObserverLike | None = None
        self._watches: dict[str, tuple[Any, int]] = {}  # folder -> (watch, inode)
        self._thread: threading.Thread | None = None
        self._handler = _Handler(self._on_event)

    @property
    def mode(self) -> str:
        """``"native"`` (OS events) or ``"polling"`` (only the scan every ``poll_interval``)."""
        return self._mode

    def watch(self, paths: Iterable[Path], read: Mapping[Path, str | None] | None = None) -> None:
        """Replace the watched files. The content of newly watched ones is recorded now, or is
        the one the caller `read` (a content hash; None: it was absent) if it says so: a file
        saved since it read it is reported as changed at once."""
        wanted = {_key(path): Path(path) for path in paths}
        read = read or {}
        with self._sync:
            fresh = {key: _read(key) for key in wanted.keys() - self._paths.keys()}
            known = {k: read[wanted[k]] for k in fresh if wanted[k] in read}
            saved = {k for k, digest in known.items() if digest != fresh[k][1]}
            with self._cond:
                self._seen = {key: self._seen.get(key) or fresh[key] for key in wanted}
                self._seen.update((key, (None, known[key])) for key in saved)
                self._paths = wanted
                self._dirty &= wanted.keys()
                if saved:
                    self._dirty |= saved
                    self._last_event = time.monotonic()
                    self._cond.notify_all()
            self._sync_dirs()

    def snapshot(self, paths: Iterable[Path]) -> None:
        """Record the current content of these watched files as known (the run just read it)."""
        fresh = {key: _read(key) for key in map(_key, paths)}
        with self._cond:
            self._seen.update((key, seen) for key, seen in fresh.items() if key in self._paths)

    def changed_since_read(self) -> set[Path]:
        """Watched files written, truncated or replaced since the watcher last read them (a
        new save under way): whatever was loaded from them may be half-written. Their next
        read is reported as a change even if its bytes are the same as before."""
        with self._cond:
            items = [(key, self._seen[key][0]) for key in self._paths if key in self._seen]
        changed = {key for key, seen in items if _stat_key(key) != seen}
        with self._cond:
            for key in changed & self._seen.keys():
                self._seen[key] = (None, None)
            return {self._paths[key] for key in changed if key in self._paths}

    def start(self) -> None:
        """Start watching (OS events, or polling if they are unavailable)."""
        if self._stopping:
            raise RuntimeError("This Watcher was stopped; create a new one to watch again.")
        if self._thread is not None:
            return
        logging.getLogger(_INOTIFY_LOGGER).addFilter(self._spot_overflow)
        with self._sync:
            if self._mode == "native":
                try:
                    self._observer = self._new_observer()
                    self._observer.start()
                except OSError as err:
                    self._fall_back(f"the OS file watcher could not start ({err})")
                self._sync_dirs()
        self._thread = threading.Thread(target=self._run, name="pyplantd-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and join every thread this watcher started. Idempotent."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        with self._sync:
            self._stop_observer()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        logging.getLogger(_INOTIFY_LOGGER).removeFilter(self._spot_overflow)

    # -- the observer (callers hold _sync) --------------------------------------------------
    def _new_observer(self) -> ObserverLike:
        """On Linux, our own inotify reader (a save reaches us through one thread instead of
        watchdog's four); elsewhere, or when asked for another, watchdog's."""
        if self._observer_factory is not None:
            observer = self._observer_factory()
        elif inotify.available():
            observer = inotify.InotifyObserver()
        else:
            return Observer()
        if isinstance(observer, inotify.InotifyObserver):
            observer.on_overflow = self._note_overflow
        return observer

    def _sync_dirs(self) -> None:
        """Watch each folder holding a watched file, once; missing ones when they appear."""
        if self._observer is None or self._mode != "native":
            return
        with self._cond:
            wanted = {os.path.dirname(key) for key in self._paths}
        # A deleted folder's emitter stops; a moved one's follows the old inode (a new folder may
        # reuse the number, so both checks). Either way a folder made anew needs a new watch.
        dead = {emitter.watch for emitter in self._observer.emitters if not emitter.is_alive()}
        for folder, (watch, inode) in list(self._watches.items()):
            if folder not in wanted or watch in dead or _folder_inode(folder) != inode:
                del self._watches[folder]
                with contextlib.suppress(KeyError):  # watchdog may have dropped it already
                    self._observer.unschedule(watch)
        for folder in sorted(wanted - self._watches.keys()):
            found = _folder_inode(folder)
            if found is None:
                continue  # a later tick watches it; meanwhile the scan sees its files appear
            try:
                watch = self._observer.schedule(self._handler, folder, event_filter=_EVENT_KINDS)
            except OSError as err:
                return self._fall_back(f"watching {folder!r} failed ({err})")
            self._watches[folder] = watch, found

    def _fall_back(self, reason: str) -> None:
        if self._mode == "polling" or self._stopping:
            return
        self._mode = "polling"
        self._stop_observer()
        self._notice(
            f"File watcher: {reason}; now polling the watched files every "
            f"{self._poll_interval:g} s. Raise fs.inotify.max_user_watches (Linux) for instant "
            "reloads."
        )

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        self._watches.clear()
        if observer is not None:
            observer.stop()
            if observer.ident is not None:  # it may have failed before its thread started
                observer.join()

    # -- event intake (watchdog's thread) ---------------------------------------------------
    def _on_event(self, event: events.FileSystemEvent) -> None:
        try:  # an atomic save only shows as a move (or creation) onto the target: dest_path
            keys = [os.fsdecode(event.src_path), os.fsdecode(event.dest_path)]
            if event.event_type == events.EVENT_TYPE_CLOSED_NO_WRITE:
                return
            self._note_writing(keys[0], event.event_type == events.EVENT_TYPE_MODIFIED)
            self._mark(keys, _ended_write(event, keys))
        except Exception as err:  # an exception here would end watchdog's dispatch thread
            self._notice(f"File watcher: handling {event!r} raised {err!r}; still watching.")

    def _spot_overflow(self, record: logging.LogRecord) -> bool:
        """A logging filter: notes watchdog's overflow warning, lets every record through."""
        if "overflow" in str(record.msg).lower():
            self._note_overflow()
        return True

    def _note_overflow(self) -> None:
        """The OS event queue overflowed: events were lost (the next tick falls back)."""
        with self._cond:
            self._overflowed = True
            self._cond.notify_all()

    def _note_writing(self, key: str, modified: bool) -> None:
        """A file modified in place is still being written until its writer closes it (a
        truncate-then-write save may pause longer than the quiet window in between)."""
        with self._cond:
            if modified and key in self._paths:
                self._writing[key] = time.monotonic()
            else:  # closed after writing, moved, created, deleted: complete
                self._writing.pop(key, None)

    def _mark(self, keys: Iterable[str], ended: str | None = None) -> None:
        """Mark watched keys dirty and restart the quiet period; `ended` is the key whose write
        this event completed, if it did."""
        burst = False
        with self._cond:
            hits = self._paths.keys() & set(keys)
            if hits:
                now = time.monotonic()
                if not self._dirty:
                    self._batch_start = now
                    # another file right after a report: a burst (an event on the file just
                    # reported, such as a change of its mode after the write, is none)
                    burst = now < self._last_report + self._debounce and bool(hits - self._reported)
                self._dirty |= hits
                self._complete = (self._complete - hits) | ({ended} & hits if ended else set())
                self._last_event = now
                self._cond.notify_all()
        notify = self._on_burst
        if burst and notify is not None:
            self._guarded(notify, "on_burst")

    # -- the watcher's own thread: debounce, flush, tick ------------------------------------
    def _run(self) -> None:
        next_tick = time.monotonic() + self._poll_interval
        while self._wait_for_work(next_tick):
            self._guarded(self._flush, "checking changed files")
            if time.monotonic() >= next_tick or self._overflowed:
                self._guarded(self._tick, "re-scanning watched files")
                next_tick = time.monotonic() + self._poll_interval

    def _wait_for_work(self, next_tick: float) -> bool:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                flush_at = self._flush_time(now) if self._dirty else next_tick
                if now >= min(flush_at, next_tick) or self._overflowed:
                    return True
                self._cond.wait(min(flush_at, next_tick) - now)
            return False

    def _flush_time(self, now: float) -> float:
        """When the dirty files may be read: at once if `_settled`, else after the quiet window,
        and for files still open for writing, once closed (or, with no close event coming,
        after WRITE_GRACE)."""
        if self._settled(now):
            return now
        quiet = self._last_event + self._debounce
        if any(now >= self._writing.get(k, -WRITE_GRACE) + WRITE_GRACE for k in self._dirty):
            return quiet
        return max(quiet, min(self._writing[k] + WRITE_GRACE for k in self._dirty))

    def _settled(self, now: float) -> bool:
        """Every dirty file's last event ended its write, no watched file is open for writing,
        no event is waiting to be handled, and this is no continuation of a burst just
        reported (caller holds _cond)."""
        if not self._dirty or self._dirty - self._complete:
            return False
        if any(now < since + WRITE_GRACE for since in self._writing.values()):
            return False
        if self._batch_start < self._last_report + self._debounce:
            return False
        observer = self._observer
        leases = _F_SETLEASE is not None and _F_SETSIG is not None
        return leases and observer is not None and observer.event_queue.empty()

    def _flush(self) -> None:
        with self._cond:
            now = time.monotonic()
            if not self._dirty:
                return
            settled = self._settled(now)
            if now < self._last_event + self._debounce and not settled:
                return
            held = {
                k for k in self._dirty if now < self._writing.get(k, -WRITE_GRACE) + WRITE_GRACE
            }
            dirty, self._dirty = self._dirty - held, held
            self._complete &= held
            self._reading |= dirty  # the scan leaves them alone until _seen has what is read
        try:
            fresh = self._read_dirty(dirty, settled)
        except BaseException:
            with self._cond:
                self._reading -= dirty
            raise
        with self._cond:
            self._reading -= dirty  # with the _seen update below: no scan sees one without it
            fresh = {key: seen for key, seen in fresh.items() if key in self._paths}
            paths = {self._paths[k] for k, seen in fresh.items() if seen[1] != self._seen[k][1]}
            same = {self._paths[k] for k in fresh} - paths
            self._seen.update(fresh)
            now = time.monotonic()
            if now < self._last_report + self._debounce:
                # the same bytes seen again right after they were reported: a trailing event of
                # that save (its mode or times set after the write), no save of its own
                same -= {self._paths[k] for k in self._reported if k in self._paths}
            if paths:
                self._last_report = now
                self._reported = {k for k in fresh if self._paths[k] in paths}
        if paths:
            self._guarded(lambda: self._on_change(paths), "on_change")
        notify = self._on_unchanged
        if same and notify is not None:
            self._guarded(lambda: notify(same), "on_unchanged")

    def _read_dirty(self, keys: set[str], settled: bool) -> dict[str, Seen]:
        """Read changed files, each under a read lease where one can be taken: the lease is
        refused while anyone has the file open for writing, which a new save may have done
        (truncated the file) before its events arrive. A file open for writing is being
        written, as if its events had said so already: it waits for its writer's close, never
        just for the quiet window, which a writer's pause can outlast (unless it stays open
        longer than WRITE_GRACE). A file with no lease to take is read anyway after the quiet
        window; a settled one (read at once) is left dirty for the quiet window instead."""
        fresh, late, writing = {}, set(), set()
        now = time.monotonic()
        for key in keys:
            try:
                seen = _read_unshared(key)
            except _OpenForWritingError:
                with self._cond:
                    since = self._writing.get(key)
                if since is not None and now >= since + WRITE_GRACE:
                    fresh[key] = _read(key)  # open for writing longer than a save takes
                else:
                    writing.add(key)
                continue
            if seen is not None:
                fresh[key] = seen
            elif settled:
                late.add(key)
            else:
                fresh[key] = _read(key)
        if late or writing:
            with self._cond:
                self._dirty |= late | writing
                self._last_event = max(self._last_event, time.monotonic())
                for key in writing:
                    self._writing.setdefault(key, now)
        return fresh

    def _tick(self) -> None:
        with self._cond:
            overflowed, self._overflowed = self._overflowed, False
        with self._sync:
            if self._mode == "native" and self._observer is not None:
                if overflowed:
                    self._fall_back("the OS event queue overflowed, so events were lost")
                elif not self._observer.is_alive():
                    self._fall_back("watchdog's observer thread stopped")
                else:
                    self._sync_dirs()
        self._scan()

    def _scan(self) -> None:
        # Natively too: a cheap net for events that never come (network mounts, a folder that
        # appeared). A stat key decides what to hash, as data files can be large; no save is
        # missed as long as the file system's timestamp tick is shorter than the debounce.
        with self._cond:
            keys = list(self._paths)
        stats = {key: _stat_key(key) for key in keys}
        with self._cond:
            changed = [
                k for k, st in stats.items()
                if k in self._seen and k not in self._reading and self._seen[k][0] != st
            ]  # fmt: skip
            self._seen.update((k, (stats[k], self._seen[k][1])) for k in changed)
            if self._mode == "native":  # seen before its events: wait for the close, as they do
                now = time.monotonic()
                self._writing.update((k, now) for k in changed if k not in self._dirty)
        self._mark(changed)

    def _guarded(self, action: Callable[[], object], what: str) -> None:
        try:
            action()
        except Exception as err:
            logger.debug("%s raised", what, exc_info=True)
            self._notice(f"File watcher: {what} raised {err!r}; still watching.")

    def _notice(self, message: str) -> None:
        try:
            self._on_notice(message)
        except Exception:
            logger.exception("on_notice raised for: %s", message)
