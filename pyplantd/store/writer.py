"""The background writer: makes payloads durable while reactors go on with the value in memory.

`submit` returns at once with a PendingWrite; one thread runs the jobs in order: payload writes
(write, fsync, rename) and, queued after a reactor's payloads, the commit of its metadata. The
order is what makes a commit safe: everything it refers to was queued, so written, before it.
Errors are kept on the PendingWrite, never raised in the thread, so the run can report them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import StoreError
from ..waits import wait_event

logger = logging.getLogger(__name__)

_STOP = object()


class PendingWrite:
    """A payload on its way to disk; `wait()` returns its Payload or raises its error."""

    def __init__(self, name: str, path: str, size_hint: int) -> None:
        self.name = name
        self.path = path  # final path relative to the plant dir, known up front
        self.size_hint = size_hint
        self._done = threading.Event()
        self._payload: Any = None
        self._error: BaseException | None = None

    @classmethod
    def completed(cls, name: str, payload: Any) -> PendingWrite:
        pending = cls(name, payload.path, payload.size)
        pending._finish(payload, None)
        return pending

    def _finish(self, payload: Any, error: BaseException | None) -> None:
        self._payload, self._error = payload, error
        self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def failed(self) -> bool:
        return self._done.is_set() and self._error is not None

    def wait(self, timeout: float | None = None) -> Any:
        if not wait_event(self._done, timeout):  # in slices: a stop signal is heard meanwhile
            raise TimeoutError(f"Ingredient '{self.name}' is still being written.")
        if self._error is not None:
            raise self._error
        return self._payload


class Writer:
    """One thread, started on first use, stopped by `close`."""

    def __init__(self, on_done: Callable[[PendingWrite], None]) -> None:
        self._on_done = on_done
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pending: set[PendingWrite] = set()
        self._lock = threading.Lock()

    def submit(
        self,
        pending: PendingWrite,
        job: Callable[[], Any],
        after: Callable[[PendingWrite], None] | None = None,
    ) -> PendingWrite:
        """Run `job` on the writer thread; `after` (default: the writer's on_done) follows it."""
        with self._lock:
            self._pending.add(pending)
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="pyplantd-writer", daemon=True)
            self._thread.start()
        self._queue.put((pending, job, after or self._on_done))
        return pending

    def _loop(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            self._run(*item)
            # The job holds the value it wrote: let it go now, not when the next job arrives
            # (it would count against the memory budget while nothing refers to it).
            del item

    def _run(
        self, pending: PendingWrite, job: Callable[[], Any], after: Callable[[PendingWrite], None]
    ) -> None:
        try:
            payload, error = job(), None
        except BaseException as err:  # kept for the run to report
            payload, error = None, err
            if not isinstance(err, StoreError):
                error = StoreError(
                    f"Could not write ingredient '{pending.name}' to {pending.path}: {err}"
                )
                error.__cause__ = err
        pending._finish(payload, error)
        with self._lock:
            self._pending.discard(pending)
        try:
            after(pending)
        except Exception:  # a bookkeeping error must not stop the writer
            logger.exception("After writing ingredient '%s'", pending.name)

    def pending_bytes(self) -> int:
        with self._lock:
            return sum(p.size_hint for p in self._pending)

    def pending(self) -> list[PendingWrite]:
        with self._lock:
            return list(self._pending)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is on disk; False if time ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for pending in self.pending():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not pending._done.wait(remaining):
                return False
        return True

    def close(self, timeout: float | None = None) -> bool:
        flushed = self.flush(timeout)
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
        return flushed
