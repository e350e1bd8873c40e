"""The `pyplant` command: drive a running `pyplantd watch` from a terminal or an editor.

Exit codes: 0 success, 1 a reactor of the pipeline failed (or the run did not complete), 2 usage
error or no reachable daemon, 130 Ctrl-C. Failures print as `path:line:column: error: message`
between `run started` and `run finished` lines, the form editors' problem matchers read.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from . import __version__, completion, graph_render, writers
from .client import DEFAULT_TIMEOUT, Client, EventStream, check_alive
from .errors import ClientError, DaemonNotRunningError, GraphError
from .progress import PlainProgress, progress_text
from .protocol import PROTOCOL_VERSION

app = typer.Typer(
    name="pyplant",
    help="Talk to a running `pyplantd watch`: run, follow, inspect, stop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DirOpt = Annotated[
    Path, typer.Option("--dir", help="Where to start looking for the daemon (walks up).")
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=0.0, help="Seconds to wait for the daemon's reply.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")]
TracebackOpt = Annotated[
    bool, typer.Option("--traceback", help="Print failed reactors' tracebacks too.")
]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Leave out the reactors' output, log lines and progress."),
]

SUCCESS_STATUSES = ("ok", "empty")  # "empty": the script made no Plant, nothing to run
STOP_WAIT = 15.0  # seconds `stop` waits for the daemon to exit (it flushes for up to 10 s)


COMPLETION_TIMEOUT = 1.0  # seconds a completion waits for the daemon's names


def main() -> None:
    completion.run(app, "pyplant")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"pyplant {__version__} (pyplant_client, protocol {PROTOCOL_VERSION})")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_show_version, help="Print the version."),
    ] = False,
    show_completion: completion.ShowOpt = None,
    install_completion: completion.InstallOpt = None,
) -> None:
    """Talk to a running `pyplantd watch`: run, follow, inspect, stop."""


# -- names for shell completion, from the daemon (nothing when there is none) ------------------
def _ask_daemon(ctx: typer.Context, question: Any) -> list[str]:
    directory = ctx.params.get("directory") or Path(".")
    try:
        with Client.find(directory, timeout=COMPLETION_TIMEOUT) as client:
            return [str(name) for name in question(client)]
    except Exception:  # a completion never fails: it offers nothing
        return []


def complete_reactors(ctx: typer.Context, incomplete: str) -> list[str]:
    names = _ask_daemon(ctx, lambda client: list(client.status().get("reactors") or {}))
    return completion.matching(names, incomplete)


def complete_ingredients(ctx: typer.Context, incomplete: str) -> list[str]:
    names = _ask_daemon(ctx, lambda client: [row.get("name") for row in client.ingredients()])
    return completion.matching(names, incomplete)


def complete_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Reactors and ingredients (graph --target takes either)."""
    return sorted(set(complete_reactors(ctx, incomplete) + complete_ingredients(ctx, incomplete)))


IngredientArg = Annotated[
    str, typer.Argument(help="The ingredient.", autocompletion=complete_ingredients)
]


@contextlib.contextmanager
def _connected(directory: Path, timeout: float) -> Iterator[Client]:
    """A client, with the CLI's exit codes for what can go wrong."""
    try:
        with Client.find(directory, timeout=timeout) as client:
            yield client
    except ClientError as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


# -- output -----------------------------------------------------------------------------------
def _duration(seconds: object) -> str:
    value = float(seconds) if isinstance(seconds, int | float) else 0.0
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def error_line(event: dict[str, Any]) -> str:
    """`path:line:column: error: message`, or `error: message` when the place is unknown."""
    message = event.get("message", "")
    if event.get("type") == "reactor_failed":
        exception = event.get("exception") or "Error"
        message = f"{event.get('reactor')}: {exception}: {message}".rstrip(": ")
    path, line = event.get("path"), event.get("line")
    if isinstance(path, str) and path and isinstance(line, int) and line > 0:
        column = event.get("column")
        column = column if isinstance(column, int) and column > 0 else 1
        return f"{path}:{line}:{column}: error: {_one_line(message)}"
    return f"error: {_one_line(message)}"


def run_summary(event: dict[str, Any]) -> str:
    parts = [f"{event.get('ran', 0)} ran", f"{event.get('warm', 0)} warm"]
    failed = event.get("failed")
    if isinstance(failed, list) and failed:
        parts.append(f"{len(failed)} failed ({', '.join(map(str, failed))})")
    if "duration" in event:
        parts.append(_duration(event["duration"]))
    return f"run finished: run {event.get('run_id')} {event.get('status')}: {', '.join(parts)}"


