"""Measures pyplantd next to PyPlant 0.6.0 in every scenario: one-shot runs, the daemon, printing.

1. One-shot: `python pipeline.py` in a new process, PyPlant 0.6.0 and pyplantd alternating run by
   run (and an earlier pyplantd, with --baseline-rev or --baseline-path), for two pipelines:
   `load (N GiB float32, some compute) -> reduce -> plot` (plot reads a strided view of the big
   array) and a 1000-reactor chain; cold, no-change, edit of the last reactor, edit of the middle
   (big) or first (chain) one. Every run's executed reactors and computed values are checked.
2. Daemon: a real `pyplantd watch` per array size; each in-place save of plot is timed from the
   file's close to plot's `reactor_finished` event as a subscribed client (this process) receives
   it, minus plot's own duration. Compared with PyPlant's edit-last run (part 1).
3. Printing: a reactor printing 100,000 lines, under the daemon (save to `run_finished`, every
   line checked in its output: prefixed, in order) and as `python pipeline.py`.

Prints a Markdown section on stdout; progress on stderr.

    bench/.venv/bin/python bench/bench_pyplant.py --gib 1 --reactors 1000 --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from _common import (
    FLOAT32,
    GIB,
    WARM_GIB,
    RunResult,
    child_env,
    fmt_seconds,
    load_average,
    log,
    md_table,
    median,
    percentile,
    run_timed,
    tail,
    touch_own_memory,
    warm_memory,
)
from _pipelines import LOAD_REDUCE_VIEW, PRINT_LINES
from bench_chain import Chain, chain_script
from bench_daemon import CLIENT_DIR, Daemon, read_text, save_in_place, wait_for

ROOT = Path(__file__).resolve().parent.parent
ROWS = 16384  # of the big array; its columns follow from its size
STRIDE = 1024  # plot reads big[::STRIDE, ::STRIDE]
CHAIN_LIMIT = 10_000  # PyPlant 0.6.0 recurses once per upstream ingredient (see bench_chain)
STARTUP_TIMEOUT = 600.0
EVENT_TIMEOUT = 120.0
SCENARIOS = {
    "big": ("cold", "nochange", "edit_last", "edit_middle"),
    "chain": ("cold", "nochange", "edit_last", "edit_first"),
}


@dataclass(frozen=True)
class Engine:
    label: str
    module: str  # what the script imports
    pythonpath: str | None = None  # put first on sys.path: an earlier pyplantd

    def env(self) -> dict[str, str]:
        env = child_env()
        if self.pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [self.pythonpath, env.get("PYTHONPATH")])
            )
        return env


PYPLANT = Engine("PyPlant 0.6.0", "pyplant")
PYPLANTD = Engine("pyplantd", "pyplantd")
# Not an engine: what no engine can avoid, a process that imports numpy and runs the script's own
# top-level code (compiling it, defining its reactors) with an engine whose decorator does
# nothing and whose main block never runs.
FLOOR = Engine("floor", "-")
FLOOR_CODE = (
    "import sys, types, numpy; engine = types.ModuleType('engine');"
    " engine.ReactorFunc = lambda func: func; engine.__all__ = ['ReactorFunc'];"
    " sys.modules['pyplant'] = sys.modules['pyplantd'] = engine;"
    " exec(compile(open('pipeline.py').read(), 'pipeline.py', 'exec'),"
    " {'__name__': 'floor', '__file__': 'pipeline.py'})"
)


# --- the pipelines ------------------------------------------------------------------------------


class Pipeline(Protocol):
    @property
    def gib(self) -> float: ...  # the largest array it makes

    def script(self, module: str) -> str: ...
    def expected(self, name: str) -> float: ...
    def edited(self, scenario: str, rep: int) -> Pipeline: ...
    def ideal(self, scenario: str) -> int: ...


@dataclass(frozen=True)
class Big:
    """load (rows x cols float32) -> reduce -> plot."""

    cols: int
    passes: int
    offset: float = 0.0  # reduce's constant (the middle reactor)
    scale: float = 1.0  # plot's constant (the last reactor)

    @property
    def gib(self) -> float:
        return ROWS * self.cols * FLOAT32 / GIB

    def script(self, module: str) -> str:
        return LOAD_REDUCE_VIEW.format(
            module=module,
            size=f"{self.gib:.2f} GiB float32",
            rows=ROWS,
            cols=self.cols,
            passes=self.passes,
            offset=self.offset,
            scale=self.scale,
        )

    def expected(self, name: str) -> float:
        means = self.cols * (1.0 + self.offset)
        view = math.ceil(ROWS / STRIDE) * math.ceil(self.cols / STRIDE)
        return {"load": 1.0, "reduce": means, "plot": means * self.scale + view}[name]

    def edited(self, scenario: str, rep: int) -> Big:
        if scenario == "edit_last":
            return replace(self, scale=self.scale + 1.0)  # never used before: nothing to restore
        if scenario == "edit_middle":
            return replace(self, offset=self.offset + 1.0)
        return self

    def ideal(self, scenario: str) -> int:
        return {"cold": 3, "edit_middle": 2}.get(scenario, 1)


@dataclass(frozen=True)
class Chained:
    """r0 -> r1 -> ... (bench_chain's script)."""

    chain: Chain
    gib = 0.0

    def script(self, module: str) -> str:
        return chain_script(self.chain, module)

    def expected(self, name: str) -> float:
        return self.chain.expected_sum(int(name[1:]))

    def edited(self, scenario: str, rep: int) -> Chained:
        c = self.chain
        if scenario == "edit_last":
            return Chained(replace(c, last_constant=c.last_constant + 1.0))
        if scenario == "edit_first":
            return Chained(replace(c, first_constant=c.first_constant + 1.0))
        return self

    def ideal(self, scenario: str) -> int:
        return self.chain.reactors if scenario in ("cold", "edit_first") else 1


# --- one engine's working copy ------------------------------------------------------------------


@dataclass
class Sample:
    scenario: str
    result: RunResult
    executed: list[str]
    wrong: list[str]


@dataclass
class Workspace:
    engine: Engine
    root: Path
    pipeline: Pipeline
    timeout: float
    samples: list[Sample] = field(default_factory=list)

    def write(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        (self.root / "pipeline.py").write_text(pipeline.script(self.engine.module))

    def run(self, scenario: str) -> Sample:
        ran_log = self.root / "ran.log"
        ran_log.write_text("")
        cmd = [sys.executable, str(self.root / "pipeline.py")]
        # What the run needs fresh: its arrays, their page cache and a margin (see warm_memory).
        warm = max(WARM_GIB, 3 * self.pipeline.gib + 1)
        result = run_timed(
            cmd, self.timeout, cwd=self.root, env=self.engine.env(), warm_gib=warm, sync=True
        )
        entries = [line.split() for line in ran_log.read_text().splitlines()]
        executed = [e[0] for e in entries if len(e) == 2]
        wrong = [
            f"{e[0]}={e[1]}"
            for e in entries
            if len(e) == 2
            and not math.isclose(float(e[1]), self.pipeline.expected(e[0]), rel_tol=1e-6)
        ]
        sample = Sample(scenario, result, executed, wrong)
        self.samples.append(sample)
        status = "ok" if result.ok else result.failure()[:300]
        log(
            f"  {self.engine.label:16} {scenario:11} {fmt_seconds(result.seconds):>8}  "
            f"executed {len(executed):4}  {status}"
        )
        return sample

    def ok(self, scenario: str) -> list[Sample]:
        return [s for s in self.samples if s.scenario == scenario and s.result.ok]

    def times(self, scenario: str) -> list[float]:
        return [s.result.seconds for s in self.ok(scenario)]


def new_workspace(engine: Engine, parent: Path, pipeline: Pipeline, timeout: float) -> Workspace:
    root = Path(tempfile.mkdtemp(prefix=f"{engine.module}_", dir=parent))
    space = Workspace(engine, root, pipeline, timeout)
    space.write(pipeline)
    return space


def alternating(items: Sequence[Any], turn: int) -> Sequence[Any]:
    """The engines in turn: the first one first in even turns, rotated in odd ones."""
    shift = turn % len(items)
    return [*items[shift:], *items[:shift]]


def measure_oneshot(
    kind: str,
    engines: Sequence[Engine],
    pipeline: Pipeline,
    args: argparse.Namespace,
    parent: Path,
) -> dict[Engine, Workspace]:
    """Cold runs (each in a fresh directory), then rounds of the re-run scenarios."""
    spaces: dict[Engine, Workspace] = {}
    floor = Workspace(FLOOR, parent, pipeline, args.timeout)
    for rep in range(args.cold_repeats):
        log(f"{kind}: cold runs {rep + 1}/{args.cold_repeats}")
        for engine in alternating(engines, rep):
            space = new_workspace(engine, parent, pipeline, args.timeout)
            space.run("cold")
            if engine not in spaces:
                spaces[engine] = space
            else:
                spaces[engine].samples.extend(space.samples)
                shutil.rmtree(space.root, ignore_errors=True)
        measure_floor(floor, spaces[engines[0]].root, "cold")
    turn = 0
    for rep in range(args.repeats):
        log(f"{kind}: round {rep + 1}/{args.repeats}")
        for scenario in SCENARIOS[kind][1:]:
            for engine in alternating(engines, turn):
                space = spaces[engine]
                if not space.ok("cold"):
                    continue
                space.write(space.pipeline.edited(scenario, rep))
                space.run(scenario)
            measure_floor(floor, spaces[engines[0]].root, scenario)
            turn += 1
    return {**spaces, FLOOR: floor}


def measure_floor(floor: Workspace, root: Path, scenario: str) -> None:
    """Interpreter start, numpy, and the script's top-level code, as `python pipeline.py` runs
    them for any engine (see FLOOR_CODE)."""
    result = run_timed([sys.executable, "-c", FLOOR_CODE], floor.timeout, cwd=root)
    floor.samples.append(Sample(scenario, result, [], []))


# --- the daemon ---------------------------------------------------------------------------------


@dataclass
class DaemonRun:
    """Saves of plot to one daemon over load (gib) -> reduce -> plot."""

    engine: Engine
    gib: float
    totals: list[float] = field(default_factory=list)  # close -> plot's reactor_finished
    plot: list[float] = field(default_factory=list)  # plot's own duration (from the event)
    runs_per_save: list[int] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    failure: str = ""

    @property
    def overheads(self) -> list[float]:
        return [t - p for t, p in zip(self.totals, self.plot, strict=True)]


def _client() -> Any:
    with contextlib.suppress(ImportError):
        from pyplant_client.client import Client

        return Client
    sys.path.insert(0, CLIENT_DIR)
    from pyplant_client.client import Client

    return Client


@contextlib.contextmanager
def daemon_session(root: Path, engine: Engine) -> Iterator[tuple[Daemon, Any]]:
    """A daemon on `root/pipeline.py` after its first run, and an event stream subscribed to it."""
    daemon = Daemon(root, engine.pythonpath)
    daemon.start()
    stream = client = None
    try:
        found = wait_for(
            lambda: (root / ".pyplantd" / "connection.json").exists() or not daemon.alive(),
            STARTUP_TIMEOUT,
        )
        if not found or not daemon.alive():
            raise RuntimeError(f"no daemon: {daemon.failure()}")
        client = _client().find(str(root))
        stream = client.subscribe()
        if not wait_for(lambda: daemon.runs_finished() >= 1 or not daemon.alive(), STARTUP_TIMEOUT):
            raise RuntimeError(f"no first run within {STARTUP_TIMEOUT:.0f} s: {daemon.failure()}")
        while stream.next(0.2) is not None:  # what the first run published
            pass
        yield daemon, stream
    finally:
        if stream is not None:
            stream.close()
        if client is not None:
            client.close()
        daemon.stop()


def next_event(stream: Any, kind: str, reactor: str | None = None) -> tuple[dict[str, Any], float]:
    """The next event of this kind (and reactor), and `time.time()` when it was received."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    while time.monotonic() < deadline:
        event = stream.next(max(0.0, deadline - time.monotonic()))
        if event is None:
            break
        if event.get("type") == kind and (reactor is None or event.get("reactor") == reactor):
            return event, time.time()
    raise TimeoutError(f"no {kind} event within {EVENT_TIMEOUT:.0f} s")


def measure_daemon(engine: Engine, gib: float, args: argparse.Namespace, parent: Path) -> DaemonRun:
    run = DaemonRun(engine, gib)
    root = Path(tempfile.mkdtemp(prefix="daemon_", dir=parent))
    big = Big(cols=int(gib * GIB) // FLOAT32 // ROWS, passes=1)
    path = root / "pipeline.py"
    path.write_text(big.script("pyplantd"))
    log(f"daemon {engine.label} {gib:g} GiB: start")
    try:
        with daemon_session(root, engine) as (daemon, stream):
            for i in range(args.saves):
                big = big.edited("edit_last", i)
                (root / "ran.log").write_text("")
                runs_before = daemon.runs_finished()
                warm_memory()
                touch_own_memory()
                closed, _ = save_in_place(path, big.script("pyplantd"))
                event, received = next_event(stream, "reactor_finished", "plot")
                run.totals.append(received - closed)
                run.plot.append(float(event.get("duration", 0.0)))
                next_event(stream, "run_finished")
                wait_for(lambda n=runs_before: daemon.runs_finished() > n, EVENT_TIMEOUT)
                run.runs_per_save.append(daemon.runs_finished() - runs_before)
                logged = [ln.split() for ln in read_text(root / "ran.log").splitlines()]
                run.wrong += [
                    f"{n}={v}" for n, v in logged if not math.isclose(float(v), big.expected(n))
                ]
                if [n for n, _ in logged] != ["plot"]:
                    run.wrong.append(f"executed {[n for n, _ in logged]}")
            time.sleep(0.5)  # a second run for the last save would show by now
            run.runs_per_save[-1:] = [daemon.runs_finished() - runs_before]
    except Exception as err:  # a failing engine is reported, never a crash
        run.failure = f"{type(err).__name__}: {err}: {tail(read_text(root / 'daemon.err'))}"
        log(f"  FAILED {run.failure}")
    shutil.rmtree(root, ignore_errors=True)
    if run.totals:
        log(
            f"  overhead p50 {percentile(run.overheads, 50) * 1000:.1f} ms, "
            f"p95 {percentile(run.overheads, 95) * 1000:.1f} ms"
        )
    return run


# --- printing -----------------------------------------------------------------------------------


@dataclass
class PrintRun:
    engine: Engine
    mode: str  # "plain" (python pipeline.py) or "daemon"
    totals: list[float] = field(default_factory=list)  # plain: the process; daemon: save -> end
    loops: list[float] = field(default_factory=list)  # the print loop, timed in the reactor
    bad_output: list[str] = field(default_factory=list)
    failure: str = ""


def print_script(engine: Engine, lines: int, version: int) -> str:
    return PRINT_LINES.format(module=engine.module, lines=lines, version=version)


def loop_time(root: Path) -> float:
    logged = [ln.split() for ln in read_text(root / "ran.log").splitlines()]
    return float(logged[-1][1]) if logged and len(logged[-1]) == 2 else math.nan


def measure_print_plain(engine: Engine, args: argparse.Namespace, parent: Path) -> PrintRun:
    run = PrintRun(engine, "plain")
    root = Path(tempfile.mkdtemp(prefix="print_", dir=parent))
    (root / "pipeline.py").write_text(print_script(engine, args.lines, 0))
    cold = run_timed([sys.executable, "pipeline.py"], args.timeout, cwd=root, env=engine.env())
    if not cold.ok:
        run.failure = cold.failure()
        return run
    for version in range(1, args.print_repeats + 1):
        (root / "pipeline.py").write_text(print_script(engine, args.lines, version))
        (root / "ran.log").write_text("")
        result = run_timed(
            [sys.executable, "pipeline.py"], args.timeout, cwd=root, env=engine.env()
        )
        if not result.ok:
            run.failure = result.failure()
            break
        run.totals.append(result.seconds)
        run.loops.append(loop_time(root))
        printed = [ln for ln in result.stdout.splitlines() if ln.startswith("line ")]
        if printed != [f"line {i} of version {version}" for i in range(args.lines)]:
            run.bad_output.append(f"version {version}: {len(printed)} lines")
    shutil.rmtree(root, ignore_errors=True)
    log(f"  print plain {engine.label}: {[fmt_seconds(t) for t in run.totals]}")
    return run


def measure_print_daemon(engine: Engine, args: argparse.Namespace, parent: Path) -> PrintRun:
    run = PrintRun(engine, "daemon")
    root = Path(tempfile.mkdtemp(prefix="print_daemon_", dir=parent))
    path = root / "pipeline.py"
    path.write_text(print_script(engine, args.lines, 0))
    try:
        with daemon_session(root, engine) as (daemon, stream):
            for version in range(1, args.print_repeats + 1):
                (root / "ran.log").write_text("")
                warm_memory()
                touch_own_memory()
                closed, _ = save_in_place(path, print_script(engine, args.lines, version))
                _event, received = next_event(stream, "run_finished")
                run.totals.append(received - closed)
                run.loops.append(loop_time(root))
                wanted = [f"[chatter] line {i} of version {version}" for i in range(args.lines)]
                shown = [ln for ln in daemon.lines() if ln.endswith(f"of version {version}")]
                if shown != wanted:
                    run.bad_output.append(f"version {version}: {len(shown)} lines, not as printed")
    except Exception as err:
        run.failure = f"{type(err).__name__}: {err}: {tail(read_text(root / 'daemon.err'))}"
        log(f"  FAILED {run.failure}")
    shutil.rmtree(root, ignore_errors=True)
    log(f"  print daemon {engine.label}: {[fmt_seconds(t) for t in run.totals]}")
    return run


# --- imports ------------------------------------------------------------------------------------

IMPORTS = (
    ("`python -c 'import numpy'`", "import numpy"),
    ("`python -c 'import pyplant'` (PyPlant 0.6.0)", "import pyplant"),
    ("`python -c 'import pyplantd'`", "import pyplantd"),
    ("`python -c 'import numpy; from pyplantd import *'` (what a script loads)",
     "import numpy; from pyplantd import *"),
)  # fmt: skip


def measure_imports(args: argparse.Namespace, parent: Path, before: Engine | None) -> dict:
    """Interpreter starts, in turn, from a folder where no checkout shadows an install."""
    codes = [(code, None) for _, code in IMPORTS]
    if before is not None:
        codes += [(code, before) for _, code in IMPORTS if "pyplantd" in code]
    results: dict[tuple[str, Engine | None], list[RunResult]] = {key: [] for key in codes}
    log(f"imports: {args.import_repeats} rounds")
    for rep in range(args.import_repeats):
        for code, engine in alternating(codes, rep):
            env = engine.env() if engine is not None else None
            cmd = [sys.executable, "-c", code]
            results[(code, engine)].append(run_timed(cmd, args.timeout, cwd=parent, env=env))
    return results


def import_rows(results: dict, before: Engine | None) -> list[list[str]]:
    rows = []
    numpy = results.get(("import numpy", None), [])
    numpy_wall = med([r.seconds for r in numpy if r.ok])
    numpy_cpu = med([r.cpu_seconds for r in numpy if r.ok])
    for title, code in IMPORTS:
        runs = [r for r in results.get((code, None), []) if r.ok]
        wall, cpu = [r.seconds for r in runs], [r.cpu_seconds for r in runs]
        row = [title, cell(wall), cell(cpu), fmt_delta(med(wall) - numpy_wall),
               fmt_delta(med(cpu) - numpy_cpu)]  # fmt: skip
        if before is not None:
            old = [r for r in results.get((code, before), []) if r.ok]
            row += [cell([r.cpu_seconds for r in old]) if old else "—"]
        rows.append(row)
    return rows


def fmt_delta(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1000:+.0f} ms"


# --- the report ---------------------------------------------------------------------------------

TITLES = {
    "cold": "cold",
    "nochange": "no-change re-run",
    "edit_last": "edit the last reactor",
    "edit_middle": "edit the middle reactor",
    "edit_first": "edit the first reactor",
}


def ratio(numerator: float, denominator: float) -> str:
    if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
        return "—"
    return f"{numerator / denominator:.2f}x"


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("**met**" if ok else "**not met**")


def med(values: Sequence[float]) -> float:
    return median(values) if values else math.nan


def cell(values: Sequence[float], failed: int = 0) -> str:
    if not values:
        return "failed" if failed else "—"
    text = fmt_seconds(median(values))
    return f"{text} ({fmt_seconds(min(values))})" if len(values) > 1 else text


def oneshot_rows(
    kind: str, title: str, spaces: dict[Engine, Workspace], before: Engine | None
) -> list[list[str]]:
    rows = []
    theirs, ours = spaces.get(PYPLANT), spaces.get(PYPLANTD)
    earlier = spaces.get(before) if before else None
    for scenario in SCENARIOS[kind]:
        t_theirs = theirs.times(scenario) if theirs else []
        t_ours = ours.times(scenario) if ours else []
        speedup = med(t_theirs) / med(t_ours) if t_theirs and t_ours else math.nan
        need = 0.9 if scenario == "cold" else 2.0
        row = [
            f"{title}: {TITLES[scenario]}",
            cell(t_theirs),
            cell(t_ours),
            ratio(med(t_theirs), med(t_ours)),
        ]
        if before:
            t_before = earlier.times(scenario) if earlier else []
            row += [cell(t_before), ratio(med(t_before), med(t_ours))]
        row += [f"≥ {need:g}x", verdict(None if math.isnan(speedup) else speedup >= need)]
        rows.append(row)
    return rows


def cpu_rows(kind: str, title: str, spaces: dict[Engine, Workspace]) -> list[list[str]]:
    """The same runs by CPU time (steadier than wall time on a shared machine), and the floor:
    how far any engine could go (PyPlant's time over the floor's is the best ratio possible)."""
    rows = []
    theirs, ours, floor = spaces.get(PYPLANT), spaces.get(PYPLANTD), spaces.get(FLOOR)
    for scenario in SCENARIOS[kind]:
        cpu_theirs = [s.result.cpu_seconds for s in theirs.ok(scenario)] if theirs else []
        cpu_ours = [s.result.cpu_seconds for s in ours.ok(scenario)] if ours else []
        wall_floor = floor.times(scenario) if floor else []
        wall_theirs = theirs.times(scenario) if theirs else []
        rows.append(
            [
                f"{title}: {TITLES[scenario]}",
                cell(cpu_theirs),
                cell(cpu_ours),
                ratio(med(cpu_theirs), med(cpu_ours)),
                cell(wall_floor),
                ratio(med(wall_theirs), med(wall_floor)),
            ]
        )
    return rows


def oneshot_findings(kind: str, spaces: dict[Engine, Workspace]) -> list[str]:
    notes = []
    for engine, space in spaces.items():
        for scenario in SCENARIOS[kind]:
            samples = [s for s in space.samples if s.scenario == scenario]
            failed = [s for s in samples if not s.result.ok]
            if failed:
                notes.append(
                    f"**{engine.label}, {kind} {scenario}: {len(failed)} failed runs**: "
                    f"{failed[0].result.failure()[:300]}"
                )
            ideal = space.pipeline.ideal(scenario)
            counts = sorted({len(s.executed) for s in samples if s.result.ok})
            if counts and counts != [ideal]:
                notes.append(
                    f"**{engine.label}, {kind} {scenario}: executed {counts} reactors "
                    f"(ideal {ideal})**"
                )
            wrong = [w for s in samples for w in s.wrong]
            if wrong:
                notes.append(f"**{engine.label}, {kind} {scenario}: wrong values {wrong[:4]}**")
    return notes


def daemon_rows(
    runs: list[DaemonRun], pyplant_edit_last: float, before: Engine | None
) -> list[list[str]]:
    rows = []
    for run in [r for r in runs if r.engine == PYPLANTD]:
        earlier = next((r for r in runs if r.engine == before and r.gib == run.gib), None)
        p50, p95 = percentile(run.overheads, 50), percentile(run.overheads, 95)
        for q, value, limit in (("p50", p50, 0.005), ("p95", p95, 0.015)):
            row = [
                f"daemon, {run.gib:g} GiB: save → plot's result event, minus plot ({q})",
                fmt_seconds(pyplant_edit_last) if run.gib == 1 else "—",
                fmt_seconds(value) if run.overheads else f"failed: {run.failure}",
                ratio(pyplant_edit_last, value) if run.gib == 1 else "—",
            ]
            if before:
                old = earlier.overheads if earlier else []
                old_q = percentile(old, 50 if q == "p50" else 95)
                row += [fmt_seconds(old_q) if old else "—", ratio(old_q, value)]
            target = f"≤ {limit * 1000:g} ms" + (
                " and ≥ 100x" if run.gib == 1 and q == "p50" else ""
            )
            ok = value <= limit and (run.gib != 1 or q != "p50" or pyplant_edit_last / value >= 100)
            row += [target, verdict(None if math.isnan(value) else ok)]
            rows.append(row)
    return rows


def print_rows(runs: list[PrintRun], lines: int, before: Engine | None) -> list[list[str]]:
    plain = next((r for r in runs if r.engine == PYPLANTD and r.mode == "plain"), None)
    theirs = next((r for r in runs if r.engine == PYPLANT and r.mode == "plain"), None)
    daemon = next((r for r in runs if r.engine == PYPLANTD and r.mode == "daemon"), None)
    old = next((r for r in runs if r.engine == before and r.mode == "daemon"), None)
    plain_t = med(plain.totals) if plain else math.nan
    daemon_t = med(daemon.totals) if daemon else math.nan
    row = [
        f"printing {lines:,} lines: daemon (save → run finished) / `python pipeline.py`",
        cell(theirs.totals) if theirs else "—",
        cell(daemon.totals) if daemon else "—",
        ratio(daemon_t, plain_t) + f" of pyplantd's plain {fmt_seconds(plain_t)}",
    ]
    if before:
        row += [
            cell(old.totals) if old else "—",
            ratio(med(old.totals) if old else math.nan, daemon_t),
        ]
    row += [
        "≤ 3x plain",
        verdict(None if math.isnan(daemon_t / plain_t) else daemon_t <= 3 * plain_t),
    ]
    return [row]


def print_findings(runs: list[PrintRun]) -> list[str]:
    notes = []
    for run in runs:
        loops = ", ".join(fmt_seconds(t) for t in run.loops)
        totals = ", ".join(fmt_seconds(t) for t in run.totals)
        notes.append(
            f"{run.engine.label}, {run.mode}: runs {totals}; the print loop inside the reactor "
            f"{loops}"
        )
        if run.failure:
            notes.append(f"**{run.engine.label}, {run.mode}: failed**: {run.failure[:300]}")
        if run.bad_output:
            notes.append(
                f"**{run.engine.label}, {run.mode}: output not as printed**: {run.bad_output}"
            )
    return notes


def daemon_findings(runs: list[DaemonRun]) -> list[str]:
    notes = []
    for run in runs:
        ms = ", ".join(f"{o * 1000:.1f}" for o in run.overheads)
        notes.append(f"{run.engine.label}, {run.gib:g} GiB, overhead per save (ms): {ms}")
        if run.failure:
            notes.append(f"**{run.engine.label}, {run.gib:g} GiB: failed**: {run.failure[:300]}")
        extra = [n for n in run.runs_per_save if n != 1]
        if extra:
            notes.append(
                f"**{run.engine.label}, {run.gib:g} GiB: runs per save {run.runs_per_save}**"
            )
        if run.wrong:
            notes.append(f"**{run.engine.label}, {run.gib:g} GiB: {run.wrong[:4]}**")
    return notes


CPU_HEADERS = [
    "scenario", "PyPlant 0.6.0: CPU", "pyplantd: CPU", "PyPlant / pyplantd (CPU)",
    "floor: wall", "PyPlant / floor (wall): the best ratio possible",
]  # fmt: skip

SECTION = """\
## pyplantd next to PyPlant 0.6.0: one-shot re-runs, the daemon, printing

**What is measured.** Each one-shot figure is the wall time of a new process, `python
pipeline.py`, timed with `time.perf_counter` around `subprocess.run` after writing and freeing
2 GiB (the host reclaims idle memory), the engines alternating run by run; the scripts differ
only in their import line; median (min) of {repeats} re-runs and {cold_repeats} cold runs (each
in a fresh directory). Each reactor body appends its name and the value it computed to a file,
from which the harness checks which reactors ran and every value.
- **big**: `load` makes a {gib_text} float32 array ({rows} x {cols}, `np.ones` then {passes}
  in-place `np.sqrt` passes: the reactor's own compute), `reduce` its means over axis 0 plus a
  constant, `plot` receives both and reads `big[::{stride}, ::{stride}]`; target `plot`. Edit the
  last reactor: a constant of `plot`; the middle one: `reduce`'s constant.
- **chain**: {reactors} reactors, `r0` sends a 4-element array, each `r<k>` adds a constant
  (bench_chain's script; `sys.setrecursionlimit({limit})` in both, as PyPlant 0.6.0 recurses
  once per upstream ingredient); edit the last: `r{last}`'s constant; the first: a constant added
  by `r0`, so that all {reactors} re-run.
- **daemon**: a real `python -m pyplantd.cli watch pipeline.py` (output to a file) over the big
  pipeline ({sizes} GiB, one sqrt pass); {saves} in-place saves of a new constant in `plot`,
  each after the 2 GiB warm-up; figure: from just before the saved file's `close()` to the
  moment this process, subscribed to the daemon's events as a client, receives plot's
  `reactor_finished` event, minus plot's own duration (from that event). PyPlant's figure is
  its edit-last re-run above at 1 GiB.
- **printing**: a reactor prints {lines:,} lines (`print(f"line {{i}} of version {{v}}")`), the
  only reactor to run after an edit of it. `python pipeline.py`: the process (stdout a pipe the
  harness reads); daemon: from the save's close to its `run_finished` event; every line checked
  in the daemon's output, prefixed `[chatter] `, in order. {print_repeats} runs each.

The last columns compare with {before_text}. The machine is shared (2 cores): load average
{load_before} before, {load_after} after.

{table}

The one-shot runs by CPU time of the process (user + system; other work on the machine
stretches wall times, hardly CPU times), next to the floor: a process that only starts the
interpreter, imports numpy and runs the script's own top-level code (compiling it and defining
its reactors) with an engine whose decorator returns the function unchanged and whose main
block never runs: `{floor_code}`. `python pipeline.py` does that much with any engine, so
PyPlant's wall time over the floor's is the largest ratio any engine could reach:

{cpu_table}

Imports ({import_repeats} runs each, in turn; target: `import pyplantd` within 15 ms of `import
numpy`):

{import_table}

**Findings.**
{findings}

**Command:** `bash bench/run.sh bench_pyplant{runner_args}`, which runs

    {command}
"""


def render(
    args: argparse.Namespace,
    oneshot: dict[str, dict[Engine, Workspace]],
    daemons: list[DaemonRun],
    prints: list[PrintRun],
    imports: dict,
    before: Engine | None,
    loads: tuple[str, str],
) -> str:
    headers = ["scenario", "PyPlant 0.6.0", "pyplantd", "PyPlant / pyplantd"]
    if before:
        headers += ["pyplantd before", "before / now"]
    headers += ["target", "result"]
    rows: list[list[str]] = []
    notes: list[str] = []
    titles = {
        "big": f"{args.gib:g} GiB load -> reduce -> plot",
        "chain": f"{args.reactors}-reactor chain",
    }
    cpu: list[list[str]] = []
    for kind, spaces in oneshot.items():
        rows += oneshot_rows(kind, titles[kind], spaces, before)
        cpu += cpu_rows(kind, titles[kind], spaces)
        notes += oneshot_findings(kind, {e: w for e, w in spaces.items() if e != FLOOR})
    big = oneshot.get("big", {}).get(PYPLANT)
    pyplant_edit_last = med(big.times("edit_last")) if big and args.gib == 1 else math.nan
    rows += daemon_rows(daemons, pyplant_edit_last, before)
    notes += daemon_findings(daemons)
    rows += print_rows(prints, args.lines, before)
    notes += print_findings(prints)
    cols = int(args.gib * GIB) // FLOAT32 // ROWS
    return SECTION.format(
        repeats=args.repeats,
        cold_repeats=args.cold_repeats,
        gib_text=f"{args.gib:g} GiB",
        rows=ROWS,
        cols=cols,
        passes=args.passes,
        stride=STRIDE,
        reactors=args.reactors,
        limit=CHAIN_LIMIT,
        last=args.reactors - 1,
        sizes=", ".join(f"{g:g}" for g in args.sizes),
        saves=args.saves,
        lines=args.lines,
        print_repeats=args.print_repeats,
        before_text=(
            f"`pyplantd before`: {args.baseline_text}, run the same way in the same rounds"
            if before
            else "nothing earlier (no --baseline-rev)"
        ),
        load_before=loads[0],
        load_after=loads[1],
        table=md_table(headers, rows),
        cpu_table=md_table(CPU_HEADERS, cpu) if cpu else "(no one-shot part)",
        import_table=md_table(
            [
                "process",
                "wall: median (min)",
                "CPU: median (min)",
                "wall over numpy's",
                "CPU over numpy's",
                *(["before: CPU"] if before else []),
            ],
            import_rows(imports, before),
        )
        if imports
        else "(not measured)",
        import_repeats=args.import_repeats,
        floor_code=FLOOR_CODE,
        findings="\n".join(f"- {n}" for n in notes) or "- none",
        runner_args=f" -- {runner_args(args)}" if runner_args(args) else "",
        command=command_line(args),
    )


def runner_args(args: argparse.Namespace) -> str:
    return f"--baseline-rev {args.baseline_rev}" if args.baseline_rev else ""


def command_line(args: argparse.Namespace) -> str:
    text = (
        f"bench/.venv/bin/python bench/bench_pyplant.py --gib {args.gib:g} --passes {args.passes} "
        f"--reactors {args.reactors} --repeats {args.repeats} --cold-repeats {args.cold_repeats} "
        f"--sizes {','.join(f'{g:g}' for g in args.sizes)} --saves {args.saves} "
        f"--lines {args.lines} --print-repeats {args.print_repeats} "
        f"--import-repeats {args.import_repeats} --parts {','.join(args.parts)}"
    )
    return text + (f" {runner_args(args)}" if args.baseline_rev else "")


# --- entry point --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="the big array, one-shot part")
    parser.add_argument(
        "--passes", type=int, default=12, help="load's compute passes (~1 s at 1 GiB)"
    )
    parser.add_argument("--reactors", type=int, default=1000, help="chain length")
    parser.add_argument("--repeats", type=int, default=5, help="re-runs per scenario")
    parser.add_argument("--cold-repeats", type=int, default=3, help="cold runs per engine")
    parser.add_argument("--sizes", default="0.1,1,4", help="daemon array sizes, GiB")
    parser.add_argument("--saves", type=int, default=30, help="daemon saves per size")
    parser.add_argument("--lines", type=int, default=100_000, help="lines printed")
    parser.add_argument("--print-repeats", type=int, default=3, help="printing runs per mode")
    parser.add_argument("--import-repeats", type=int, default=20, help="runs per import")
    parser.add_argument("--parts", default="imports,big,chain,daemon,print", help="what to measure")
    parser.add_argument("--baseline-rev", help="an earlier commit to measure too (git archive)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per subprocess")
    args = parser.parse_args(argv)
    args.sizes = [float(s) for s in args.sizes.split(",")]
    args.parts = [p for p in args.parts.split(",") if p]
    return args


@contextlib.contextmanager
def baseline_checkout(rev: str | None, parent: Path) -> Iterator[Engine | None]:
    """The code at `rev`, extracted with git archive (never a stash or checkout of this tree)."""
    if not rev:
        yield None
        return
    target = parent / f"before-{rev}"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "pyplantd"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True, timeout=60)
    yield Engine("pyplantd before", "pyplantd", str(target))


def attempt(what: str, measure: Callable[[], Any], default: Any) -> Any:
    try:
        return measure()
    except Exception as err:  # the section reports it; the benchmark goes on
        log(f"FAILED {what}: {type(err).__name__}: {err}")
        return default


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    loads = [load_average()]
    oneshot: dict[str, dict[Engine, Workspace]] = {}
    daemons: list[DaemonRun] = []
    prints: list[PrintRun] = []
    imports: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench_pyplant_") as tmp:
        parent = Path(tmp)
        with baseline_checkout(args.baseline_rev, parent) as before:
            args.baseline_text = f"the code at `{args.baseline_rev}`" if before else ""
            ours = [PYPLANTD, *([before] if before else [])]
            if "imports" in args.parts:
                imports = measure_imports(args, parent, before)
            engines = [PYPLANT, *ours]
            pipelines = {
                "big": Big(int(args.gib * GIB) // FLOAT32 // ROWS, args.passes),
                "chain": Chained(Chain(args.reactors, CHAIN_LIMIT)),
            }
            for kind, pipeline in pipelines.items():
                if kind in args.parts:
                    oneshot[kind] = attempt(
                        kind,
                        lambda kind=kind, pipeline=pipeline: measure_oneshot(
                            kind, engines, pipeline, args, parent
                        ),
                        {},
                    )
                    for engine, space in oneshot[kind].items():
                        if engine != FLOOR:
                            shutil.rmtree(space.root, ignore_errors=True)
            if "daemon" in args.parts:
                for gib in args.sizes:
                    for engine in ours:
                        daemons.append(measure_daemon(engine, gib, args, parent))
            if "print" in args.parts:
                for engine in engines:
                    prints.append(measure_print_plain(engine, args, parent))
                for engine in ours:
                    prints.append(measure_print_daemon(engine, args, parent))
    loads.append(load_average())
    print(render(args, oneshot, daemons, prints, imports, before, (loads[0], loads[1])))


if __name__ == "__main__":
    main()
