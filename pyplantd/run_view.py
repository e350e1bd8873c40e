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
from rich.table import Table
from rich.text import Text

from .events import EventType, PlantEvent
from .history import format_duration

REDRAW_SECONDS = 0.1  # a drawing is reused this long (rich draws it again at every print)
MIN_ROWS = 5  # rows shown however small the terminal


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
            height = max(MIN_ROWS, console.size.height - 3)
            lines = console.render_lines(self.table(height, now), options, pad=False)
            drawn = self._drawn = (self._version, options.max_width, now, lines)
        for number, line in enumerate(drawn[3]):
            if number:
                yield Segment.line()
            yield from line

    def table(self, max_rows: int, now: float) -> Table:
        """The rows that fit: all reactors in flight first, then the latest finished ones, and
        a line counting the others."""
        rows = list(self.rows.items())  # a copy: the engine thread adds rows meanwhile
        active = [i for i, (_, row) in enumerate(rows) if row.state in ("running", "waiting")]
        room = max(0, max_rows - len(active) - 1)
        finished = [i for i, (_, row) in enumerate(rows) if row.state in _FINISHED]
        shown = sorted(active[:max_rows] + (finished[-room:] if room else []))
        grid = Table.grid(padding=(0, 1))
        for index in shown:
            grid.add_row(*_cells(*rows[index], now))
        if len(shown) < len(rows):
            visible = set(shown)
            hidden = [row.state for i, (_, row) in enumerate(rows) if i not in visible]
            counts = ", ".join(f"{hidden.count(s)} {s}" for s in _FINISHED if s in hidden)
            grid.add_row("", Text(f"and {len(hidden)} more ({counts})", style="dim"), "", "")
        return grid


_FINISHED = ("done", "warm", "failed")


def _cells(name: str, row: Row, now: float) -> tuple[Text | str, ...]:
    extra = progress_text(row.progress) if row.progress else row.status
    if row.state == "running":
        spent = format_duration(row.spent + now - row.since)
        return Text("▶", "yellow"), name, f"running {spent}", extra
    if row.state == "waiting":
        what = f"waiting for {row.waiting_for}"
        return Text("…", "yellow"), name, Text(what, "yellow"), extra
    if row.state == "done":
        return Text("✓", "green"), name, format_duration(row.duration), ""
    if row.state == "warm":
        return Text("·", "dim"), Text(name, "dim"), Text("warm", "dim"), ""
    return Text("✗", "red"), name, Text("failed", "red"), ""
