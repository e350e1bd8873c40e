"""What the daemon shows in its terminal: one line per reactor of the run (warm, running with
its elapsed time, done with its duration, failed), a summary per run, the memory line, errors
in the `path:line` form, and the reactors' own output prefixed with their names.

A live view when the output is a terminal, plain lines otherwise (logs, pipes, tests).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING

from rich.console import Console as RichConsole
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..decisions import Decision
from ..errors import ReactorFailedError
from ..events import EventType, PlantEvent
from ..history import format_duration
from ..report import user_traceback
from ..scheduler import running_reactor
from ..sizes import format_size
from .loader import LoadError

if TYPE_CHECKING:
    from ..plant import Plant


class Console:
    def __init__(self, stream: IO[str] | None = None, live: bool | None = None) -> None:
        self.out = RichConsole(file=stream or sys.stdout, highlight=False, soft_wrap=True)
        self.live_view = self.out.is_terminal if live is None else live
        self._rows: dict[str, tuple[str, float]] = {}  # reactor -> (state, since or duration)
        self.on_line: Callable[[str | None, str], None] = lambda reactor, text: None

    # -- lines ------------------------------------------------------------------------------
    def notice(self, text: str) -> None:
        self.print(Text(text, style="dim"))

    def error(self, text: str) -> None:
        self.print(Text(f"error: {text}", style="bold red"))

    def print(self, text: Text) -> None:
        """One line. Without colours (a log file, a pipe) it is written as is: rich's print
        costs ~0.1 ms a line, several times a run, on the path from a save to its result."""
        if self.out.color_system is None and not self.live_view:
            self.out.file.write(text.plain + "\n")
            self.out.file.flush()
        else:
            self.out.print(text)

    def urgent(self, text: str) -> None:
        """A line from a signal handler: straight to the file descriptor, since the main thread
        may be inside a write to the same stream (which would raise 'reentrant call')."""
        try:
            fd = self.out.file.fileno()
        except (AttributeError, OSError, ValueError):
            return  # not a real file (tests): nothing safe to do from a handler
        with contextlib.suppress(OSError):
            os.write(fd, (text + "\n").encode(errors="replace"))

    def unexpected(self, failure: BaseException) -> None:
        """An exception from pyplantd's own code (a bug) or raised outside the user's code."""
        self.error(f"{type(failure).__name__}: {failure} (the daemon goes on)")
        text = "".join(traceback.format_exception(failure))
        self.out.print(Text(text.rstrip("\n"), style="red"))

    def load_cancelled(self, trigger: str, name: str, elapsed: float) -> None:
        self.print(Text(f"{trigger}: loading {name} cancelled ({format_duration(elapsed)})"))

    def reload_failed(self, trigger: str, where: LoadError, failure: BaseException) -> None:
        self.out.print(Text(f"{trigger}: the script did not load; keeping the last good state"))
        self.print(
            Text(f"{where.path}:{where.line}:{where.column}: error: {where.message}", "bold red")
        )
        if not isinstance(failure, SyntaxError) and not isinstance(failure.__cause__, SyntaxError):
            self.out.print(Text(user_traceback(failure), style="red"))

    def reactor_failed(self, failure: ReactorFailedError) -> None:
        cause = failure.__cause__ or failure
        self.out.print(Text(user_traceback(cause), style="red"))

    # -- a run ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def run(self, trigger: str, plant: Plant) -> Iterator[None]:
        """Show the run as it happens; reactors' output comes out prefixed with their name."""
        self._rows = {}
        plant.subscribe(self._on_event)
        live = Live(self._table(), console=self.out, refresh_per_second=8, transient=True)
        with contextlib.ExitStack() as stack:
            if self.live_view:
                stack.enter_context(live)
                self._refresh = lambda: live.update(self._table())
            else:
                self._refresh = lambda: None
            stack.enter_context(_prefixed_output(self.out, self.on_line))
            yield
        plant.remove_event_listener(self._on_event)

    def _on_event(self, event: PlantEvent) -> None:
        name, now = event.reactor or "", time.perf_counter()
        if event.type is EventType.reactor_started:
            self._rows[name] = ("running", now)
        elif event.type is EventType.reactor_finished:
            self._rows[name] = ("done", float(event.data.get("duration", 0.0)))
            duration = format_duration(self._rows[name][1])
            self._line(Text.assemble("  ", ("✓", "green"), f" {name} {duration}"))
        elif event.type is EventType.reactor_cached:
            self._rows[name] = ("warm", 0.0)
            restored = event.data.get("reasons") or []
            why = f" ({restored[0]})" if restored else ""
            self._line(Text(f"  · {name} warm{why}", style="dim"))
        elif event.type is EventType.reactor_failed:
            self._rows[name] = ("failed", 0.0)
            error = event.data.get("error", "")
            self._line(Text.assemble("  ", (f"✗ {name}", "bold red"), f" {error}"))
        self._refresh()

    def _line(self, text: Text) -> None:
        if not self.live_view:  # the live table says it already; plain output needs lines
            self.print(text)

    def _table(self) -> Table:
        table = Table.grid(padding=(0, 1))
        now = time.perf_counter()
        for name, (state, value) in self._rows.items():
            if state == "running":
                table.add_row("[yellow]▶[/]", name, f"running {format_duration(now - value)}")
            elif state == "done":
                table.add_row("[green]✓[/]", name, format_duration(value))
            elif state == "warm":
                table.add_row("[dim]·[/]", f"[dim]{name}[/]", "[dim]warm[/]")
            else:
                table.add_row("[red]✗[/]", name, "[red]failed[/]")
        return table

    def run_finished(
        self, trigger: str, decisions: list[Decision], status: str, elapsed: float, plant: Plant
    ) -> None:
        self.print(Text(summary(trigger, decisions, status, elapsed)))
        store = plant.store
        warm, budget = store.warm.warm_bytes, store.warm.budget
        writing = store.writer.pending_bytes()
        self.print(
            Text(
                f"memory: {format_size(warm)} warm of {format_size(budget)}, "
                f"{format_size(store.warm.spilled_bytes)} spilled to disk"
                + (f", {format_size(writing)} still being written" if writing else ""),
                style="dim",
            )
        )


