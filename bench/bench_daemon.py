"""Measures the daemon: save-to-start latency, edit-to-result overhead and cancel latency.

Three figures, each next to a baseline measured in the same run:

1. save-to-start: a real `pyplantd watch pipeline.py` subprocess over a 20-reactor chain; each
   save edits a constant in the last reactor, in place; timed from the saved file's close to
   that reactor's first statement. Baseline: a bare watchdog Observer in this process, watching
   the same folder during the same saves, plus the daemon's 20 ms quiet window.
2. edit-to-result overhead: `Engine.cycle` in this process after an edit of `plot` in
   `load (N GiB) -> reduce -> plot`, minus plot's own duration, for N = 0.1, 1, 4 GiB.
   Baseline: PyPlant 0.6.0 re-running the same script in a new process after the same edit.
3. cancel latency: a save while the daemon's reactor is busy (a pure-Python loop, or
   `time.sleep`), to the start of the new run's reactor. Baseline: figure 1 (an idle daemon).

Prints a Markdown section on stdout; progress on stderr.

    bench/.venv/bin/python bench/bench_daemon.py --saves 50 --edits 20 --cancels 20
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    FLOAT32,
    GIB,
    child_env,
    fmt_median_min,
    fmt_seconds,
    load_average,
    log,
    md_table,
    median,
    percentile,
    run_timed,
    sync_and_warm,
    tail,
    touch_own_memory,
    warm_memory,
)
from _pipelines import LOAD_REDUCE_PLOT

ROWS = 16384
CHAIN = 20
DEBOUNCE = 0.020  # the `watch` default quiet window; the daemon runs without --debounce
POLL = 0.005  # how often the benchmark looks for a result; it never times anything with it
STARTUP_TIMEOUT = 120.0
RESULT_TIMEOUT = 15.0
STOP_TIMEOUT = 20.0
SEED = 20261124
CLIENT_DIR = str(Path(__file__).resolve().parent.parent / "client")


def _client_missing() -> bool:
    """The daemon imports `pyplant_client` (client/), which run.sh does not install (yet)."""
    try:
        import pyplant_client  # noqa: F401
    except ImportError:
        return True
    return False


# When missing, the daemon children get client/ on PYTHONPATH (and the section says so).
CLIENT_WORKAROUND = _client_missing()


# --- shared: saves, the reactors' start marks, the daemon subprocess ------------------------------

MARK = '''
HERE = os.path.dirname(os.path.abspath(__file__))


def mark(name, version):
    """What the benchmark reads: when a reactor body started, and which version of it ran."""
    with open(os.path.join(HERE, "starts.log"), "a") as starts:
        starts.write(f"{name} {version!r} {time.time()!r}\\n")
'''


# A save returns the time just before its last system call (close, or rename) and just after.
# The figures start at the first: a preemption of the benchmark right after the call (tens of
# ms under load) would otherwise shorten them; the call itself takes microseconds.
Saved = tuple[float, float]


def save_in_place(path: Path, text: str) -> Saved:
    """Overwrite `path` in place (truncate, write, close), as many editors do."""
    with path.open("w") as handle:
        handle.write(text)
        handle.flush()  # the bytes are in the file; what is left is the close
        before = time.time()
    return before, time.time()


def save_atomic(path: Path, text: str) -> Saved:
    """Write a temporary file beside `path`, then rename it over `path`."""
    temp = path.with_name(f".{path.name}.swp")
    temp.write_text(text)
    before = time.time()
    os.replace(temp, path)
    return before, time.time()


SAVES: dict[str, Callable[[Path, str], Saved]] = {
    "in place": save_in_place,
    "atomic (write + rename)": save_atomic,
}


def started(root: Path) -> dict[tuple[str, float], list[float]]:
    """(reactor, version) -> the `time.time()` of each start of that body, from starts.log."""
    found: dict[tuple[str, float], list[float]] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in (root / "starts.log").read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:  # a line being written is skipped until it is complete
                found.setdefault((parts[0], float(parts[1])), []).append(float(parts[2]))
    return found


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


class Daemon:
    """`python -m pyplantd.cli watch pipeline.py` run in `root`; its output goes to files there."""

    def __init__(self, root: Path, pythonpath: str | None = None) -> None:
        self.root = root
        self.pythonpath = pythonpath  # put first on the daemon's sys.path (an earlier pyplantd)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "pyplantd.cli", "watch", "pipeline.py"]
        env = child_env()
        first = [self.pythonpath] if self.pythonpath else []
        if CLIENT_WORKAROUND:
            first.append(CLIENT_DIR)
        if first:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [*first, env.get("PYTHONPATH")]))
        out, err = (self.root / "daemon.out").open("w"), (self.root / "daemon.err").open("w")
        with out, err:
            self.proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=out, stderr=err)

    def lines(self) -> list[str]:
        return read_text(self.root / "daemon.out").splitlines()

    def runs_finished(self) -> int:
        """Runs the daemon reported finished: a `memory:` line ends each (cancelled ones too)."""
        return sum(line.startswith("memory:") for line in self.lines())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failure(self) -> str:
        code = self.proc.returncode if self.proc is not None else None
        out, err = (tail(read_text(self.root / name)) for name in ("daemon.out", "daemon.err"))
        return f"the daemon exited (code {code}); stderr: {err}; stdout: {out}"

    def wait_started(self, key: tuple[str, float], runs_before: int = -1) -> float | None:
        """When the reactor version `key` started, once its run finished too (when more than
        `runs_before` runs are reported); None if that did not happen in time."""

        def done() -> bool:
            if key in started(self.root) and self.runs_finished() > runs_before:
                return True
            return not self.alive()

        wait_for(done, RESULT_TIMEOUT)
        return started(self.root).get(key, [None])[0]

    def stop(self) -> tuple[float, int | None]:
        """SIGTERM, then wait: (seconds until it exited, exit code or None if it was killed)."""
        if self.proc is None:
            return math.nan, None
        if self.proc.poll() is not None:
            return 0.0, self.proc.returncode
        begin = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = None
        return time.perf_counter() - begin, code


@contextlib.contextmanager
def running(daemon: Daemon) -> Iterator[Daemon]:
    """Start the daemon; always stop it (SIGTERM, then SIGKILL) on the way out."""
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def fresh_dir(parent: Path, name: str) -> Path:
    path = parent / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# --- 1. save-to-start latency ---------------------------------------------------------------------

CHAIN_HEAD = f'''\
"""Generated by bench/bench_daemon.py: a chain of {CHAIN} reactors; the last marks its start."""

import os
import time

import numpy as np
from pyplantd import *
{MARK}

@ReactorFunc
def r0(pipe):
    pipe.send("i0", np.arange(4.0), Ingredient.Type.array)
'''

CHAIN_LINK = """

