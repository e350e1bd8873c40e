"""The lines reactors print, held briefly and written in batches: one write per batch instead
of one per line, so that printing under the daemon costs about what it costs in a plain run.
Depends on nothing in pyplantd; the console says how a batch is written.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# A batch is written when it holds BATCH_LINES lines, when anything else is about to reach the
# console or its clients (the caller flushes), and otherwise within DELAY_SECONDS.
BATCH_LINES = 2000
DELAY_SECONDS = 0.05
# The thread that writes late lines ends after this long without any.
IDLE_SECONDS = 1.0

# (reactor or None, from stderr, lines without their newlines)
Group = tuple[str | None, bool, list[str]]


class PrintedLines:
    """Lines in the order they were printed, grouped by reactor and stream. `write(group)`
    shows a group; `on_written(reactor, text)` then gets its lines joined with newlines (a
    printed line holds none). A group leaves the batch only once written: an exception
    raised in between (a broken output) loses nothing and writes nothing twice."""

    def __init__(
        self,
        write: Callable[[str | None, bool, list[str]], None],
        on_written: Callable[[str | None, str], None],
    ) -> None:
        self._write = write
        self._on_written = on_written
        self._lock = threading.RLock()  # held while writing: lines stay in order
        self._wake = threading.Condition(self._lock)
        self._batch: list[Group] = []
        self._count = 0
        self._since = 0.0  # when the oldest line of the batch came
        self._timer: threading.Thread | None = None
        # on_written publishes, and publishing flushes first: a flush called back from inside
        # one returns at once, and the loop it came from writes the rest in order.
        self._flushing = False

    def add(self, reactor: str | None, stderr: bool, line: str) -> None:
        with self._lock:
            batch = self._batch
            if batch and batch[-1][0] == reactor and batch[-1][1] == stderr:
                batch[-1][2].append(line)
            else:
                batch.append((reactor, stderr, [line]))
            self._count += 1
            if self._count == 1:
                self._since = time.monotonic()
                if self._timer is None:
                    self._timer = threading.Thread(
                        target=self._write_late, name="pyplantd-print", daemon=True
                    )
                    self._timer.start()
                else:
                    self._wake.notify()
            elif self._count >= BATCH_LINES:
                self.flush()

    def flush(self) -> None:
        """Write what waits, now (before anything else reaches the console or its clients)."""
        if not self._count:  # read without the lock: a line added meanwhile is flushed later
            return
        with self._lock:
            if self._flushing:
                return
            self._flushing = True
            try:
                while self._batch:
                    reactor, stderr, lines = self._batch[0]
                    self._write(reactor, stderr, lines)
                    self._batch.pop(0)
                    self._count -= len(lines)
                    self._on_written(reactor, "\n".join(lines))
                self._count = 0
            finally:
                self._flushing = False

    def close(self) -> None:
        """Write what waits, and end the thread that writes late lines (the run is over)."""
        with self._lock:
            timer, self._timer = self._timer, None
            self._wake.notify_all()
        if timer is not None and timer is not threading.current_thread():
            timer.join()
        self.flush()

    def _write_late(self) -> None:
        me = threading.current_thread()
        with self._lock:
            while self._timer is me:
                if not self._count:
                    self._wake.wait(IDLE_SECONDS)
                    if not self._count and self._timer is me:
                        self._timer = None
                    continue
                left = self._since + DELAY_SECONDS - time.monotonic()
                if left > 0:
                    self._wake.wait(left)
                    continue
                try:
                    self.flush()
                except Exception:  # a closed or broken output: drop what it cannot take
                    self._batch, self._count = [], 0
