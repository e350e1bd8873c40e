"""A reactor's progress reports (`pipe.progress`, `pipe.track`): throttled to a few per second,
with the rate and the time left, for the live views and the daemon's event stream.

Depends on nothing; the pipework calls it, the scheduler turns reports into events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

REPORT_INTERVAL = 0.1  # seconds between two reports of one reactor (a finished count is always)


@dataclass(frozen=True)
class ProgressReport:
    done: float
    total: float | None
    note: str
    elapsed: float  # seconds since the reactor's first report
    rate: float | None  # units per second since the first report; None until it can be told
    eta: float | None  # seconds left at that rate; None without a total or a rate

    def fields(self) -> dict[str, float | str | None]:
        return {
            "done": self.done, "total": self.total, "note": self.note,
            "elapsed": self.elapsed, "rate": self.rate, "eta": self.eta,
        }  # fmt: skip


class ProgressMeter:
    """Turns `progress(done, total, note)` calls into reports for `sink`; the caller skips the
    calls that come before `report` says the next one is due (the cheap path of a tight loop)."""

    def __init__(self, sink: Callable[[ProgressReport], None]) -> None:
        self._sink = sink
        self._start: float | None = None
        self._first_done = 0.0

    def report(self, done: float, total: float | None, note: str) -> float:
        """Send one report now; the monotonic time before which the next is not wanted."""
        now = time.monotonic()
        if self._start is None:
            self._start, self._first_done = now, done
        elapsed = now - self._start
        moved = done - self._first_done
        rate = moved / elapsed if elapsed > 0 and moved > 0 else None
        eta = (total - done) / rate if rate and total is not None and total >= done else None
        self._sink(ProgressReport(done, total, note, elapsed, rate, eta))
        return now + REPORT_INTERVAL