@ReactorFunc
def r{k}(pipe):
    value = yield pipe.receive("i{prev}")
    pipe.send("i{k}", value + 1.0, Ingredient.Type.array)
"""

CHAIN_LAST = """

@ReactorFunc
def r{k}(pipe):
    mark("r{k}", {version!r})
    value = yield pipe.receive("i{prev}")
    pipe.send("i{k}", value + {version!r}, Ingredient.Type.array)


if __name__ == "__main__":
    with Plant(os.path.join(HERE, "plant")) as plant:
        plant.run_reactor(r{k})
"""

LAST = f"r{CHAIN - 1}"


def chain_script(version: float) -> str:
    """The chain; `version` is the constant the last reactor adds (each save uses a new one)."""
    links = [CHAIN_LINK.format(k=k, prev=k - 1) for k in range(1, CHAIN - 1)]
    last = CHAIN_LAST.format(k=CHAIN - 1, prev=CHAIN - 2, version=version)
    return CHAIN_HEAD + "".join(links) + last


class EventClock:
    """A bare watchdog Observer: when each event on one file reached a handler (the baseline)."""

    def __init__(self, path: Path) -> None:
        from watchdog import events
        from watchdog.observers import Observer

        self.path = str(path)
        self.times: list[float] = []
        self._lock = threading.Lock()
        self.observer = Observer()
        clock = self

        class Handler(events.FileSystemEventHandler):
            def dispatch(self, event: events.FileSystemEvent) -> None:
                clock.note(event, time.time())

        # The kinds the daemon's watcher subscribes to: what changes a file's bytes or name.
        kinds = [
            events.FileModifiedEvent,
            events.FileCreatedEvent,
            events.FileMovedEvent,
            events.FileDeletedEvent,
            events.FileClosedEvent,
        ]
        self.observer.schedule(Handler(), str(path.parent), event_filter=kinds)

    def note(self, event: Any, when: float) -> None:
        paths = {os.fsdecode(event.src_path), os.fsdecode(getattr(event, "dest_path", "") or "")}
        if self.path in paths:
            with self._lock:
                self.times.append(when)

    def take(self) -> list[float]:
        with self._lock:
            times, self.times = self.times, []
        return times

    def __enter__(self) -> EventClock:
        self.observer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.observer.stop()
        self.observer.join()


@dataclass
class SaveRun:
    """The saves of one kind (in place or atomic) to one daemon, and what came of them."""

    mode: str
    totals: list[float] = field(default_factory=list)  # close -> the reactor's start
    events: list[float] = field(default_factory=list)  # close -> the bare observer's last event
    gaps: list[float] = field(default_factory=list)  # the save's last call: before -> after
    summaries: list[str] = field(default_factory=list)  # the daemon's line per save
    extra_runs: int = 0
    missed: int = 0
    failure: str = ""

    @property
    def own(self) -> list[float]:
        """The daemon's own part: each total minus the quiet window and the bare observer's
        median latency (not its latency in that save: that observer lives in the benchmark's
        process, and a delay of the benchmark must not count for or against the daemon)."""
        event = median(self.events)
        return [t - DEBOUNCE - event for t in self.totals]


def measure_saves(args: argparse.Namespace, work: Path, mode: str) -> SaveRun:
    run = SaveRun(mode)
    root = fresh_dir(work, f"saves_{list(SAVES).index(mode)}")
    path = root / "pipeline.py"
    save = SAVES[mode]
    version = 1.0
    path.write_text(chain_script(version))
    rng = random.Random(SEED)
    with EventClock(path) as clock, running(Daemon(root)) as daemon:
        if not wait_for(lambda: daemon.runs_finished() >= 1 or not daemon.alive(), STARTUP_TIMEOUT):
            run.failure = f"no first run within {STARTUP_TIMEOUT:.0f} s: {daemon.failure()}"
            return run
        for i in range(args.saves):
            if not daemon.alive():
                run.failure = daemon.failure()
                break
            if i % 10 == 0:
                log(f"save-to-start ({mode}): save {i + 1}/{args.saves}")
            version += 1.0
            warm_memory()
            time.sleep(rng.uniform(0.02, 0.08))  # off the watcher's 0.5 s scan rhythm
            before = daemon.runs_finished()
            clock.take()
            closed, returned = save(path, chain_script(version))
            run.gaps.append(returned - closed)
            began = daemon.wait_started((LAST, version), before)
            events = clock.take()
            if began is None or not events:
                run.missed += 1
                if run.missed >= 3:
                    run.failure = f"3 saves never started {LAST}: {daemon.failure()}"
                    break
                continue
            run.totals.append(began - closed)
            run.events.append(max(events) - closed)
        time.sleep(0.5)  # a second run for the last save would show up by now
        lines = daemon.lines()
        finished = sum(line.startswith("memory:") for line in lines)
        run.extra_runs = finished - 1 - len(run.totals) - run.missed
        run.summaries = [line for line in lines if line.startswith("saved ")]
    return run


# --- 2. edit-to-result overhead, in process -------------------------------------------------------


@dataclass
class Workspace:
    """A directory with one engine's load -> reduce -> plot script and its side-effect log."""

    module: str
    root: Path
    cols: int
    scale: float = 1.0
    executed: list[str] = field(default_factory=list)  # distinct sets of reactors executed
    wrong: list[str] = field(default_factory=list)

    @property
    def pipeline(self) -> Path:
        return self.root / "pipeline.py"

    def write(self, scale: float) -> None:
        """Write the script; a new `scale` is an edit of plot's body."""
        self.scale = scale
        size = f"{ROWS * self.cols * FLOAT32 / GIB:.2f} GiB"
        text = LOAD_REDUCE_PLOT.format(
            size=size, module=self.module, rows=ROWS, cols=self.cols, scale=scale
        )
        self.pipeline.write_text(text)
        (self.root / "ran.log").write_text("")

    def check(self) -> None:
        """Note which reactors ran (from ran.log) and whether their values were right."""
        lines = read_text(self.root / "ran.log").split("\n")
        logged = [(name, float(value)) for name, value in (ln.split() for ln in lines if ln)]
        names = ", ".join(name for name, _ in logged) or "nothing"
        if names not in self.executed:
            self.executed.append(names)
        right = {"load": 1.0, "reduce": float(self.cols), "plot": float(self.cols) * self.scale}
        self.wrong += [f"{n}={v!r}" for n, v in logged if not math.isclose(v, right[n])]


