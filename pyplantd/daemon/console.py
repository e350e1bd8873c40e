"""What the daemon shows in its terminal: one line per reactor of the run (warm, running with
its elapsed time, done with its duration, failed), a summary per run, the memory line, errors
in the `path:line` form, and the reactors' own output prefixed with their names (written in
batches, see printed.py).

A live view when the output is a terminal, plain lines otherwise (logs, pipes, tests).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from pyplant_client.progress import PlainProgress, progress_text
from rich.console import Console as RichConsole
from rich.live import Live
from rich.text import Text

from ..errors import ReactorFailedError
from ..events import EventType, PlantEvent
from ..run.executors.driver import running_reactor
from ..run.history import format_duration
from ..run.judge import Decision
from ..sizes import format_size
from ..terminal.report import result_table, user_traceback
from ..terminal.run_view import RunView
from .loader import LoadError
from .printed import PrintedLines
from .state import failure_fields

if TYPE_CHECKING:
    from ..plant import Plant


class Console:
    def __init__(
        self,
        stream: IO[str] | None = None,
        live: bool | None = None,
        reactor_lines: bool = True,
        prefix: bool = True,
        capture: bool = True,
    ) -> None:
        """`reactor_lines`: without the live view, a line per reactor as it ends (`pyplantd
        run` prints its table instead); `prefix`: reactors' lines start with their name;
        `capture`: without the live view too, reactors' output goes through this console
        (`pyplantd run` leaves it alone then, as `python pipeline.py` would)."""
        self.out = RichConsole(file=stream or sys.stdout, highlight=False, soft_wrap=True)
        self.live_view = self.out.is_terminal if live is None else live
        self.reactor_lines, self.prefix, self.capture = reactor_lines, prefix, capture
        self.view = RunView()
        self._plain_progress = PlainProgress()
        # What reactors printed, once shown: one or more lines, joined with newlines.
        self.on_line: Callable[[str | None, str], None] = lambda reactor, text: None
        self.printed = PrintedLines(self._write_printed, lambda r, text: self.on_line(r, text))

    # -- lines ------------------------------------------------------------------------------
    def notice(self, text: str) -> None:
        self.print(Text(text, style="dim"))

    def error(self, text: str) -> None:
        self.print(Text(f"error: {text}", style="bold red"))

    def print(self, text: Text) -> None:
        """One line. Without colours (a log file, a pipe) it is written as is: rich's print
        costs ~0.1 ms a line, several times a run, on the path from a save to its result."""
        self.printed.flush()  # what reactors printed before comes first
        if self.plain:
            self.out.file.write(text.plain + "\n")
            self.out.file.flush()
        else:
            self.out.print(text)

    def print_block(self, text: Text) -> None:
        """Several lines, through rich (a traceback, the result table)."""
        self.printed.flush()
        self.out.print(text)

    @property
    def plain(self) -> bool:
        return self.out.color_system is None and not self.live_view

    def _write_printed(self, reactor: str | None, stderr: bool, lines: list[str]) -> None:
        """A batch of lines one reactor printed, in one write."""
        prefix = f"[{reactor}] " if reactor and self.prefix else ""
        if self.plain:
            self.out.file.write("".join(f"{prefix}{line}\n" for line in lines))
            self.out.file.flush()
            return
        text = Text()
        for i, line in enumerate(lines):
            text.append(("\n" if i else "") + prefix, style="cyan")
            text.append(line, style="red" if stderr else "")
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
        self.print_block(Text(text.rstrip("\n"), style="red"))

    def load_cancelled(self, trigger: str, name: str, elapsed: float) -> None:
        self.print(Text(f"{trigger}: loading {name} cancelled ({format_duration(elapsed)})"))

    def reload_failed(self, trigger: str, where: LoadError, failure: BaseException) -> None:
        self.print_block(Text(f"{trigger}: the script did not load; keeping the last good state"))
        self.print(
            Text(f"{where.path}:{where.line}:{where.column}: error: {where.message}", "bold red")
        )
        if not isinstance(failure, SyntaxError) and not isinstance(failure.__cause__, SyntaxError):
            self.print_block(Text(user_traceback(failure), style="red"))

    def reactor_failed(self, failure: ReactorFailedError) -> None:
        """`path:line:col: error: reactor: Type: message` (as `pyplant run` prints it, which
        editors read), then the traceback of the user's code."""
        cause = failure.__cause__ or failure
        self.print(Text(failure_line(failure.reactor, cause), style="bold red"))
        self.print_block(Text(user_traceback(cause), style="red"))

    # -- a run ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def run(self, trigger: str, plant: Plant) -> Iterator[None]:
        """Show the run as it happens; reactors' output comes out prefixed with their name."""
        with self.showing():
            self.follow(plant)
            try:
                yield
            finally:
                plant.remove_event_listener(self._on_event)

    @contextlib.contextmanager
    def showing(self) -> Iterator[None]:
        """The live view (on a terminal) and the reactors' output, printed, logged, or updated
        in place with carriage returns, routed through this console while reactors run."""
        self.view = RunView()
        self._plain_progress = PlainProgress()
        with contextlib.ExitStack() as stack:
            if self.live_view:
                live = Live(
                    console=self.out, get_renderable=lambda: self.view, transient=True,
                    refresh_per_second=8, redirect_stdout=False, redirect_stderr=False,
                )  # fmt: skip
                stack.enter_context(live)
            if self.live_view or self.capture:
                stack.enter_context(
                    _prefixed_output(self.out, self.printed, self.view.set_status, self.prefix)
                )
            yield

    def follow(self, plant: Plant) -> None:
        """Show this plant's reactors (`pyplantd run` follows each plant the script makes)."""
        plant.subscribe(self._on_event)

    def _on_event(self, event: PlantEvent) -> None:
        self.view.on_event(event)
        if self.live_view:
            return  # the live view says it; plain output needs lines
        name = event.reactor or ""
        if event.type is EventType.reactor_progress:
            if self._plain_progress.due(name, event.data):
                self.print(Text(f"  ⋯ {name} {progress_text(event.data)}"))
        elif not self.reactor_lines:
            return
        elif event.type is EventType.reactor_finished:
            duration = format_duration(float(event.data.get("duration", 0.0)))
            where = event.data.get("where")
            place = f" on {where}" if where and where != "main" else ""  # main: as always
            self.print(Text.assemble("  ", ("✓", "green"), f" {name} {duration}{place}"))
        elif event.type is EventType.reactor_cached:
            restored = event.data.get("reasons") or []
            why = f" ({restored[0]})" if restored else ""
            self.print(Text(f"  · {name} warm{why}", style="dim"))
        elif event.type is EventType.reactor_failed:
            error = event.data.get("error", "")
            self.print(Text.assemble("  ", (f"✗ {name}", "bold red"), f" {error}"))

    def run_finished(
        self, trigger: str, decisions: list[Decision], status: str, elapsed: float, plant: Plant
    ) -> None:
        if self.live_view and decisions:  # the live rows were transient: the outcome stays
            rows = max(10, self.out.size.height - 8)
            self.printed.flush()
            self.out.print(result_table(decisions, rows, cached="warm"))
        self.print(Text(summary(trigger, decisions, status, elapsed)))
        store = plant.store
        use = store.memory_use()
        warm, budget, writing = use["warm_bytes"], use["budget"], use["writing_bytes"]
        self.print(
            Text(
                f"memory: {format_size(warm)} warm of {format_size(budget)}, "
                f"{format_size(use['spilled_bytes'])} spilled to disk"
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
    # and why a reactor was served although what it receives was made again (early cutoff),
    # or an earlier result of it came back
    why += [f"{d.reactor}: {d.reasons[0]}" for d in decisions if d.status == "cached" and d.reasons]
    return head + (f", why: {'; '.join(why[:3])}" if why else "")


def failure_line(reactor: str, cause: BaseException) -> str:
    """`path:line:col: error: reactor: Type: message`, at the innermost frame of the user's code
    (`error: ...` when the user's code is not on the traceback)."""
    fields = failure_fields(cause)
    message = " ".join(f"{reactor}: {fields['exception']}: {fields['message']}".split())
    if not fields["path"]:
        return f"error: {message.rstrip(':')}"
    return f"{fields['path']}:{fields['line']}:{fields['column']}: error: {message.rstrip(':')}"


class _PrefixedStream(io.TextIOBase):
    """Whole lines, with the reactor printing them, onto the console's printed lines. A line
    being updated in place (carriage returns, as progress bars do) is a status, not a line each
    time: the live view shows it, and only what the line finally says is printed."""

    encoding = "utf-8"  # the console writes any text (tqdm draws its bar in ASCII otherwise)

    def __init__(
        self,
        printed: PrintedLines,
        stderr: bool,
        on_status: Callable[[str | None, str], None] = lambda reactor, text: None,
    ) -> None:
        self.printed, self.stderr, self.on_status = printed, stderr, on_status
        # What each thread wrote since its last line end, and the reactor that began that line:
        # reactors printing at once on several threads each get their own whole lines.
        self._pending: dict[int, tuple[str | None, str]] = {}
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        thread, lines = threading.get_ident(), []
        with self._lock:
            name, pending = self._pending.pop(thread, (running_reactor(), ""))
            pending += text
            while "\n" in pending:
                line, pending = pending.split("\n", 1)
                lines.append(line)
            if pending:  # a line is the reactor's that began it, even if it ends later
                self._pending[thread] = (name if not lines else running_reactor(), pending)
        for line in lines:
            self._emit(line, name)
        if "\r" in pending:
            self.on_status(running_reactor(), _overlaid(pending).strip())
        return len(text)

    def flush(self) -> None:
        thread = threading.get_ident()
        with self._lock:
            name, pending = self._pending.get(thread, (None, ""))
            if not pending or "\r" in pending:  # a status waits for its line's end
                return
            del self._pending[thread]
        self._emit(pending, name)

    def close(self) -> None:
        """The end of the run: what is pending is a line."""
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        for name, text in pending:
            self._emit(text, name)

    def _emit(self, line: str, name: str | None) -> None:
        if "\r" in line:
            self.on_status(name, "")
            line = _overlaid(line).rstrip()
            if not line:
                return  # the updated line was wiped at its end (tqdm with leave=False)
        self.printed.add(name, self.stderr, line)


def _overlaid(line: str) -> str:
    """What a terminal shows of a line rewritten with carriage returns: each part overwrites the
    start of what was there."""
    shown = ""
    for part in line.split("\r"):
        shown = part + shown[len(part) :]
    return shown


@contextlib.contextmanager
def _prefixed_output(
    console: RichConsole,
    printed: PrintedLines,
    on_status: Callable[[str | None, str], None],
    prefix: bool,
) -> Iterator[None]:
    def stream(stderr: bool) -> _PrefixedStream:
        return _PrefixedStream(printed, stderr, on_status)

    stdout, stderr = stream(False), stream(True)
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = stdout, stderr  # type: ignore[assignment]
    try:
        with _logging_through(console, saved, stream, prefix):
            yield
    finally:
        stdout.close()
        stderr.close()
        sys.stdout, sys.stderr = saved
        printed.close()


@contextlib.contextmanager
def _logging_through(
    console: RichConsole,
    terminal: tuple[IO[str], IO[str]],
    stream: Callable[[bool], _PrefixedStream],
    prefix: bool,
) -> Iterator[None]:
    """Log records, once each and prefixed: a handler writing to the terminal (`basicConfig`
    in the script made it before the run) writes through the console instead, as prints do,
    which keeps its lines whole and off the live view; any other handler (a log file) gets
    the reactor's name at the start of each record."""
    rerouted: list[tuple[logging.StreamHandler[Any], Any]] = []
    prefixed: list[logging.Handler] = []
    for handler in _all_handlers():
        if isinstance(handler, logging.StreamHandler) and _is_terminal(
            handler.stream, console, terminal
        ):
            own = stream(True)  # one per handler: its lock keeps its lines whole
            rerouted.append((handler, handler.setStream(own)))
        elif prefix and "format" not in vars(handler):
            handler.format = _prefixed_format(handler.format)  # type: ignore[method-assign]
            prefixed.append(handler)
    try:
        yield
    finally:
        for handler, original in rerouted:
            replaced = handler.setStream(original)
            if isinstance(replaced, _PrefixedStream):
                replaced.close()
        for handler in prefixed:
            del handler.format


def _all_handlers() -> list[logging.Handler]:
    loggers: list[Any] = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    found: dict[int, logging.Handler] = {}
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):  # placeholders have none
            found.setdefault(id(handler), handler)
    return list(found.values())


def _is_terminal(stream: Any, console: RichConsole, terminal: tuple[IO[str], IO[str]]) -> bool:
    if stream in (*terminal, sys.__stdout__, sys.__stderr__, console.file):
        return True
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return fd in (1, 2)


def _prefixed_format(format_record: Callable[[logging.LogRecord], str]) -> Callable[..., str]:
    def prefixed(record: logging.LogRecord) -> str:
        name = running_reactor()
        return f"[{name}] {format_record(record)}" if name else format_record(record)

    return prefixed
