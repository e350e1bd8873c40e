"""The `pyplantd` command line (typer): run, watch, accept, ls, clean.

Exit codes: 0 success, 1 the pipeline failed (a reactor raised, an ingredient nobody sends, a
cycle, the script itself), 2 usage errors (bad arguments, unknown reactor, unusable plant dir).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from . import report
from .errors import (
    DependencyCycleError,
    IngredientNotFoundError,
    PlantError,
    ReactorFailedError,
    ScriptError,
)
from .graph.host import GraphHost
from .host import hosting
from .oneshot import OneShotHost, OneShotOptions
from .script import run_script
from .sizes import format_size, parse_size
from .store import listing
from .store.manifest import DB_NAME
from .store.plant_store import PlantStore

if TYPE_CHECKING:
    from .daemon import console as daemon_console

app = typer.Typer(
    help="Run PyPlant pipelines, re-running only what a change affected.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

PipelineArg = Annotated[
    Path, typer.Argument(metavar="PIPELINE", help="The pipeline script, e.g. pipeline.py.")
]
PlantDirOpt = Annotated[
    Path | None, typer.Option("--plant-dir", help="Use this plant dir instead of the script's.")
]
VersionsOpt = Annotated[
    bool,
    typer.Option("--track-versions/--no-track-versions", help="Re-run on package upgrades."),
]


def _size(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_size(text)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


MemoryOpt = Annotated[
    str | None,
    typer.Option(
        "--memory", help="Memory budget of the warm tier, e.g. 512MB, 4GiB (default: 1/4 of RAM)."
    ),
]
DiskOpt = Annotated[
    str | None,
    typer.Option("--disk", help="Disk budget for kept versions (default: 1/2 of free space)."),
]
StoreDirOpt = Annotated[
    Path | None,
    typer.Option("--plant-dir", envvar="PYPLANTD_PLANT_DIR", help="The plant dir to look at."),
]


@app.command()
def run(
    pipeline: PipelineArg,
    plant_dir: PlantDirOpt = None,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="Run this reactor instead of the script's (repeat)."),
    ] = None,
    explain: Annotated[bool, typer.Option(help="Say, per reactor, why it ran or not.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would run and why; run nothing.")
    ] = False,
    track_versions: VersionsOpt = True,
    memory: MemoryOpt = None,
    disk: DiskOpt = None,
) -> None:
    """Run PIPELINE once, as `python PIPELINE` would, and print what ran and why."""
    view = _run_view()
    options = OneShotOptions(
        plant_dir, list(target or []), "plan" if dry_run else "run", [], track_versions,
        _size(memory), _size(disk), on_open=_announce_store, on_plant=view.follow,
    )  # fmt: skip
    with contextlib.nullcontext() if dry_run else view.showing():
        host = _execute(pipeline, options)
    if dry_run:
        _print_plan(host)
        return
    decisions = host.decisions()
    if not host.ran_anything():
        err.print("The script ran no reactor. Name one with --target NAME.")
        raise typer.Exit(2)
    out.print(report.decision_table(decisions))
    if explain:
        report.print_explanations(out, decisions)
    out.print(report.summary_line(decisions))


@app.command()
def watch(
    pipeline: PipelineArg,
    target: Annotated[
        list[str] | None,
        typer.Option("--target", "-t", help="Run this reactor instead of the script's (repeat)."),
    ] = None,
    plant_dir: PlantDirOpt = None,
    memory: MemoryOpt = None,
    disk: DiskOpt = None,
    debounce: Annotated[
        float, typer.Option("--debounce", help="Quiet time after a save, in milliseconds.")
    ] = 20.0,
    poll: Annotated[
        bool, typer.Option("--poll", help="Re-scan files instead of OS notifications.")
    ] = False,
    tcp: Annotated[
        bool,
        typer.Option("--tcp", help="Serve clients on tcp://127.0.0.1 instead of a Unix socket."),
    ] = False,
) -> None:
    """Run PIPELINE, then again on every save, re-running only what the save affected."""
    from .daemon.console import Console
    from .daemon.engine import Engine, WatchOptions
    from .daemon.runtime import DaemonRunningError

    if not pipeline.is_file():
        err.print(f"Error: pipeline script {pipeline} does not exist.")
        raise typer.Exit(2)
    options = WatchOptions(
        pipeline, list(target or []), plant_dir, _size(memory), _size(disk), debounce / 1000,
        poll, tcp=tcp,
    )  # fmt: skip
    try:
        code = Engine(options, Console()).serve()
    except (DaemonRunningError, PlantError) as failure:
        err.print(f"Error: {failure}")
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@app.command()
def accept(
    reactors: Annotated[list[str], typer.Argument(help="Reactors whose code change is harmless.")],
    pipeline: Annotated[
        Path, typer.Option("--pipeline", "-p", help="The pipeline script defining them.")
    ] = Path("pipeline.py"),
    plant_dir: PlantDirOpt = None,
) -> None:
    """Record REACTORS' current code as matching their stored outputs, so they do not re-run."""
    host = _execute(pipeline, OneShotOptions(plant_dir, [], "accept", list(reactors)))
    for name in host.accepted:
        out.print(f"accepted {name}: its stored outputs now count as up to date")