@dataclass
class SizeRun:
    """Figure 2 for one array size: pyplantd's warm cycles and PyPlant's new-process re-runs."""

    gib: float
    cold: float = math.nan
    cycles: list[float] = field(default_factory=list)
    results: list[float] = field(default_factory=list)  # cycle start -> plot's finished event
    plot: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the main thread's CPU time per edit cycle
    stolen: list[int] = field(default_factory=list)  # host steal ticks (1/100 s) during each
    full_gc: list[float] = field(default_factory=list)  # time in full (gen 2) collections, each
    statuses: list[str] = field(default_factory=list)  # distinct "reactor status" summaries
    rss: list[float] = field(default_factory=list)  # this process after the cold run, each edit
    pyplant_cold: float = math.nan
    pyplant: list[float] = field(default_factory=list)
    spaces: dict[str, Workspace] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def overheads(self) -> list[float]:
        """Edit-to-result overhead: from the cycle's start to plot's result, minus plot."""
        return [r - p for r, p in zip(self.results, self.plot, strict=True)]

    @property
    def cycle_overheads(self) -> list[float]:
        """The whole cycle minus plot: also the bookkeeping after the result (waiting for the
        manifest commit, run history, the console's summary)."""
        return [c - p for c, p in zip(self.cycles, self.plot, strict=True)]


class TailStream(io.TextIOBase):
    """Keeps the console's last lines (for failure reports) at the cost of /dev/null."""

    def __init__(self, lines: int = 20) -> None:
        self.kept: deque[str] = deque(maxlen=lines)

    def write(self, text: str) -> int:
        self.kept.extend(line for line in text.splitlines() if line.strip())
        return len(text)

    def writable(self) -> bool:
        return True

    def text(self) -> str:
        return " | ".join(self.kept)


@contextlib.contextmanager
def warm_engine(workspace: Workspace, console_out: TailStream) -> Iterator[Any]:
    """An Engine over the workspace's pipeline in this process, without serve(): no watcher
    thread, no signal handlers, no lock; only `cycle`, as the daemon's loop calls it."""
    from pyplantd.daemon.console import Console
    from pyplantd.daemon.engine import Engine, WatchOptions

    options = WatchOptions(pipeline=workspace.pipeline, plant_dir=workspace.root / "plant")
    engine = Engine(options, Console(stream=console_out, live=False))
    try:
        yield engine
    finally:
        engine.watcher.stop()
        engine.session.close()


@contextlib.contextmanager
def full_collections() -> Iterator[list[float]]:
    """The durations of Python's full (generation 2) garbage collections meanwhile."""
    durations: list[float] = []
    began = [0.0]

    def note(phase: str, info: dict[str, int]) -> None:
        if info["generation"] < 2:
            return
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            durations.append(time.perf_counter() - began[0])

    gc.callbacks.append(note)
    try:
        yield durations
    finally:
        gc.callbacks.remove(note)


