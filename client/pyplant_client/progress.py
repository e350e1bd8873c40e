"""A reactor's progress as text, the same in the daemon's terminal, `pyplantd run` and `pyplant
run`: `████████░░░░░░░░░░░░  40% 400/1000 · 1.2k/s · ETA 0.5 s · note`, and the rule for plain
output (a log, a pipe), which gets a line now and then rather than every update.

Plain functions over the fields of a `progress` event; depends on nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

BAR_WIDTH = 20
PLAIN_EVERY = 2.0  # seconds between two plain progress lines of one reactor


def compact(number: float) -> str:
    """`950`, `12.3k`, `4.57M`: counts and rates in a few characters."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= size:
            return f"{number / size:.3g}{unit}"
    return f"{number:.3g}" if number != int(number) else str(int(number))


def duration(seconds: float) -> str:
    """`0.4 s`, `12 s`, `3 min 05 s`, `2 h 07 min`."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def progress_text(fields: Mapping[str, Any], width: int = BAR_WIDTH) -> str:
    """The bar (with a total), the count, the rate and the time left, and the note."""
    done, total = _number(fields.get("done")) or 0.0, _number(fields.get("total"))
    rate, eta = _number(fields.get("rate")), _number(fields.get("eta"))
    if total:
        parts = [f"{bar(done / total, width)} {done / total:4.0%} {compact(done)}/{compact(total)}"]
    else:
        parts = [f"{compact(done)} done"]
    if rate:
        parts.append(f"{compact(rate)}/s")
    if eta is not None and total and done < total:
        parts.append(f"ETA {duration(eta)}")
    note = str(fields.get("note") or "")
    if note:
        parts.append(note)
    return " · ".join(parts)


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class PlainProgress:
    """Which progress reports plain output prints: one per reactor every PLAIN_EVERY seconds,
    and the one that reaches the total if it took that long (a quick loop prints nothing)."""

    def __init__(self, every: float = PLAIN_EVERY) -> None:
        self.every = every
        self._last: dict[str, float] = {}  # reactor -> when its first report came or last printed

    def due(self, reactor: str, fields: Mapping[str, Any]) -> bool:
        now = time.monotonic()
        done, total = _number(fields.get("done")), _number(fields.get("total"))
        if total is not None and done == total:
            self._last.pop(reactor, None)
            return (_number(fields.get("elapsed")) or 0.0) >= self.every
        last = self._last.setdefault(reactor, now)
        if now - last < self.every:
            return False
        self._last[reactor] = now
        return True
