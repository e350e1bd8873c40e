"""The `pyplantd` command line (typer): run, watch, accept, graph, ls, clean, config.

Each command resolves its settings once (settings.py: flags over PYPLANTD_* variables over
`[tool.pyplantd]` in pyproject.toml over defaults) and hands that one value on.

Exit codes: 0 success, 1 the pipeline failed (a reactor raised, an ingredient nobody sends, a
cycle, the script itself), 2 usage errors (bad arguments, unknown reactor, unusable plant dir).
"""

from __future__ import annotations

import ast
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pyplant_client import completion
from rich.console import Console

from . import __version__, settings
from .errors import (
    DependencyCycleError,
    IngredientNotFoundError,
    PlantError,
    ReactorFailedError,
    ReactorNotFoundError,
    ScriptError,
)
from .graph.host import GraphHost
from .hosting.host import hosting
from .hosting.oneshot import OneShotHost, OneShotOptions
from .hosting.script import run_script
from .run.executors import CLUSTER_SCHEMES, ExecutorChoice
from .settings import PlantOptions, Settings, SettingsError
from .sizes import format_size
from .store import listing
from .store.manifest import DB_NAME
from .store.plant_store import PlantStore
from .terminal import report

if TYPE_CHECKING:
    from .daemon import console as daemon_console

app = typer.Typer(
    help="Run PyPlant pipelines, re-running only what a change affected.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _show_version(value: bool) -> None:
    if value:
        out.print(f"pyplantd {__version__}")
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
    """Run PyPlant pipelines, re-running only what a change affected."""


def _settings(**flags: Any) -> Settings:
    """The command's settings, resolved once; a bad value is a usage error (exit 2)."""
    try:
        return settings.resolve(flags)
    except SettingsError as failure:
        err.print(f"Error: {failure}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


# -- names for shell completion: read from the script, never by running it -------------------
def _pipeline_for_completion(ctx: typer.Context) -> Path | None:
    given = ctx.params.get("pipeline")
    if given:
        return Path(given)
    try:
        return settings.resolve().pipeline
    except Exception:  # a completion never fails: it offers less
        return None


def _reactor_defs(pipeline: Path) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    try:
        tree = ast.parse(pipeline.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            called = [d.func if isinstance(d, ast.Call) else d for d in node.decorator_list]
            names = {getattr(d, "id", getattr(d, "attr", "")) for d in called}
            if "ReactorFunc" in names:
                yield node


def complete_reactors(ctx: typer.Context, incomplete: str) -> list[str]:
    pipeline = _pipeline_for_completion(ctx)
    names = [node.name for node in _reactor_defs(pipeline)] if pipeline else []
    return completion.matching(names, incomplete)


def complete_ingredients(ctx: typer.Context, incomplete: str) -> list[str]:
    """The names the script's reactors send with a literal (`pipe.send("data", ...)`)."""
    pipeline = _pipeline_for_completion(ctx)
    names = []
    for node in _reactor_defs(pipeline) if pipeline else []:
        for call in ast.walk(node):
            if (
                isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and call.func.attr in ("send", "allocate") and call.args
                and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)
            ):  # fmt: skip
                names.append(call.args[0].value)
    return completion.matching(names, incomplete)


def complete_names(ctx: typer.Context, incomplete: str) -> list[str]:
    return sorted(set(complete_reactors(ctx, incomplete) + complete_ingredients(ctx, incomplete)))


PipelineArg = Annotated[
    Path | None,
    typer.Argument(
        metavar="[PIPELINE]",
        help="The pipeline script (default: pipeline in [tool.pyplantd], else pipeline.py).",
    ),
]
PlantDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--plant-dir", help="Use this plant dir, not the script's (or PYPLANTD_PLANT_DIR)."
    ),
]
VersionsOpt = Annotated[
    bool | None,
    typer.Option("--track-versions/--no-track-versions", help="Re-run on package upgrades."),
]
TargetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--target", "-t", help="Run this reactor instead of the script's (repeat).",
        autocompletion=complete_reactors,
    ),
]  # fmt: skip
MemoryOpt = Annotated[
    str | None,
    typer.Option(
        "--memory", help="Memory budget of the warm tier, e.g. 512MB, 4GiB (default: 1/4 of RAM)."
    ),
]
EXECUTOR_FORMS = ["inline", "threads:2", "threads:4", "local:2", "local:4"]  # offered
ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor", help="Where reactors run: inline (default), threads:N, local:N.",
        autocompletion=lambda incomplete: completion.matching(EXECUTOR_FORMS, incomplete),
    ),
]  # fmt: skip
ClusterOpt = Annotated[
    str | None,
    typer.Option(
        "--cluster", help="Run reactors on the dask scheduler at ADDRESS (tcp:// or tls://).",
        metavar="ADDRESS",
    ),
]  # fmt: skip
InsecureClusterOpt = Annotated[
    bool | None,
    typer.Option(
        "--insecure-cluster", help="Allow a plain tcp:// --cluster address off this machine."
    ),
]
LocalBelowOpt = Annotated[
    float | None,
    typer.Option(
        "--local-below", metavar="SECONDS", help="With local:N or --cluster: a reactor whose last "
        "run took less runs in this process (default 1; 0: every reactor on the workers).",
    ),
]  # fmt: skip
DiskOpt = Annotated[
    str | None,
    typer.Option("--disk", help="Disk budget for kept versions (default: 1/2 of free space)."),
]


