"""The live view of a run on a terminal: a row per reactor (running with its time so far,
waiting for an ingredient, its progress bar or the line its output keeps updating, done with its
duration, warm, failed), drawn anew at each refresh so that times move.

Fed with the plant's events by the console (engine thread), drawn by rich's Live (its own
thread): rows are only replaced or updated field by field, and drawing reads a copy of the list.
Depends on rich and the events; the progress text is the client's, so both show the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pyplant_client.progress import progress_text
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.text import Text

from ..events import EventType, PlantEvent
from ..run.history import format_duration

REDRAW_SECONDS = 0.1  # a drawing is reused this long (rich draws it again at every print)
MIN_ROWS = 5  # rows shown however small the terminal
MAX_FINISHED_ROWS = 10  # finished reactors shown besides those in flight


@dataclass
class Row:
    state: str  # running / waiting / done / warm / failed
    since: float = field(default_factory=time.perf_counter)  # running or waiting since
    spent: float = 0.0  # seconds it ran before `since` (waiting does not count, as in durations)
    waiting_for: str = ""
    progress: dict[str, Any] | None = None
    status: str = ""  # the line its output is updating with carriage returns (a tqdm bar)
    duration: float = 0.0


class RunView:
    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self._version = 0  # bumped by every change: a new drawing is due
        self._drawn: tuple[int, int, float, list[list[Segment]]] | None = None

    # -- fed by the engine thread -----------------------------------------------------------
    def on_event(self, event: PlantEvent) -> None:
        name, kind, now = event.reactor or "", event.type, time.perf_counter()
        row = self.rows.get(name)
        if kind is EventType.reactor_started:
            self.rows[name] = Row("running", now)
        elif kind is EventType.reactor_finished:
            self.rows[name] = Row("done", duration=float(event.data.get("duration", 0.0)))
        elif kind is EventType.reactor_cached:
            self.rows[name] = Row("warm")
        elif kind is EventType.reactor_failed:
            self.rows[name] = Row("failed")
        elif row is None:
            return
        elif kind is EventType.reactor_waiting:
            row.spent += now - row.since
            row.waiting_for, row.since, row.state = (
                str(event.data.get("ingredient")),
                now,
                "waiting",
            )
        elif kind is EventType.reactor_resumed:
            row.since, row.state = now, "running"
        elif kind is EventType.reactor_progress:
            row.progress = event.data
        else:
            return
        self._version += 1

    def set_status(self, reactor: str | None, text: str) -> None:
        row = self.rows.get(reactor or "")
        if row is not None:
            row.status = text
            self._version += 1

    # -- drawn by rich's thread -------------------------------------------------------------
    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        now = time.perf_counter()
        drawn = self._drawn
        if (
            drawn is None
            or drawn[0] != self._version
            or drawn[1] != options.max_width
            or now - drawn[2] > REDRAW_SECONDS
        ):
            lines = self.lines(max(MIN_ROWS, console.size.height - 3), now)
            segments = []
            for line in lines:
                line.truncate(options.max_width, overflow="ellipsis")
                segments.append(list(line.render(console)))
            drawn = self._drawn = (self._version, options.max_width, now, segments)
        for number, line_segments in enumerate(drawn[3]):
            if number:
                yield Segment.line()
            yield from line_segments

    def lines(self, max_rows: int, now: float) -> list[Text]:
        """What fits: all reactors in flight, then the latest finished ones (a few: the table
        after the run lists them all), and a line counting the others. Plain lines rather than
        a rich Table: this is drawn 8 times a second and again at every printed line."""
        rows = list(self.rows.items())  # a copy: the engine thread adds rows meanwhile
        active = [i for i, (_, row) in enumerate(rows) if row.state in ("running", "waiting")]
        room = min(MAX_FINISHED_ROWS, max(0, max_rows - len(active) - 1))
        finished = [i for i, (_, row) in enumerate(rows) if row.state in _FINISHED]
        shown = sorted(active[:max_rows] + (finished[-room:] if room else []))
        width = max((len(rows[i][0]) for i in shown), default=0)
        lines = [_line(*rows[index], width, now) for index in shown]
        if len(shown) < len(rows):
            visible = set(shown)
            hidden = [row.state for i, (_, row) in enumerate(rows) if i not in visible]
            counts = ", ".join(f"{hidden.count(s)} {s}" for s in _FINISHED if s in hidden)
            lines.append(Text(f"  and {len(hidden)} more ({counts})", style="dim"))
        return lines


_FINISHED = ("done", "warm", "failed")


def _line(name: str, row: Row, width: int, now: float) -> Text:
    """`▶ name  running 1.2 s ████░░ 40% ...`, the name padded to `width`."""
    padded = name.ljust(width)
    extra = progress_text(row.progress) if row.progress else row.status
    if row.state == "running":
        spent = format_duration(row.spent + now - row.since)
        parts: list[tuple[str, str]] = [("▶", "yellow"), (padded, ""), (f"running {spent}", "")]
    elif row.state == "waiting":
        parts = [("…", "yellow"), (padded, ""), (f"waiting for {row.waiting_for}", "yellow")]
    elif row.state == "done":
        parts = [("✓", "green"), (padded, ""), (format_duration(row.duration), "")]
    elif row.state == "warm":
        parts = [("·", "dim"), (padded, "dim"), ("warm", "dim")]
    else:
        parts = [("✗", "red"), (padded, ""), ("failed", "red")]
    if extra and row.state in ("running", "waiting"):
        parts.append((extra, ""))
    text = Text()
    for number, (part, style) in enumerate(parts):
        if number:
            text.append(" ")
        text.append(part, style)
    return text