def summary(trigger: str, decisions: list[Decision], status: str, elapsed: float) -> str:
    """`saved pipeline.py: 1 of 5 reactors ran (0.42 s), 4 warm, why: plot: code changed`"""
    ran = [d for d in decisions if d.status == "ran"]
    warm = sum(d.status == "cached" for d in decisions)
    if status == "cancelled":
        return f"{trigger}: run cancelled by a newer save ({len(ran)} finished, kept)"
    if decisions and not ran and status == "ok":
        return f"{trigger}: nothing to re-run ({warm} warm; code, params and inputs unchanged)"
    head = f"{trigger}: {len(ran)} of {len(decisions)} reactors ran ({format_duration(elapsed)})"
    head += f", {warm} warm"
    if status == "failed":
        head += ", failed"
    why = [f"{d.reactor}: {d.reasons[0]}" for d in ran if d.reasons and d.reasons[0] != "target"]
    return head + (f", why: {'; '.join(why[:3])}" if why else "")


class _PrefixedStream(io.TextIOBase):
    """Whole lines, prefixed with the reactor printing them, onto the console."""

    def __init__(
        self, console: RichConsole, stderr: bool, on_line: Callable[[str | None, str], None]
    ) -> None:
        self.console, self.stderr, self.on_line = console, stderr, on_line
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = ""

    def _emit(self, line: str) -> None:
        name = running_reactor()
        text = Text(f"[{name}] " if name else "", style="cyan")
        text.append(line, style="red" if self.stderr else "")
        self.console.print(text)
        self.on_line(name, line)


@contextlib.contextmanager
def _prefixed_output(
    console: RichConsole, on_line: Callable[[str | None, str], None]
) -> Iterator[None]:
    stdout = _PrefixedStream(console, False, on_line)
    stderr = _PrefixedStream(console, True, on_line)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = stdout, stderr  # type: ignore[assignment]
    log_filter = _PrefixLogRecords()
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(log_filter)
    try:
        yield
    finally:
        stdout.flush()
        stderr.flush()
        sys.stdout, sys.stderr = saved
        for handler in handlers:
            handler.removeFilter(log_filter)


class _PrefixLogRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        name = running_reactor()
        if name and not str(record.msg).startswith(f"[{name}]"):
            record.msg = f"[{name}] {record.msg}"
        return True