def host_steal_ticks() -> int:
    """The kernel's count of time the hypervisor ran something else while this machine's
    CPUs wanted to run (`steal` of /proc/stat, all CPUs, in 1/100 s); 0 where not reported.
    A thread's CPU time includes such time, so an edit it lands in looks several times slower."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return 0
    return int(fields[8]) if len(fields) > 8 else 0


def rss_bytes() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) * 1024
    return math.nan


def measure_size(args: argparse.Namespace, work: Path, gib: float) -> SizeRun:
    run = SizeRun(gib)
    cols = int(gib * GIB) // FLOAT32 // ROWS
    mine = Workspace("pyplantd", fresh_dir(work, f"edit_{gib:g}_pyplantd"), cols)
    theirs = Workspace("pyplant", fresh_dir(work, f"edit_{gib:g}_pyplant"), cols)
    run.spaces = {"pyplantd": mine, "PyPlant 0.6.0": theirs}
    try:
        _measure_size(args, run, mine, theirs)
    finally:
        shutil.rmtree(mine.root, ignore_errors=True)
        shutil.rmtree(theirs.root, ignore_errors=True)
    return run


def _measure_size(
    args: argparse.Namespace, run: SizeRun, mine: Workspace, theirs: Workspace
) -> None:
    for space in (mine, theirs):
        space.write(1.0)
    log(f"edit-to-result {run.gib:g} GiB: PyPlant 0.6.0 cold run")
    result = run_timed([sys.executable, str(theirs.pipeline)], args.timeout, cwd=theirs.root)
    if result.ok:
        run.pyplant_cold = result.seconds
    else:
        run.failures.append(f"PyPlant 0.6.0 cold run failed: {result.failure()}")
    theirs.executed.clear()
    console_out = TailStream()
    with warm_engine(mine, console_out) as engine:
        log(f"edit-to-result {run.gib:g} GiB: pyplantd cold cycle")
        sync_and_warm()
        touch_own_memory()
        begin = time.perf_counter()
        decisions = engine.cycle("start", targets_always_run=True)
        run.cold = time.perf_counter() - begin
        log(f"  cold: pyplantd {run.cold:.3f} s, PyPlant 0.6.0 {run.pyplant_cold:.3f} s")
        if not decisions or any(d.status != "ran" for d in decisions):
            why = f"pyplantd's cold cycle: {_statuses(decisions)}; {console_out.text()}"
            run.failures.append(why)
            return
        run.rss.append(rss_bytes())
        for rep in range(args.edits):
            if rep % 5 == 0:
                log(f"edit-to-result {run.gib:g} GiB: edit {rep + 1}/{args.edits}")
            scale = float(rep + 2)  # never used before: no earlier result to restore
            with_pyplant = rep < args.pyplant_repeats and not math.isnan(run.pyplant_cold)
            if with_pyplant and rep % 2 == 1:
                _pyplant_rerun(args, theirs, scale, run)
            _edit_cycle(engine, mine, scale, run, console_out)
            if with_pyplant and rep % 2 == 0:
                _pyplant_rerun(args, theirs, scale, run)
            if len(run.failures) >= 3:
                return


def _edit_cycle(
    engine: Any, space: Workspace, scale: float, run: SizeRun, console_out: TailStream
) -> None:
    engine.settle()  # what the daemon's loop does while it waits for the next save
    space.write(scale)
    sync_and_warm()
    touch_own_memory()  # the warm-up made the host take back pages of this process, too
    finished: dict[str, float] = {}
    publish = engine.publish  # where the engine's state sends events (a server's, if served)

    def watch(kind: str, fields: dict[str, Any]) -> None:
        if kind == "reactor_finished" and fields.get("result") == "ran":
            finished[str(fields.get("reactor"))] = time.perf_counter()
        publish(kind, fields)

    engine.state.chain(watch)  # the events a client sees: plot's result is its finished event
    with full_collections() as collected:
        steal = host_steal_ticks()
        begin, cpu_begin = time.perf_counter(), time.thread_time()
        decisions = engine.cycle("saved pipeline.py", targets_always_run=False)
        seconds, cpu = time.perf_counter() - begin, time.thread_time() - cpu_begin
        steal = host_steal_ticks() - steal
    engine.state.chain(publish)
    run.rss.append(rss_bytes())
    space.check()
    statuses = _statuses(decisions)
    if statuses not in run.statuses:
        run.statuses.append(statuses)
    plot = [d for d in decisions if d.reactor == "plot" and d.status == "ran"]
    if not plot:
        run.failures.append(f"pyplantd's cycle did not run plot: {statuses}; {console_out.text()}")
        return
    if "plot" not in finished:
        run.failures.append(f"no reactor_finished event for plot: {statuses}")
        return
    run.cycles.append(seconds)
    run.results.append(finished["plot"] - begin)
    run.plot.append(plot[0].duration)
    run.cpu.append(cpu)
    run.stolen.append(steal)
    run.full_gc.append(sum(collected))


def _pyplant_rerun(args: argparse.Namespace, space: Workspace, scale: float, run: SizeRun) -> None:
    space.write(scale)
    result = run_timed([sys.executable, str(space.pipeline)], args.timeout, cwd=space.root)
    if not result.ok:
        run.failures.append(f"PyPlant 0.6.0 re-run failed: {result.failure()}")
        return
    space.check()
    run.pyplant.append(result.seconds)


def _statuses(decisions: Sequence[Any]) -> str:
    return ", ".join(f"{d.reactor} {d.status}" for d in decisions) or "no decisions"


# --- 3. cancel latency ----------------------------------------------------------------------------

SPIN = f'''\
"""Generated by bench/bench_daemon.py: `spin` stays busy until a save cancels it."""

import os
import time

import numpy as np
from pyplantd import *
{MARK.replace("{", "{{").replace("}", "}}")}

@ReactorFunc
def prepare(pipe):
    pipe.send("seed", np.arange(4.0), Ingredient.Type.array)


@ReactorFunc
def spin(pipe):
    mark("spin", {{version!r}})
    seed = yield pipe.receive("seed")
{{busy}}
    pipe.send("out", seed + {{version!r}}, Ingredient.Type.array)


if __name__ == "__main__":
    with Plant(os.path.join(HERE, "plant")) as plant:
        plant.run_reactor(spin)
'''

BUSY = {
    "a pure-Python loop": (
        "    total = 0\n"
        "    for step in range(10**12):  # hours of pure Python: only a signal ends it\n"
        "        total += step"
    ),
    "`time.sleep(3600)`": "    time.sleep(3600)",
}


@dataclass
class CancelRun:
    busy: str
    latencies: list[float] = field(default_factory=list)  # close -> the new run's start
    busy_for: list[float] = field(default_factory=list)  # how long spin had been busy
    cancelled: int = 0  # "run cancelled" summaries the daemon printed
    stop: tuple[float, int | None] = (math.nan, None)  # SIGTERM while busy: seconds, exit code
    failure: str = ""


def measure_cancels(args: argparse.Namespace, work: Path, busy: str) -> CancelRun:
    run = CancelRun(busy)
    root = fresh_dir(work, f"cancel_{list(BUSY).index(busy)}")
    path = root / "pipeline.py"
    version = 0.0
    path.write_text(SPIN.format(version=version, busy=BUSY[busy]))
    rng = random.Random(SEED)
    daemon = Daemon(root)
    with running(daemon):
        if not wait_for(lambda: ("spin", version) in started(root), STARTUP_TIMEOUT):
            run.failure = f"spin never started: {daemon.failure()}"
            return run
        for i in range(args.cancels):
            if not daemon.alive():
                run.failure = daemon.failure()
                break
            if i % 10 == 0:
                log(f"cancel ({busy}): save {i + 1}/{args.cancels}")
            warm_memory()
            time.sleep(rng.uniform(0.2, 0.4))  # spin is well inside its busy part by now
            busy_since = started(root)[("spin", version)][0]
            version += 1.0
            closed, _ = save_in_place(path, SPIN.format(version=version, busy=BUSY[busy]))
            run.busy_for.append(closed - busy_since)
            began = daemon.wait_started(("spin", version))
            if began is None:
                run.failure = (
                    f"the save never started the new run within {RESULT_TIMEOUT:.0f} s "
                    f"(was the busy reactor cancelled?): {daemon.failure()}"
                )
                break
            run.latencies.append(began - closed)
        run.cancelled = sum("run cancelled" in line for line in daemon.lines())
        if daemon.alive():
            run.stop = daemon.stop()  # SIGTERM while spin is busy
    return run


# --- the report -----------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    """Milliseconds with one decimal (two below 10 ms), or an em dash."""
    if math.isnan(seconds):
        return "—"
    return f"{seconds * 1000:.2f} ms" if abs(seconds) < 0.01 else f"{seconds * 1000:.1f} ms"


def p(values: Sequence[float], q: float) -> float:
    return percentile(values, q) if values else math.nan


def met(ok: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "—"}[ok]


def judged(value: float, test: Callable[[float], bool]) -> bool | None:
    return None if math.isnan(value) else test(value)


def spread(values: Sequence[float]) -> list[str]:
    """min, p50, p95, max."""
    low, high = min(values, default=math.nan), max(values, default=math.nan)
    return [ms(low), ms(p(values, 50)), ms(p(values, 95)), ms(high)]


def summary_rows(
    saves: dict[str, SaveRun], sizes: list[SizeRun], cancels: dict[str, CancelRun]
) -> list[list[str]]:
    rows = []
    first = saves[next(iter(SAVES))]
    for q, limit in ((50, 0.050), (95, 0.100)):
        total, event, own = p(first.totals, q), p(first.events, q), p(first.own, q)
        rows.append(
            [
                f"1. save-to-start p{q} ({len(first.totals)} in-place saves, 20 reactors)",
                ms(total) if first.totals else f"failed: {first.failure[:200]}",
                f"watchdog event p{q} {ms(event)} + quiet window {ms(DEBOUNCE)}",
                f"daemon's own part p{q}: {ms(own)}",
                f"≤ {ms(limit)}",
                met(judged(total, lambda t, limit=limit: t <= limit)),
            ]
        )
    for size in sizes:
        rows.append(_edit_row(size))
    idle = p(first.totals, 50)
    for busy, run in cancels.items():
        late = p(run.latencies, 95)
        rows.append(
            [
                f"3. cancel latency p95, busy in {busy} ({len(run.latencies)} saves)",
                ms(late) if run.latencies else f"failed: {run.failure[:200]}",
                f"idle daemon (figure 1) p50 {ms(idle)}",
                f"+{ms(late - idle)}",
                "≤ 200 ms",
                met(judged(late, lambda t: t <= 0.200)),
            ]
        )
    return rows


def _edit_row(size: SizeRun) -> list[str]:
    theirs, edits = median(size.pyplant), len(size.overheads)
    over, typical = p(size.overheads, 95), p(size.overheads, 50)
    ok = None if math.isnan(over) else over <= 0.010 and not theirs / typical < 25
    return [
        f"2. edit-to-result overhead p95, {size.gib:g} GiB ({edits} edits)",
        ms(over) if size.overheads else f"failed: {'; '.join(size.failures)[:200]}",
        f"PyPlant 0.6.0, new process: median {fmt_median_min(size.pyplant)}",
        _less(theirs, over, typical)
        + f"; whole cycle minus plot p95 {ms(p(size.cycle_overheads, 95))}",
        "≤ 10 ms p95; PyPlant's median ≥ 25x our p50",
        met(ok),
    ]


def _less(theirs: float, p95: float, p50: float) -> str:
    """How many times less than PyPlant's median, at pyplantd's p95 and p50."""
    if math.isnan(theirs) or not p95 > 0 or not p50 > 0:
        return "—"
    return f"{theirs / p95:.0f}x less at p95 ({theirs / p50:.0f}x at p50), of PyPlant's median"


def save_table(saves: dict[str, SaveRun]) -> str:
    rows = []
    for mode, run in saves.items():
        for what, values in (
            ("save closed → reactor started", run.totals),
            ("save closed → bare watchdog's last event on the file", run.events),
            ("daemon's own part (the first minus 20 ms minus the second's p50)", run.own),
        ):
            rows.append([mode, what, str(len(values)), *spread(values)])
    return md_table(["save", "interval", "saves", "min", "p50", "p95", "max"], rows)


def save_lines(saves: dict[str, SaveRun]) -> list[str]:
    lines = []
    for mode, run in saves.items():
        ran = sorted({_ran_part(s) for s in run.summaries})
        if run.totals:
            lines.append(
                f"{mode}: the daemon's summary lines say `{' / '.join(ran) or 'nothing'}`; "
                f"{run.extra_runs} runs beyond one per save, {run.missed} saves without a start."
            )
        late = [gap for gap in run.gaps if gap > 0.001]
        if late:
            lines.append(
                f"{mode}: in {len(late)} of {len(run.gaps)} saves the benchmark got the CPU back "
                f"more than 1 ms after its close/rename (up to {ms(max(late))}): other load."
            )
        if run.failure:
            lines.append(f"**{mode} failed**: {run.failure}")
    return lines


def _ran_part(summary: str) -> str:
    """`1 of 20 reactors ran` from a summary line, without its timing."""
    head = summary.split(": ", 1)[-1]
    return head.split(" (", 1)[0]


def size_table(sizes: list[SizeRun]) -> str:
    rows = []
    for size in sizes:
        rows.append(
            [
                f"{size.gib:g} GiB",
                fmt_seconds(size.cold),
                ms(p(size.cycles, 50)),
                ms(p(size.plot, 50)),
                *spread(size.overheads)[1:],
                f"{ms(p(size.cycle_overheads, 50))} / {ms(p(size.cycle_overheads, 95))}",
                f"{ms(p(size.cpu, 50))} / {ms(p(size.cpu, 95))}",
                fmt_seconds(size.pyplant_cold),
                fmt_median_min(size.pyplant),
            ]
        )
    return md_table(
        [
            "array",
            "pyplantd cold cycle",
            "edit cycle p50",
            "plot's own p50",
            "edit-to-result overhead p50",
            "p95",
            "max",
            "whole cycle minus plot p50 / p95",
            "cycle CPU p50 / p95",
            "PyPlant cold run",
            "PyPlant re-run: median (min)",
        ],
        rows,
    )


def size_lines(sizes: list[SizeRun]) -> list[str]:
    lines = []
    for size in sizes:
        label = f"{size.gib:g} GiB"
        for engine, space in size.spaces.items():
            wrong = f" **Wrong values: {', '.join(space.wrong[:5])}.**" if space.wrong else ""
            executed = " / ".join(space.executed) or "nothing recorded"
            lines.append(f"{label}, {engine}: executed in the re-runs: {executed}.{wrong}")
        lines.append(f"{label}, pyplantd decisions per edit: {' / '.join(size.statuses)}.")
        if len(size.rss) > 1:
            growth = max(size.rss[1:]) - size.rss[0]
            lines.append(
                f"{label}: this process's RSS after the cold cycle {size.rss[0] / GIB:.2f} GiB; "
                f"largest growth over it after an edit cycle {growth / 2**20:+.1f} MiB."
            )
        lines += [f"**{label}**: {failure}" for failure in size.failures[:3]]
        each = ", ".join(
            f"{o * 1000:.1f}{'*' if s else ''}"
            for o, s in zip(size.overheads, size.stolen, strict=True)
        )
        lines.append(
            f"{label}: overhead of each edit in order (ms; * where the host stole CPU time "
            f"during the edit): {each or '—'}."
        )
        stolen = [s for s in size.stolen if s]
        if stolen:
            lines.append(
                f"{label}: the host stole CPU time during {len(stolen)} of {len(size.stolen)} "
                f"edits ({sum(stolen) * 10} ms in all, by /proc/stat's steal counter)."
            )
        full = [t for t in size.full_gc if t > 0]
        if full:
            without = [o - g for o, g in zip(size.overheads, size.full_gc, strict=True)]
            lines.append(
                f"{label}: {len(full)} of {len(size.full_gc)} edit cycles included a full "
                f"garbage collection of this process (gen 2: {', '.join(ms(t) for t in full)}); "
                f"without that time, overhead p95 {ms(p(without, 95))}."
            )
    measured = {s.gib: s for s in sizes if s.overheads}
    if len(measured) > 1:
        small, big = measured[min(measured)], measured[max(measured)]
        ratios = [
            f"{what} {fn(big) / fn(small):.2f}x"
            for what, fn in (
                ("overhead p50", lambda s: p(s.overheads, 50)),
                ("p95", lambda s: p(s.overheads, 95)),
                ("cycle CPU p50", lambda s: p(s.cpu, 50)),
            )
        ]
        lines.append(
            f"Flatness, {big.gib:g} GiB against {small.gib:g} GiB ({big.gib / small.gib:.0f}x "
            f"the data): {', '.join(ratios)}."
        )
    return lines


def cancel_table(cancels: dict[str, CancelRun]) -> str:
    rows = []
    for busy, run in cancels.items():
        stop_s, code = run.stop
        stopped = "killed (no exit)" if code is None and not math.isnan(stop_s) else f"code {code}"
        rows.append(
            [
                busy,
                str(len(run.latencies)),
                *spread(run.latencies),
                f"{run.cancelled}",
                fmt_median_min(run.busy_for),
                f"{ms(stop_s)}, {stopped}" if not math.isnan(stop_s) else "—",
            ]
        )
    return md_table(
        [
            "reactor busy in",
            "saves",
            "min",
            "p50",
            "p95",
            "max",
            "`run cancelled` lines",
            "busy for, before the save",
            "SIGTERM while busy: exit after",
        ],
        rows,
    )


def cancel_lines(cancels: dict[str, CancelRun]) -> list[str]:
    lines = [f"**{b}** failed: {r.failure}" for b, r in cancels.items() if r.failure]
    for busy, run in cancels.items():
        if run.cancelled != len(run.latencies) and not run.failure:
            lines.append(
                f"{busy}: the daemon printed {run.cancelled} `run cancelled` lines for "
                f"{len(run.latencies)} saves during a busy reactor."
            )
    return lines or [
        "Every save during a busy reactor cancelled its run (one `run cancelled` line each)."
    ]


def render(
    args: argparse.Namespace,
    saves: dict[str, SaveRun],
    sizes: list[SizeRun],
    cancels: dict[str, CancelRun],
    loads: tuple[str, str],
) -> str:
    table = md_table(
        ["figure", "pyplantd", "baseline (same run)", "comparison", "target", "result"],
        summary_rows(saves, sizes, cancels),
    )
    return SECTION.format(
        chain=CHAIN,
        last=LAST,
        saves=args.saves,
        edits=args.edits,
        pyplant_repeats=args.pyplant_repeats,
        cancels=args.cancels,
        sizes=", ".join(f"{g:g}" for g in args.sizes),
        load_before=loads[0],
        load_after=loads[1],
        table=table,
        save_table=save_table(saves),
        save_lines=bullets(save_lines(saves)),
        size_table=size_table(sizes),
        size_lines=bullets(size_lines(sizes)),
        cancel_table=cancel_table(cancels),
        cancel_lines=bullets(cancel_lines(cancels)),
        setup=bullets(setup_lines()),
        command=command_line(args),
    )


def setup_lines() -> list[str]:
    lines = ["Saves and reactor start marks are both `time.time()` (one host clock)."]
    if CLIENT_WORKAROUND:
        lines.append(
            "**`pyplant_client` is not importable in bench/.venv** (`client/` is not part of the "
            "`pyplantd` distribution and run.sh installs only that), and `pyplantd watch` imports "
            "it at start (`pyplantd/daemon/server.py`); so the daemon children ran with "
            "`PYTHONPATH=client/`. Without it, `pyplantd watch` exits with "
            "`ModuleNotFoundError: No module named 'pyplant_client'`."
        )
    return lines


def bullets(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines) or "- (nothing measured)"


SECTION = """\
## Daemon: save-to-start latency, edit-to-result overhead, cancel latency