@app.command("ls")
def list_ingredients(plant_dir: StoreDirOpt = None) -> None:
    """List the ingredients of a plant dir: producer, type, shape, size, tier, age."""
    rows = listing.list_ingredients(_plant_dir(plant_dir))
    if not rows:
        out.print("No ingredients yet: run a pipeline first.")
        return
    out.print(report.ingredient_table(rows))


@app.command()
def clean(
    names: Annotated[list[str] | None, typer.Argument(help="Ingredients to remove.")] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Remove every stored result (the history stays).")
    ] = False,
    plant_dir: StoreDirOpt = None,
) -> None:
    """Remove old versions (by default), the named ingredients, or --all results."""
    try:
        store = PlantStore(_plant_dir(plant_dir), memory=0)
    except PlantError as failure:
        err.print(f"Error: {failure}")
        raise typer.Exit(2) from None
    try:
        freed = store.clean(list(names or []), everything)
    except PlantError as failure:
        err.print(f"Error: {failure}")
        raise typer.Exit(2) from None
    finally:
        store.close()
    what = "every result" if everything else (", ".join(names) if names else "old versions")
    out.print(f"removed {what}: {format_size(freed)} freed")


def _plant_dir(plant_dir: Path | None) -> Path:
    if plant_dir is None:
        err.print("Error: name the plant dir with --plant-dir DIR (or PYPLANTD_PLANT_DIR).")
        raise typer.Exit(2)
    if not (plant_dir / DB_NAME).exists():
        err.print(f"Error: {plant_dir} is not a plant dir (it has no {DB_NAME}).")
        raise typer.Exit(2)
    return plant_dir


def _run_view() -> daemon_console.Console:
    """Reactors' progress while `run` runs: a live view when the output is a terminal (which
    then shows the reactors' output above it), else a progress line now and then."""
    from .daemon.console import Console as RunConsole

    terminal = sys.stdout.isatty() and sys.stderr.isatty()
    return RunConsole(live=terminal, reactor_lines=False, prefix=False, capture=False)


def _announce_store(store: PlantStore) -> None:
    budget = format_size(store.warm.budget)
    err.print(f"[dim]plant {store.plant_dir}: memory budget {budget}[/]")


def _execute(pipeline: Path, options: OneShotOptions) -> OneShotHost:
    """Run the script under a one-shot host; failures exit with the right code."""
    if not pipeline.is_file():
        err.print(f"Error: pipeline script {pipeline} does not exist.")
        raise typer.Exit(2)
    host = OneShotHost(options)
    try:
        with hosting(host):
            status = run_script(pipeline, after=host.close_all)
    except KeyboardInterrupt:  # Ctrl-C, or raised by the script: exit as python would
        _report_exit(host, "interrupted")
        raise typer.Exit(130) from None
    except ReactorFailedError as failure:
        _report_failure(host, failure)
        raise typer.Exit(1) from None
    except (IngredientNotFoundError, DependencyCycleError) as failure:  # the pipeline is wrong
        err.print(f"Error: {failure}")
        raise typer.Exit(1) from None
    except ScriptError as failure:
        err.print(f"Error: {failure}")
        raise typer.Exit(1) from None
    except PlantError as failure:
        err.print(f"Error: {failure}")
        raise typer.Exit(2) from None
    except Exception as failure:  # the script itself raised outside any reactor
        err.print(report.user_traceback(failure), markup=False)
        raise typer.Exit(1) from None
    if status:
        _report_exit(host, f"the script exits with status {status}, as python would")
        raise typer.Exit(status)
    return host