def event_line(event: dict[str, Any]) -> str | None:
    """One line for a human (and an editor); None for what `pyplant run` leaves out."""
    kind, reactor = event.get("type"), event.get("reactor")
    if kind == "run_started":
        return f"run started: run {event.get('run_id')} ({event.get('trigger', '')})"
    if kind == "reactor_started":
        return None
    if kind == "reactor_finished" and event.get("result") == "warm":
        why = event.get("why")
        return f"  warm {reactor}" + (f" ({why})" if why else "")
    if kind == "reactor_finished":
        return f"  ran  {reactor} ({_duration(event.get('duration'))})"
    if kind in ("reactor_failed", "reload_failed"):
        return error_line(event)
    if kind == "run_finished":
        return run_summary(event)
    if kind == "log":  # one or more lines the reactor printed
        text = str(event.get("text", event.get("message", "")))
        return "\n".join(f"[{reactor}] {line}" for line in text.split("\n")) if reactor else text
    if kind == "progress":
        return f"  ⋯ {reactor} {progress_text(event)}"
    fields = {k: v for k, v in event.items() if k not in ("v", "type", "seq", "time")}
    return f"{kind} {json.dumps(fields)}"


def _print_traceback(event: dict[str, Any]) -> None:
    text = event.get("traceback")
    if event.get("type") == "reactor_failed" and isinstance(text, str) and text:
        typer.echo("\n".join("    " + line for line in text.rstrip().splitlines()))


class _RunOutput:
    """What `pyplant run` and `wait` print: the run's lines, the reactors' output and log lines
    (prefixed; not with `--quiet`), and their progress: on a terminal one status line at the
    bottom, rewritten in place; in a pipe or an editor's task a line now and then."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.terminal = sys.stdout.isatty()
        self._plain = PlainProgress()
        self._bars: dict[str, str] = {}  # reactor -> its progress text, on the status line
        self._shown = False

    def event(self, event: dict[str, Any]) -> None:
        kind, reactor = event.get("type"), str(event.get("reactor"))
        if kind == "progress":
            if self.quiet:
                return
            if self.terminal:
                self._bars[reactor] = progress_text(event)
                self._draw()
            elif self._plain.due(reactor, event):
                self.line(event_line(event))
            return
        if kind in ("reactor_finished", "reactor_failed"):
            self._bars.pop(reactor, None)
        elif kind == "run_finished":
            self._bars.clear()
        if kind == "log" and self.quiet:
            return
        self.line(event_line(event))

    def line(self, text: str | None) -> None:
        if text is None:
            return
        self._clear()
        typer.echo(text)
        self._draw()

    def _draw(self) -> None:
        if not self._bars:
            self._clear()
            return
        width = shutil.get_terminal_size().columns - 1
        text = " | ".join(f"{name} {bar}" for name, bar in self._bars.items())
        sys.stdout.write("\r\x1b[2K" + text[:width])
        sys.stdout.flush()
        self._shown = True

    def _clear(self) -> None:
        if self._shown:
            sys.stdout.write("\r\x1b[2K")
            sys.stdout.flush()
            self._shown = False


def _stream_run(client: Client, stream: EventStream, run_id: int | None, timeout: float | None,
                traceback: bool, quiet: bool = False) -> int:  # fmt: skip
    """Print a run's events until its run_finished; its exit code."""
    status = "unknown"
    output = _RunOutput(quiet)
    for event in client.follow(stream, run_id, timeout=timeout):
        if event.get("type") == "run_finished" and event.get("synthesized"):
            typer.echo("(some events were missed; the outcome is from `status`)", err=True)
        output.event(event)
        if traceback:
            _print_traceback(event)
        if event.get("type") == "run_finished":
            status = str(event.get("status"))
    if stream.missed:  # gaps in `seq`: events the daemon published that never came
        many = "s" if stream.missed > 1 else ""
        typer.echo(f"({stream.missed} event{many} did not arrive; the output above may lack "
                   "some lines)", err=True)  # fmt: skip
    return 0 if status in SUCCESS_STATUSES else 1