**What is measured.** Three figures of `pyplantd watch`, each next to a baseline measured in
the same run. Before every save or timed step the script writes and frees 2 GiB (the host
reclaims idle memory); disk-heavy steps run `sync` first. Before a step timed in this process
(figure 2) it then reads every page of its own heap and small anonymous mappings back
(`touch_own_memory`): the 2 GiB warm-up makes the host take back pages of the benchmark's own
process too, and the first touch of its long-lived objects afterwards cost up to ~15 ms, in
about one edit in seven (seen in this benchmark before this step was added). No figure is
timed by polling: the reactors write `time.time()` as their first statement, the benchmark
reads `time.time()` at the save, and polls (every 5 ms) only to know when to go on. The
machine is shared (2 cores): load average {load_before} before, {load_after} after.

1. **Save-to-start**: a real daemon, `python -m pyplantd.cli watch pipeline.py` (default quiet
   window, 20 ms; output to a file), over a chain `r0 -> ... -> {last}` of {chain} reactors
   (4-element arrays). Each of {saves} saves rewrites `pipeline.py` with a new constant in
   `{last}`, then waits until `{last}` started and the daemon printed the `memory:` line that
   ends a run, then pauses 20-80 ms (after the 2 GiB warm-up). Figure: from the saved file's
   close (in place: `open('w')`, write, flush, close; atomic: write a temporary file,
   `os.replace`; the clock is read just before that last call, so that the benchmark being
   preempted right after it cannot shorten the figure) to `{last}`'s first statement.
   Baseline, during the very same saves: a bare watchdog Observer in the benchmark's process
   watching the same folder (the event kinds the daemon subscribes to), from the close to the
   last event on `pipeline.py` reaching its handler; the daemon waits 20 ms of quiet after that
   last event, so its own part is the total minus 20 ms minus the observer's median latency.