@app.command()
def run(
    pipeline: PipelineArg = None,
    plant_dir: PlantDirOpt = None,
    target: TargetOpt = None,
    explain: Annotated[bool, typer.Option(help="Say, per reactor, why it ran or not.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print what would run and why; run nothing, create nothing."
        ),
    ] = False,
    track_versions: VersionsOpt = None,
    memory: MemoryOpt = None,
    disk: DiskOpt = None,
    executor: ExecutorOpt = None,
    cluster: ClusterOpt = None,
    insecure_cluster: InsecureClusterOpt = None,
    local_below: LocalBelowOpt = None,
) -> None:
    """Run PIPELINE once, as `python PIPELINE` would, and print what ran and why."""
    resolved = _settings(
        pipeline=pipeline, plant_dir=plant_dir, targets=target, track_versions=track_versions,
        memory=memory, disk=disk, executor=_executor_flag(executor, cluster),
        insecure_cluster=insecure_cluster, local_below=local_below,
    )  # fmt: skip
    view = _run_view()
    options = OneShotOptions(
        resolved, "plan" if dry_run else "run", on_open=None if dry_run else _announce_store,
        on_plant=view.follow,
    )  # fmt: skip
    with contextlib.nullcontext() if dry_run else view.showing():
        host = _execute(resolved.pipeline, options)
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
    pipeline: PipelineArg = None,
    target: TargetOpt = None,
    plant_dir: PlantDirOpt = None,
    memory: MemoryOpt = None,
    disk: DiskOpt = None,
    debounce: Annotated[
        float | None,
        typer.Option("--debounce", help="Quiet time after a save, in milliseconds (default 20)."),
    ] = None,
    poll: Annotated[
        bool | None,
        typer.Option("--poll/--no-poll", help="Re-scan files instead of OS notifications."),
    ] = None,
    tcp: Annotated[
        bool | None,
        typer.Option(
            "--tcp/--no-tcp", help="Serve clients on tcp://127.0.0.1 instead of a Unix socket."
        ),
    ] = None,
    track_versions: VersionsOpt = None,
    executor: ExecutorOpt = None,
    cluster: ClusterOpt = None,
    insecure_cluster: InsecureClusterOpt = None,
    local_below: LocalBelowOpt = None,
) -> None:
    """Run PIPELINE, then again on every save, re-running only what the save affected."""
    from .daemon.console import Console
    from .daemon.engine import Engine, WatchOptions
    from .daemon.runtime import DaemonRunningError

    resolved = _settings(
        pipeline=pipeline, targets=target, plant_dir=plant_dir, memory=memory, disk=disk,
        debounce=debounce, poll=poll, tcp=tcp, track_versions=track_versions,
        executor=_executor_flag(executor, cluster), insecure_cluster=insecure_cluster,
        local_below=local_below,
    )  # fmt: skip
    if not resolved.pipeline.is_file():
        _no_pipeline(resolved)
    try:
        code = Engine(WatchOptions.from_settings(resolved), Console()).serve()
    except (DaemonRunningError, PlantError) as failure:
        err.print(f"Error: {failure}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


def _executor_flag(executor: str | None, cluster: str | None) -> str | None:
    """--executor and --cluster set the same setting: one of them, and --cluster an address."""
    if cluster is None:
        return executor
    if executor is not None:
        err.print(
            f"Error: --executor {executor} and --cluster {cluster} both say where reactors run. "
            "Give one of them."
        )
        raise typer.Exit(2)
    if not cluster.startswith(CLUSTER_SCHEMES):
        err.print(
            f"Error: --cluster {cluster} is not a cluster address. Write it as tcp://HOST:PORT "
            "or tls://HOST:PORT (for a cluster on this machine, use --executor local:N)."
        )
        raise typer.Exit(2)
    return cluster


def _no_pipeline(resolved: Settings) -> None:
    source = resolved["pipeline"].source
    hint = ""
    if source == settings.DEFAULT:
        hint = " Name it, or set pipeline in [tool.pyplantd] of pyproject.toml."
    elif source == settings.PYPROJECT:
        hint = f" It is set by {resolved.source('pipeline')}."
    err.print(f"Error: pipeline script {resolved.pipeline} does not exist.{hint}", markup=False,
              soft_wrap=True)  # fmt: skip
    raise typer.Exit(2)


@app.command()
def accept(
    reactors: Annotated[
        list[str],
        typer.Argument(
            help="Reactors whose code change is harmless.", autocompletion=complete_reactors
        ),
    ],
    pipeline: Annotated[
        Path | None,
        typer.Option(
            "--pipeline",
            "-p",
            help="The pipeline script defining them (default: as for run).",
        ),
    ] = None,
    plant_dir: PlantDirOpt = None,
) -> None:
    """Record REACTORS' current code as matching their stored outputs, so they do not re-run."""
    resolved = _settings(pipeline=pipeline, plant_dir=plant_dir)
    host = _execute(resolved.pipeline, OneShotOptions(resolved, "accept", list(reactors)))
    for name in host.accepted:
        out.print(f"accepted {name}: its stored outputs now count as up to date")


@app.command("ls")
def list_ingredients(
    pipeline: PipelineArg = None,
    plant_dir: Annotated[
        Path | None,
        typer.Option(
            "--plant-dir",
            help="The plant dir to look at (default: the pipeline's).",
        ),
    ] = None,
) -> None:
    """List the ingredients of a plant: producer, type, shape, size, tier, age, versions.

    Through the daemon while one holds the plant (then its warm tier shows)."""
    resolved = _settings(pipeline=pipeline, plant_dir=plant_dir)
    client = _daemon_for(resolved)
    if client is not None:
        with client:
            rows = [_row(row) for row in _ask(client, client.ingredients)]
    else:
        rows = _offline(lambda path: listing.list_ingredients(path), _plant_dir(resolved))
    if not rows:
        out.print("No ingredients yet: run a pipeline first.")
        return
    out.print(report.ingredient_table(rows))


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
    pipeline: Annotated[
        Path | None,
        typer.Option(
            "--pipeline", "-p", help="The pipeline whose plant to clean (default: as for run)."
        ),
    ] = None,
    plant_dir: Annotated[
        Path | None,
        typer.Option(
            "--plant-dir",
            help="The plant dir to clean (default: the pipeline's).",
        ),
    ] = None,
) -> None:
    """Remove old versions (by default), the named ingredients, or --all results.

    Through the daemon while one holds the plant."""
    if names and everything:
        err.print("Error: name ingredients or give --all, not both.")
        raise typer.Exit(2)
    resolved = _settings(pipeline=pipeline, plant_dir=plant_dir)
    what = "every result" if everything else (", ".join(names) if names else "old versions")
    client = _daemon_for(resolved)
    if client is not None:
        with client:
            result = _ask(client, lambda: client.clean(names or [], everything))
        if result.get("queued"):
            out.print(f"removing {what} once the daemon's current run ends")
            return
        out.print(f"removed {what} through the daemon: {format_size(result.get('freed', 0))} freed")
        return
    freed = _offline(lambda path: _clean_dir(path, names or [], everything), _plant_dir(resolved))
    out.print(f"removed {what}: {format_size(freed)} freed")