# -- commands ---------------------------------------------------------------------------------
@app.command()
def run(
    reactors: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[REACTOR ...]", help="Default: the script's.", autocompletion=complete_reactors
        ),
    ] = None,
    directory: DirOpt = Path("."),
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    traceback: TracebackOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run the pipeline now and show its progress and the reactors' output; exit 1 if a
    reactor failed."""
    with _connected(directory, timeout) as client, client.subscribe() as stream:
        run_id = client.run(reactors or None)
        code = _stream_run(client, stream, run_id, None, traceback, quiet)
    raise typer.Exit(code)


@app.command()
def wait(
    directory: DirOpt = Path("."),
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0.0, help="Give up after S seconds (exit 2).")
    ] = None,
    traceback: TracebackOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Wait for the current run, or else the next one, to finish; exit code as `run`."""
    with _connected(directory, DEFAULT_TIMEOUT) as client, client.subscribe() as stream:
        code = _stream_run(client, stream, None, timeout, traceback, quiet)
    raise typer.Exit(code)


@app.command()
def events(
    directory: DirOpt = Path("."), timeout: TimeoutOpt = DEFAULT_TIMEOUT, as_json: JsonOpt = False
) -> None:
    """Follow the daemon's events, one line each, until Ctrl-C."""
    with _connected(directory, timeout) as client:
        for event in client.events():
            line = json.dumps(event) if as_json else event_line(event)
            if line is None:
                line = f"  started {event.get('reactor')}"
            typer.echo(line)


@app.command()
def status(
    directory: DirOpt = Path("."), timeout: TimeoutOpt = DEFAULT_TIMEOUT, as_json: JsonOpt = False
) -> None:
    """What the daemon is doing: state, current and last run, reactors, memory."""
    with _connected(directory, timeout) as client:
        result = client.status()
        if as_json:
            typer.echo(json.dumps(result, indent=2))
            return
        typer.echo(f"daemon pid {client.info.pid}: {result.get('pipeline', client.info.pipeline)}")
        for line in _status_lines(result):
            typer.echo(line)


def _status_lines(result: dict[str, Any]) -> Iterator[str]:
    current, last = result.get("current_run"), result.get("last_run")
    state = result.get("activity") or result.get("state", "?")  # what and where, when busy
    if isinstance(current, dict):
        state += f", run {current.get('run_id')} ({current.get('trigger', '')})"
    yield f"state: {state}"
    if isinstance(last, dict):
        yield "last " + run_summary(last).removeprefix("run finished: ")
        if last.get("status") == "reload_failed":
            yield error_line({**last, "type": "reload_failed"})
    reactors = result.get("reactors")
    if isinstance(reactors, dict):
        for name, info in reactors.items():
            info = info if isinstance(info, dict) else {}
            text = f"  {info.get('state', '?'):8} {name}"
            if "duration" in info or "elapsed" in info:
                where = f", on {info['where']}" if isinstance(info.get("where"), str) else ""
                text += f" ({_duration(info.get('duration', info.get('elapsed')))}{where})"
            if info.get("waiting_for"):
                text += f": waiting for {info['waiting_for']}"
            if isinstance(info.get("progress"), dict):
                text += f" {progress_text(info['progress'])}"
            if info.get("why"):
                text += f": {_one_line(info['why'])}"
            yield text
    memory = result.get("memory")
    if isinstance(memory, dict):
        yield (
            f"memory: {_size(memory.get('warm_bytes'))} warm of {_size(memory.get('budget'))}, "
            f"{_size(memory.get('spilled_bytes'))} spilled to disk"
        )
        for entry in memory.get("warm") or []:
            if isinstance(entry, dict):
                yield f"  {_size(entry.get('bytes')):>10} {entry.get('name')}: {entry.get('why')}"


def _size(value: object) -> str:
    size = float(value) if isinstance(value, int | float) else 0.0
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}"
    raise AssertionError("unreachable")