2. **Edit-to-result overhead**: `load` sends an N GiB float32 `np.ones` array, `reduce` its
   mean over axis 0, `plot` sums that (N = {sizes} GiB). pyplantd: the daemon's `Engine` in the
   benchmark's process (console output kept in a small ring buffer instead of a terminal), not
   served: no watcher thread, no lock, no signals; one `engine.cycle('start',
   targets_always_run=True)` (cold, timed), then {edits} times: `engine.settle()` (what the
   daemon's loop does while it waits for a save: collect garbage, freeze the survivors),
   rewrite `pipeline.py` with a new constant in `plot`, then time
   `engine.cycle('saved pipeline.py', targets_always_run=False)` (reload the script fresh,
   decide, run plot, commit, report). Figure: from the cycle's start to plot's result, the
   `reactor_finished` event the engine publishes for it (what a client sees), minus plot's own
   duration. The rest of the cycle after the result (waiting for the manifest commit, the run's
   history, the console's summary) is shown too, as "whole cycle minus plot". The watcher is
   not involved: its latency is figure 1. Also the cycle's CPU time on the calling thread
   (`time.thread_time`; the background writer's thread is not counted).
   PyPlant 0.6.0: the same script with `from pyplant import *`, `python pipeline.py` in a new
   process after the same edit of `plot` ({pyplant_repeats} times, alternating with pyplantd's
   edits, after its own cold run), timed with `perf_counter` around `subprocess.run`.
3. **Cancel latency**: a real daemon over `prepare -> spin`; `spin` marks its start, then stays
   busy for hours. {cancels} times: 0.2-0.4 s after the 2 GiB warm-up (so `spin` has been busy
   for about a second), save a new constant in `spin` in place; figure: from the close to the
   new `spin`'s first statement (cancel, reload, decide, start). At the end, SIGTERM while
   `spin` is busy, and how long the daemon takes to exit.

{table}

**Save-to-start** (the interval is the same save measured three ways):

{save_table}

{save_lines}

**Edit-to-result** (overhead = from the cycle's start to plot's `reactor_finished` event, minus
plot's own duration; the whole cycle minus plot's duration next to it):

{size_table}

{size_lines}

**Cancel latency** (from the save's close to the new run's reactor start):

{cancel_table}

{cancel_lines}

**Setup notes.**
{setup}

**Command:** `bash bench/run.sh bench_daemon`, which runs

    {command}
"""


def command_line(args: argparse.Namespace) -> str:
    return (
        f"bench/.venv/bin/python bench/bench_daemon.py --saves {args.saves} --edits {args.edits} "
        f"--pyplant-repeats {args.pyplant_repeats} --cancels {args.cancels} "
        f"--sizes {','.join(f'{g:g}' for g in args.sizes)} --timeout {args.timeout:.0f}"
    )


# --- entry point ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=50, help="saves per kind, figure 1")
    parser.add_argument("--edits", type=int, default=40, help="edits per array size, figure 2")
    parser.add_argument("--pyplant-repeats", type=int, default=5, help="PyPlant re-runs per size")
    parser.add_argument("--cancels", type=int, default=20, help="saves per busy kind, figure 3")
    parser.add_argument("--sizes", default="0.1,1,4", help="array sizes in GiB, figure 2")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per subprocess")
    args = parser.parse_args(argv)
    args.sizes = [float(s) for s in args.sizes.split(",")]
    if min(args.saves, args.edits, args.cancels, args.pyplant_repeats) < 1:
        parser.error("need at least one save, edit, cancel and PyPlant re-run")
    if min(args.sizes) <= 0:
        parser.error("sizes must be positive")
    return args


def attempt(measure: Callable[[], Any], failed: Callable[[str], Any]) -> Any:
    """`measure()`, or `failed(why)` when the measurement itself crashed (no pyplantd...)."""
    try:
        return measure()
    except Exception as err:
        log(f"FAILED: {type(err).__name__}: {err}\n{traceback.format_exc()}")
        return failed(f"measurement crashed: {type(err).__name__}: {err}")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = load_average()
    saves: dict[str, SaveRun] = {}
    sizes: list[SizeRun] = []
    cancels: dict[str, CancelRun] = {}
    with tempfile.TemporaryDirectory(prefix="bench_daemon_") as tmp:
        work = Path(tmp)
        log(f"work dir {work} (removed at the end)")
        for mode in SAVES:
            saves[mode] = attempt(
                lambda mode=mode: measure_saves(args, work, mode),
                lambda why, mode=mode: SaveRun(mode, failure=why),
            )
        for busy in BUSY:
            cancels[busy] = attempt(
                lambda busy=busy: measure_cancels(args, work, busy),
                lambda why, busy=busy: CancelRun(busy, failure=why),
            )
        for gib in args.sizes:
            sizes.append(
                attempt(
                    lambda gib=gib: measure_size(args, work, gib),
                    lambda why, gib=gib: SizeRun(gib, failures=[why]),
                )
            )
    print(render(args, saves, sizes, cancels, (load_before, load_average())))


if __name__ == "__main__":
    main()