def _clean_dir(path: Path, names: list[str], everything: bool) -> int:
    store = PlantStore(path, memory=0)
    try:
        return store.clean(names, everything)
    finally:
        store.close()


def _daemon_for(resolved: Settings) -> Any:
    """A client to the daemon holding this plant, if one does."""
    from .hosting.daemon_link import daemon_holding

    pipeline = resolved.pipeline if resolved.pipeline.is_file() else None
    try:
        return daemon_holding(pipeline, resolved.plant_dir)
    except PlantError as failure:
        err.print(f"Error: {failure}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _ask(client: Any, question: Any) -> Any:
    from pyplant_client import ClientError

    try:
        return question()
    except ClientError as failure:
        err.print(f"Error: {failure}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _row(row: dict[str, Any]) -> listing.IngredientRow:
    return listing.IngredientRow(
        str(row.get("name")), str(row.get("producer")), str(row.get("type")),
        str(row.get("shape") or ""), int(row.get("size") or 0), str(row.get("tier")),
        float(row.get("age") or 0.0), int(row.get("versions") or 0),
    )  # fmt: skip


def _offline(action: Any, path: Path) -> Any:
    try:
        return action(path)
    except PlantError as failure:
        err.print(f"Error: {failure}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _plant_dir(resolved: Settings) -> Path:
    """The plant dir from the settings, else the one the pipeline's Plant(...) names."""
    from .hosting.probe import plant_dir_of

    if resolved.plant_dir is None and not resolved.pipeline.is_file():
        err.print(
            f"Error: no plant dir to look at: {resolved.pipeline} does not exist. Name the "
            "pipeline (pyplantd ls PIPELINE), the plant dir (--plant-dir DIR), or set either in "
            "[tool.pyplantd] of pyproject.toml.", markup=False, soft_wrap=True,
        )  # fmt: skip
        raise typer.Exit(2)
    try:
        path = plant_dir_of(resolved)
    except (PlantError, OSError) as failure:
        err.print(f"Error: {failure}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if not (path / DB_NAME).exists():
        err.print(
            f"Error: {path} is not a plant dir (it has no {DB_NAME}): run the pipeline first."
        )
        raise typer.Exit(2)
    return path


@app.command()
def config(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON.")] = False,
) -> None:
    """Print the effective settings and where each came from.

    Sources: the tool.pyplantd table of pyproject.toml, PYPLANTD_PLANT_DIR, or the default; a
    command's flags override them."""
    import json

    resolved = _settings()
    if as_json:
        values = {
            key.name: {"value": _jsonable(resolved[key.attribute].value),
                       "source": resolved.source(key.attribute)}
            for key in settings.KEYS
        }  # fmt: skip
        config_file = str(resolved.config_file) if resolved.config_file else None
        out.print_json(json.dumps({"config_file": config_file, "settings": values}))
        return
    where = (
        resolved.config_file or f"none (no {settings.PYPROJECT} with [tool.pyplantd] here or above)"
    )
    out.print(f"config file: {where}", markup=False, soft_wrap=True)
    width = max(len(key.name) for key in settings.KEYS)
    for key in settings.KEYS:
        value = settings.describe(resolved, key.attribute)
        source = resolved[key.attribute].source
        out.print(f"{key.name:<{width}}  {value}  [dim]({source})[/]", soft_wrap=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path | ExecutorChoice):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _run_view() -> daemon_console.Console:
    """Reactors' progress while `run` runs: a live view when the output is a terminal (which
    then shows the reactors' output above it), else a progress line now and then."""
    from .daemon.console import Console as RunConsole

    terminal = sys.stdout.isatty() and sys.stderr.isatty()
    return RunConsole(live=terminal, reactor_lines=False, prefix=False, capture=False)


def _announce_store(store: PlantStore, wanted: PlantOptions) -> None:
    budget = format_size(store.memory_budget)
    source = wanted.sources["memory"]
    origin = "Plant(memory=...) in the script" if source == "the script" else source
    err.print(f"[dim]plant {store.plant_dir}: memory budget {budget} ({origin})[/]")


def _execute(pipeline: Path, options: OneShotOptions) -> OneShotHost:
    """Run the script under a one-shot host; failures exit with the right code."""
    if not pipeline.is_file():
        _no_pipeline(options.settings)
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
    except ReactorNotFoundError as failure:  # e.g. a --target typo: refused before running
        host.remove_unused_plant_dirs()
        err.print(f"Error: {failure}")
        raise typer.Exit(2) from None
    except PlantError as failure:
        err.print(f"Error: {failure}")
        raise typer.Exit(2) from None
    except Exception as failure:  # the script itself raised outside any reactor
        err.print(report.user_traceback(failure), markup=False)
        raise typer.Exit(1) from None
    finally:
        host.remove_scratch()
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
    pipeline: PipelineArg = None,
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
    plant_dir: PlantDirOpt = None,
    track_versions: VersionsOpt = None,
) -> None:
    """Draw PIPELINE: reactors, their state and duration, the ingredients between them.

    States: fresh, stale and why, failed, never ran; ingredients with their size. Runs nothing,
    creates nothing."""
    from pyplant_client import graph_render
    from pyplant_client.errors import GraphError

    try:
        chosen = graph_render.choose_format(fmt, output)
    except GraphError as failure:
        err.print(f"Error: {failure}", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    resolved = _settings(pipeline=pipeline, plant_dir=plant_dir, track_versions=track_versions)
    host = GraphHost(resolved.pipeline, resolved)
    _load_for_graph(resolved, host)
    if host.model is None:
        err.print(f"Error: {resolved.pipeline} made no Plant(...): there is no pipeline to draw.")
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


def _load_for_graph(resolved: Settings, host: GraphHost) -> None:
    """Execute the script under the graph host; only failures before its plant exists stop us."""
    pipeline = resolved.pipeline
    if not pipeline.is_file():
        _no_pipeline(resolved)
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
    completion.run(app, "pyplantd")


if __name__ == "__main__":
    main()