@app.command()
def invalidate(
    reactor: Annotated[
        str,
        typer.Argument(
            help="The reactor to re-run, with what depends on it.", autocompletion=complete_reactors
        ),
    ],
    directory: DirOpt = Path("."),
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Re-run a reactor and everything downstream of it (`pyplant wait` follows the run)."""
    with _connected(directory, timeout) as client:
        typer.echo(f"invalidated {reactor}: run {client.invalidate(reactor)} queued")


@app.command()
def ingredients(
    directory: DirOpt = Path("."), timeout: TimeoutOpt = DEFAULT_TIMEOUT, as_json: JsonOpt = False
) -> None:
    """The plant's ingredients: name, producer, type, shape, size, tier (warm: in the daemon's
    memory only; disk; both). --json gives sizes in bytes."""
    with _connected(directory, timeout) as client:
        rows = client.ingredients()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    columns = ["name", "producer", "type", "shape", "size", "tier"]
    table = [columns] + [
        [_size(row.get(c)) if c == "size" else _cell(row.get(c)) for c in columns] for row in rows
    ]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: object) -> str:
    return "" if value is None else str(value)


@app.command()
def preview(
    name: IngredientArg,
    directory: DirOpt = Path("."),
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """A short look at an ingredient's value (shape, dtype, range; or the start of its repr)."""
    with _connected(directory, timeout) as client:
        typer.echo(client.preview(name))


@app.command()
def fetch(
    name: IngredientArg,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Write it to exactly this file, in the format its suffix names: .npy, .csv "
            "(1-D or 2-D numeric arrays), .json (JSON values), .pkl (with --allow-pickle).",
        ),
    ] = None,
    allow_pickle: Annotated[
        bool,
        typer.Option(
            "--allow-pickle",
            help="Allow pickles: an object's checked payload file, or writing a .pkl.",
        ),
    ] = False,
    directory: DirOpt = Path("."),
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Copy an ingredient's value out of the daemon; plain JSON values print without -o."""
    try:
        fmt = writers.format_of(output, allow_pickle) if output is not None else None
    except writers.WriteError as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(2) from None
    with _connected(directory, timeout) as client:
        if fmt == "pkl":
            data = client.fetch_pickled(name)
            value = None
        else:
            value, data = client.fetch(name, allow_pickle=allow_pickle), None
    try:
        if output is None:
            typer.echo(writers.to_stdout(name, value))
            return
        what = writers.write(output, fmt or "", name, value, data)
    except writers.WriteError as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{output}: {name}, {what}")


@app.command()
def clean(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[INGREDIENT ...]",
            help="Ingredients to remove.",
            autocompletion=complete_ingredients,
        ),
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Remove every stored result (the history stays).")
    ] = False,
    directory: DirOpt = Path("."),
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Remove old versions (by default), the named ingredients, or --all results, through the
    daemon that holds the plant (their producers re-run next time)."""
    if names and everything:
        typer.echo("Error: name ingredients or give --all, not both.", err=True)
        raise typer.Exit(2)
    with _connected(directory, timeout) as client:
        result = client.clean(names or [], everything)
    what = "every result" if everything else (", ".join(names) if names else "old versions")
    if result.get("queued"):
        typer.echo(f"removing {what} once the current run ends (the daemon says when)")
        return
    typer.echo(f"removed {what}: {_size(result.get('freed'))} freed")


@app.command()
def graph(
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="text, mermaid, dot, svg or json (default: -o's suffix, else text).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the graph to this file.")
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            help="Only this reactor (or ingredient) and what it needs (repeat).",
            autocompletion=complete_names,
        ),
    ] = None,
    directory: DirOpt = Path("."),
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
) -> None:
    """Draw the daemon's pipeline: reactors with their state and last duration, the ingredients
    between them with their size."""
    try:
        chosen = graph_render.choose_format(fmt, output)
        with _connected(directory, timeout) as client:
            model = graph_render.focus(client.graph(), target or [])
        data = graph_render.render(model, chosen, graph_render.wants_color(output))
        graph_render.write(data, output)
    except GraphError as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(2) from None
    if output is not None:
        typer.echo(f"{output}: {graph_render.summary(model)} ({chosen})")


@app.command()
def stop(directory: DirOpt = Path("."), timeout: TimeoutOpt = DEFAULT_TIMEOUT) -> None:
    """Stop the daemon (it flushes what is still being written first)."""
    with _connected(directory, timeout) as client:
        client.shutdown()
        typer.echo(f"daemon pid {client.info.pid} stopping")
        deadline = time.monotonic() + STOP_WAIT
        while time.monotonic() < deadline:
            try:
                check_alive(client.info)
            except DaemonNotRunningError:
                typer.echo(f"daemon pid {client.info.pid} stopped")
                return
            time.sleep(0.05)
        typer.echo(f"daemon pid {client.info.pid} is still flushing; it will exit on its own")


if __name__ == "__main__":
    main()