def _report_exit(host: OneShotHost, what: str) -> None:
    """A reactor's sys.exit() or KeyboardInterrupt ended the run: which, where, and the table."""
    decisions = host.decisions()
    exits = ("SystemExit", "KeyboardInterrupt")
    failed = [d for d in decisions if d.status == "failed" and d.reasons[-1].startswith(exits)]
    if not failed:
        if what == "interrupted":
            err.print("Interrupted: the reactors that finished are kept.")
        return
    out.print(report.decision_table(decisions))
    ended = failed[-1]
    err.print(
        f"Error: Reactor '{ended.reactor}' ended the run: {ended.reasons[-1]}; {what}. "
        "The reactors that finished are kept.",
        markup=False,
    )


def _report_failure(host: OneShotHost, failure: ReactorFailedError) -> None:
    cause = failure.__cause__ or failure
    err.print(report.user_traceback(cause), markup=False)
    decisions = host.decisions()
    if decisions:
        out.print(report.decision_table(decisions))
    err.print(f"Error: {failure}")


def _print_plan(host: OneShotHost) -> None:
    if not host.plans:
        err.print("The script runs no reactor. Name one with --target NAME.")
        raise typer.Exit(2)
    out.print(report.plan_table(host.plans))
    runs = [s for s in host.plans if s.action != "cached"]
    expected = sum(s.expected or 0.0 for s in runs)
    out.print(f"would run {len(runs)} of {len(host.plans)} reactors (about {expected:.2f} s)")


@app.command()
def graph(
    pipeline: Annotated[
        Path,
        typer.Argument(metavar="[PIPELINE]", help="The pipeline script (default: pipeline.py)."),
    ] = Path("pipeline.py"),
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
            "--target", "-t", help="Only this reactor (or ingredient) and what it needs (repeat)."
        ),
    ] = None,
    plant_dir: PlantDirOpt = None,
    track_versions: VersionsOpt = True,
) -> None:
    """Draw PIPELINE: reactors with their state (fresh, stale and why, failed, never ran) and last
    duration, the ingredients between them with their size. Runs nothing, creates nothing."""
    from pyplant_client import graph_render
    from pyplant_client.errors import GraphError

    try:
        chosen = graph_render.choose_format(fmt, output)
    except GraphError as failure:
        err.print(f"Error: {failure}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    host = GraphHost(pipeline, plant_dir, track_versions)
    _load_for_graph(pipeline, host)
    if host.model is None:
        err.print(f"Error: {pipeline} made no Plant(...): there is no pipeline to draw.")
        raise typer.Exit(2)
    try:
        model = graph_render.focus(host.model, target or [])
        data = graph_render.render(model, chosen, graph_render.wants_color(output))
        graph_render.write(data, output)
    except GraphError as failure:
        err.print(f"Error: {failure}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if output is not None:
        out.print(
            f"{output}: {graph_render.summary(model)} ({chosen})", markup=False, soft_wrap=True
        )


def _load_for_graph(pipeline: Path, host: GraphHost) -> None:
    """Execute the script under the graph host; only failures before its plant exists stop us."""
    if not pipeline.is_file():
        err.print(f"Error: pipeline script {pipeline} does not exist.")
        raise typer.Exit(2)
    try:
        with hosting(host):
            run_script(pipeline, after=host.close_all)
    except ScriptError as failure:
        err.print(f"Error: {failure}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except PlantError as failure:
        if host.model is None:
            err.print(f"Error: {failure}", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
        err.print(
            f"note: the script raised once its plant was set up: {failure}",
            markup=False,
            soft_wrap=True,
        )
    except Exception as failure:  # the script's own code, where a run would have given values
        if host.model is None:
            err.print(report.user_traceback(failure), markup=False, soft_wrap=True)
            raise typer.Exit(1) from None
        err.print(
            f"note: the script raised once its plant was set up: {failure!r}",
            markup=False,
            soft_wrap=True,
        )
    finally:
        host.remove_scratch()


def main() -> None:
    app(prog_name="pyplantd")


if __name__ == "__main__":
    main()
