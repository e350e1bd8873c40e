"""Measures the store: a 1 GiB hand-off, spill throughput, a warm re-run, streaming out of core.

Four figures, each against a baseline measured side by side in this run:

1. hand-off of a 1 GiB float32 array from one reactor to the next, vs `np.copyto` of 1 GiB;
2. spill: `pipe.send` of that array until its payload is durable, vs `np.save` (+ fsync);
3. re-running only `plot` of `load (1 GiB) -> reduce -> plot` after an edit of `plot`, the plant
   warm in this process, vs PyPlant 0.6.0 in a new process;
4. peak RSS of a child streaming a 4 GiB hdf_array through three reactors with memory='1GiB',
   vs a child that only imports numpy, h5py and pyplantd.

Prints a Markdown section on stdout; progress on stderr.

    bench/.venv/bin/python bench/bench_store.py --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from _common import (
    FLOAT32,
    GIB,
    RunResult,
    fmt_bytes,
    fmt_median_min,
    fmt_seconds,
    load_average,
    log,
    md_table,
    median,
    run_timed,
    sync_and_warm,
)
from _pipelines import LOAD_REDUCE_PLOT


@dataclass
class Part:
    """One of the four figures: samples of pyplantd and of its baseline, plus what was checked."""

    title: str
    target: str
    samples: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failure: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def fail(self, what: str, err: BaseException) -> None:
        self.failure = f"{what}: {type(err).__name__}: {err}"
        log(f"  FAILED {self.failure}\n{traceback.format_exc()}")


@contextlib.contextmanager
def guarded(part: Part, what: str) -> Iterator[None]:
    """Record an engine failure on the part instead of crashing the benchmark."""
    try:
        yield
    except Exception as err:
        part.fail(what, err)


def fresh_dir(parent: Path, name: str) -> Path:
    path = parent / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


# --- 1. hand-off ---------------------------------------------------------------------------------


def handoff_reactors(source: np.ndarray, marks: dict[str, Any]) -> tuple[Any, Any]:
    """A producer that sends `source` as its last statement and a consumer that receives it.

    Closures, not module globals: pyplantd digests module-level constants a reactor uses.
    """
    from pyplantd import Ingredient, ReactorFunc

    @ReactorFunc
    def produce_big(pipe: Any) -> None:
        marks["before_send"] = time.perf_counter()
        pipe.send("big", source, Ingredient.Type.array)

    @ReactorFunc
    def consume_big(pipe: Any) -> Any:
        value = yield pipe.receive("big")
        marks["after_receive"] = time.perf_counter()
        marks["received"] = value

    return produce_big, consume_big


def measure_handoff(args: argparse.Namespace, work: Path, source: np.ndarray) -> Part:
    from pyplantd import Plant

    part = Part(
        f"{fmt_bytes(source.nbytes)} float32 hand-off, `pipe.send` → `yield pipe.receive` "
        "returns (same process)",
        "store adds < 5% of the copyto time",
    )
    destination = np.empty_like(source)
    destination.fill(0)  # pre-touched
    shared, readonly = [], []
    for rep in range(args.repeats):
        log(f"hand-off: round {rep + 1}/{args.repeats}")
        for step in ("copyto", "pyplantd") if rep % 2 == 0 else ("pyplantd", "copyto"):
            sync_and_warm()
            if step == "copyto":
                start = time.perf_counter()
                np.copyto(destination, source)
                part.baseline.append(time.perf_counter() - start)
                continue
            marks: dict[str, Any] = {}
            with guarded(part, "pyplantd hand-off run"):
                produce, consume = handoff_reactors(source, marks)
                plant_dir = fresh_dir(work, "handoff_plant")
                with Plant(plant_dir, memory=args.memory) as plant:
                    plant.add_reactors(produce, consume)
                    plant.run_reactor(consume)
                part.samples.append(marks["after_receive"] - marks["before_send"])
                received = marks.pop("received")
                shared.append(bool(np.shares_memory(source, received)))
                readonly.append(not received.flags.writeable)
                del received
                shutil.rmtree(plant_dir)
            if part.failure:
                return part
    part.extra.update(shared=shared, readonly=readonly)
    part.notes.append(
        f"Zero-copy: `np.shares_memory(sent, received)` was {_all_or_some(shared)}; the "
        f"received array was read-only in {sum(readonly)} of {len(readonly)} runs."
    )
    return part


def _all_or_some(flags: Sequence[bool]) -> str:
    if flags and all(flags):
        return f"True in all {len(flags)} runs"
    return f"True in only {sum(flags)} of {len(flags)} runs"


# --- 2. spill ------------------------------------------------------------------------------------


def spill_reactor(source: np.ndarray, marks: dict[str, Any]) -> Any:
    """Sends `source`, finds its PendingWrite and waits until it is durable."""
    from pyplantd import Ingredient, ReactorFunc

    @ReactorFunc
    def spill_big(pipe: Any) -> None:
        store = marks["store"]
        start = time.perf_counter()
        pipe.send("spilled", source, Ingredient.Type.array)
        marks["send_returned"] = time.perf_counter() - start
        pending = [p for p in store.writer.pending() if p.name == "spilled"]
        if pending:
            pending[0].wait()
        marks["durable"] = time.perf_counter() - start
        marks["found_pending"] = bool(pending)

    return spill_big


def np_save(array: np.ndarray, path: Path, fsync: bool) -> float:
    start = time.perf_counter()
    with open(path, "wb") as handle:
        np.save(handle, array)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())
    return time.perf_counter() - start


def h5py_write(array: np.ndarray, path: Path) -> float:
    """Plain h5py, contiguous dataset, then fsync: the format pyplantd writes arrays in."""
    import h5py

    start = time.perf_counter()
    with h5py.File(path, "w") as handle:
        handle.create_dataset("data", data=array)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def measure_spill(args: argparse.Namespace, work: Path, source: np.ndarray) -> Part:
    from pyplantd import Plant

    part = Part(
        f"{fmt_bytes(source.nbytes)} spill: `pipe.send` → its payload durable (written, "
        "fsynced, renamed)",
        "np.save time / ours ≥ 0.8",
    )
    spill_dir = fresh_dir(work, "spill")
    nosync: list[float] = []
    h5: list[float] = []
    send_returned: list[float] = []
    steps = ("pyplantd", "np.save+fsync", "np.save", "h5py+fsync")
    for rep in range(args.repeats):
        log(f"spill: round {rep + 1}/{args.repeats}")
        order = steps if rep % 2 == 0 else steps[::-1]
        for step in order:
            target = spill_dir / "copy.npy"
            sync_and_warm()
            if step == "np.save+fsync":
                part.baseline.append(np_save(source, target, fsync=True))
            elif step == "np.save":
                nosync.append(np_save(source, target, fsync=False))
            elif step == "h5py+fsync":
                h5.append(h5py_write(source, target.with_suffix(".h5")))
            else:
                with guarded(part, "pyplantd spill run"):
                    marks: dict[str, Any] = {}
                    plant_dir = fresh_dir(spill_dir, "plant")
                    with Plant(plant_dir, memory=args.memory) as plant:
                        marks["store"] = plant.store
                        plant.run_reactor(spill_reactor(source, marks))
                    if not marks["found_pending"]:
                        raise RuntimeError("no PendingWrite named 'spilled' right after send")
                    part.samples.append(marks["durable"])
                    send_returned.append(marks["send_returned"])
                    shutil.rmtree(plant_dir)
            for leftover in (target, target.with_suffix(".h5")):
                leftover.unlink(missing_ok=True)
            if part.failure:
                return part
    part.extra.update(nosync=nosync, h5=h5, send_returned=send_returned)
    return part


# --- 3. warm re-run of the last reactor ----------------------------------------------------------


@dataclass
class Workspace:
    """A directory with one engine's pipeline script, its plant dir and its side-effect log."""

    label: str
    module: str
    root: Path
    rows: int
    cols: int
    scale: float = 1.0
    times: list[float] = field(default_factory=list)
    executed: list[list[str]] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def write(self, scale: float) -> None:
        """Write the script; a new `scale` is an edit of plot's body."""
        self.scale = scale
        size = fmt_bytes(self.rows * self.cols * FLOAT32)
        text = LOAD_REDUCE_PLOT.format(
            size=size, module=self.module, rows=self.rows, cols=self.cols, scale=scale
        )
        (self.root / "pipeline.py").write_text(text)

    def run(self, timeout: float) -> RunResult:
        """`python pipeline.py` in a new process, timed."""
        self.reset_log()
        os.sync()
        result = run_timed([sys.executable, str(self.root / "pipeline.py")], timeout, cwd=self.root)
        if result.ok:
            self.note_executed([name for name, _ in self.logged()])
        else:
            self.failures.append(f"{self.label} run failed: {result.failure()}")
        return result

    def note_executed(self, names: list[str]) -> None:
        self.executed.append(names)
        right = {"load": 1.0, "reduce": float(self.cols), "plot": float(self.cols) * self.scale}
        self.wrong += [f"{n}={v!r}" for n, v in self.logged() if not math.isclose(v, right[n])]

    def logged(self) -> list[tuple[str, float]]:
        """(reactor, value) lines since the last reset."""
        log_file = self.root / "ran.log"
        lines = log_file.read_text().splitlines() if log_file.exists() else []
        return [(name, float(value)) for name, value in (line.split() for line in lines)]

    def reset_log(self) -> None:
        (self.root / "ran.log").write_text("")


@dataclass
class WarmPlant:
    """A plant kept open in this process; `rerun` marks plot changed and runs it."""

    plant: Any
    module: ModuleType
    edits: dict[str, int]
    workspace: Workspace

    def rerun(self) -> float:
        self.workspace.reset_log()
        self.edits["plot"] = self.edits.get("plot", 0) + 1
        sync_and_warm()
        start = time.perf_counter()
        self.plant.run_reactor(self.module.plot)
        seconds = time.perf_counter() - start
        self.workspace.note_executed([name for name, _ in self.workspace.logged()])
        return seconds


@contextlib.contextmanager
def warm_plant(workspace: Workspace) -> Iterator[WarmPlant]:
    """Import the workspace's pipeline here and open its plant with a `function_hash` that
    returns a counter per reactor, so bumping the counter is an edit."""
    from pyplantd import Plant

    edits: dict[str, int] = {}

    def function_hash(func: Callable[..., Any]) -> str:
        return f"{func.__module__}.{func.__qualname__}#{edits.get(func.__name__, 0)}"

    name = "bench_store_warm_pipeline"
    spec = importlib.util.spec_from_file_location(name, workspace.root / "pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pyplantd finds a reactor's source through its module
    try:
        spec.loader.exec_module(module)
        with Plant(workspace.root / "plant", function_hash=function_hash) as plant:
            plant.add_reactors(module.load, module.reduce, module.plot)
            yield WarmPlant(plant, module, edits, workspace)
    finally:
        sys.modules.pop(name, None)


def measure_rerun(args: argparse.Namespace, work: Path) -> Part:
    part = Part(
        f"re-run `plot` of `load ({fmt_bytes(args.gib * GIB)}) -> reduce -> plot` after an "
        "edit of `plot`",
        "pyplantd ≥ 20x faster",
    )
    rows = 16384
    cols = int(args.gib * GIB) // FLOAT32 // rows
    spaces = {
        key: Workspace(label, module, fresh_dir(work, f"rerun_{key}"), rows, cols)
        for key, label, module in (
            ("pyplant", "PyPlant 0.6.0", "pyplant"),
            ("oneshot", "pyplantd, new process", "pyplantd"),
            ("warm", "pyplantd, warm", "pyplantd"),
        )
    }
    for workspace in spaces.values():
        workspace.write(1.0)
    cold = part.extra["cold"] = {}
    for key in ("pyplant", "oneshot"):
        log(f"re-run: cold run of {spaces[key].label}")
        result = spaces[key].run(args.timeout)
        cold[spaces[key].label] = result.seconds if result.ok else math.nan
    with guarded(part, "pyplantd warm re-run"), warm_plant(spaces["warm"]) as warm:
        log("re-run: cold run of pyplantd in this process")
        cold["pyplantd, this process"] = warm.rerun()
        for workspace in spaces.values():
            workspace.executed.clear()  # only the re-runs count
        for rep in range(args.repeats):
            log(f"re-run: round {rep + 1}/{args.repeats}")
            order = ("pyplant", "warm", "oneshot")
            for key in order if rep % 2 == 0 else order[::-1]:
                workspace = spaces[key]
                if key == "warm":
                    workspace.times.append(warm.rerun())
                elif not workspace.failures:  # the cold run, or an earlier re-run, failed
                    workspace.write(float(rep + 2))
                    result = workspace.run(args.timeout)
                    if result.ok:
                        workspace.times.append(result.seconds)
    part.samples, part.baseline = spaces["warm"].times, spaces["pyplant"].times
    part.extra["spaces"] = spaces
    return part


# --- 4. peak RSS while streaming an hdf_array ----------------------------------------------------

STREAM = '''\
"""Generated by bench/bench_store.py: a {size} hdf_array streamed through three reactors."""

import json
import os
import sys
import time

import numpy as np
from pyplantd import Ingredient, Plant, ReactorFunc

ROWS, COLS, BLOCK = {rows}, {cols}, {block}
PEAKS = {{}}


def peak_bytes():
    """VmHWM, this process's peak RSS (ru_maxrss would include the parent's, inherited
    across fork and exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return -1


def pattern(start, stop):
    """Rows start..stop of the input: (row % 7) + (column % 5), built one block at a time."""
    rows = (np.arange(start, stop, dtype=np.float32) % 7)[:, None]
    return rows + (np.arange(COLS, dtype=np.float32) % 5)[None, :]


def blocks():
    return ((start, min(start + BLOCK, ROWS)) for start in range(0, ROWS, BLOCK))


def allocate(pipe, name):
    return pipe.allocate(
        name, Ingredient.Type.hdf_array, shape=(ROWS, COLS), dtype="float32", chunks=(BLOCK, COLS)
    )


@ReactorFunc
def produce(pipe):
    raw = allocate(pipe, "raw")
    for start, stop in blocks():
        raw[start:stop] = pattern(start, stop)
    PEAKS["produce"] = peak_bytes()
    pipe.send("raw", raw)


@ReactorFunc
def transform(pipe):
    raw = yield pipe.receive("raw")
    scaled = allocate(pipe, "scaled")
    for start, stop in blocks():
        scaled[start:stop] = raw[start:stop] * np.float32(2) + np.float32(1)
    PEAKS["transform"] = peak_bytes()
    pipe.send("scaled", scaled)


@ReactorFunc
def summarize(pipe):
    scaled = yield pipe.receive("scaled")
    total = 0.0
    for start, stop in blocks():
        total += float(scaled[start:stop].sum(dtype=np.float64))
    corner = scaled[ROWS - 3 :, COLS - 6 :].tolist()
    PEAKS["summarize"] = peak_bytes()
    pipe.send("summary", {{"total": total, "corner": corner}}, Ingredient.Type.object)


if __name__ == "__main__":
    start = time.perf_counter()
    with Plant(sys.argv[1], memory={memory!r}) as plant:
        plant.run_reactor(summarize)
        summary = plant.fetch_ingredient("summary")
    seconds = time.perf_counter() - start
    PEAKS["end"] = peak_bytes()
    print(json.dumps({{"summary": summary, "peaks": PEAKS, "seconds": seconds}}))
'''

IMPORT_ONLY = (
    "import numpy, h5py, pyplantd; "
    "print([int(x.split()[1]) * 1024 for x in open('/proc/self/status') if 'VmHWM' in x][0])"
)


def stream_shape(args: argparse.Namespace) -> tuple[int, int, int]:
    """Rows of 1 MiB, blocks (= HDF5 chunks) of `--chunk-mib` rows."""
    cols = 2**20 // FLOAT32
    rows = int(args.stream_gib * GIB) // (cols * FLOAT32)
    return rows, cols, max(1, args.chunk_mib)


def expected_stream(rows: int, cols: int) -> tuple[float, list[list[float]]]:
    """Sum of 2 * ((r % 7) + (c % 5)) + 1 over the whole array, and its bottom-right corner."""
    row_sum = sum(r % 7 for r in range(rows))
    col_sum = sum(c % 5 for c in range(cols))
    total = 2 * (row_sum * cols + col_sum * rows) + rows * cols
    corner = [
        [2.0 * (r % 7 + c % 5) + 1 for c in range(cols - 6, cols)] for r in range(rows - 3, rows)
    ]
    return float(total), corner


def measure_stream(args: argparse.Namespace, work: Path) -> Part:
    rows, cols, block = stream_shape(args)
    part = Part(
        f"peak RSS of a child streaming a {fmt_bytes(rows * cols * FLOAT32)} hdf_array through "
        f"three reactors, `memory={args.memory!r}`",
        "< 1.5 GiB",
    )
    script = work / "stream.py"
    script.write_text(
        STREAM.format(
            size=fmt_bytes(rows * cols * FLOAT32),
            rows=rows,
            cols=cols,
            block=block,
            memory=args.memory,
        )
    )
    total, corner = expected_stream(rows, cols)
    runs: list[dict[str, Any]] = []
    for rep in range(args.stream_repeats):
        log(f"stream: round {rep + 1}/{args.stream_repeats}")
        baseline = run_timed([sys.executable, "-c", IMPORT_ONLY], args.timeout, cwd=work)
        if baseline.ok:
            part.baseline.append(float(baseline.stdout.split()[-1]))
        plant_dir = fresh_dir(work, "stream_plant")
        os.sync()
        result = run_timed([sys.executable, str(script), str(plant_dir)], args.timeout, cwd=work)
        shutil.rmtree(plant_dir)
        if not result.ok:
            part.failure = f"pyplantd run failed: {result.failure()}"
            log(f"  FAILED {part.failure}")
            return part
        report = json.loads(result.stdout.strip().splitlines()[-1])
        peaks = report["peaks"]
        part.samples.append(float(max(peaks.values())))
        summary = report["summary"]
        report["correct"] = math.isclose(summary["total"], total) and summary["corner"] == corner
        report["wall"] = result.seconds
        runs.append(report)
        log(
            f"  peak {fmt_bytes(part.samples[-1])}, {fmt_seconds(result.seconds)}, "
            f"correct {report['correct']}"
        )
    part.extra.update(runs=runs, total=total, shape=(rows, cols, block))
    return part


# --- the report ----------------------------------------------------------------------------------


def pct(value: float) -> str:
    return "—" if math.isnan(value) else f"{100 * value:.2f}%"


def met(ok: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "—"}[ok]


def summary_rows(parts: dict[str, Part], nbytes: int) -> list[list[str]]:
    handoff, spill, rerun, stream = (parts[k] for k in ("handoff", "spill", "rerun", "stream"))
    share = _ratio(handoff.samples, handoff.baseline)
    save = _ratio(spill.baseline, spill.samples)
    save_nosync = _ratio(spill.extra.get("nosync", []), spill.samples)
    speedup = _ratio(rerun.baseline, rerun.samples)
    peak = max(stream.samples, default=math.nan)
    copyto = f"`np.copyto` of {fmt_bytes(nbytes)} into a pre-touched array"
    return [
        _row(handoff, copyto, pct(share), _judged(share, lambda r: r < 0.05)),
        _row(
            spill, "`np.save` + fsync, same directory", _x(save), _judged(save, lambda r: r >= 0.8)
        ),
        [
            "the same spill, against `np.save` without fsync",
            fmt_median_min(spill.samples),
            fmt_median_min(spill.extra.get("nosync", [])),
            "`np.save`, no fsync (the data may still be in the page cache only)",
            _x(save_nosync),
            spill.target,
            met(_judged(save_nosync, lambda r: r >= 0.8)),
        ],
        _row(
            rerun,
            "PyPlant 0.6.0, new process (`python pipeline.py`)",
            _x(speedup),
            _judged(speedup, lambda r: r >= 20),
        ),
        [
            stream.title,
            f"max {fmt_bytes(peak)}" if stream.samples else f"failed: {stream.failure[:200]}",
            fmt_median_min(stream.baseline, fmt_bytes),
            "a child that only imports numpy, h5py, pyplantd",
            f"+{fmt_bytes(peak - median(stream.baseline))}",
            stream.target,
            met(_judged(peak, lambda p: p < 1.5 * GIB)),
        ],
    ]


def _ratio(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    if not numerators or not denominators:
        return math.nan
    return median(numerators) / median(denominators)


def _judged(value: float, test: Callable[[float], bool]) -> bool | None:
    return None if math.isnan(value) else test(value)


def _row(part: Part, baseline: str, ratio: str, ok: bool | None) -> list[str]:
    if part.samples:
        figure = fmt_median_min(part.samples, fmt_precise)
    else:
        figure = f"failed: {part.failure[:200]}"
    base = fmt_median_min(part.baseline, fmt_precise)
    return [part.title, figure, base, baseline, ratio, part.target, met(ok)]


def fmt_precise(seconds: float) -> str:
    """Milliseconds with two decimals below 10 ms, where fmt_seconds would print 0 ms."""
    return f"{seconds * 1000:.2f} ms" if seconds < 0.01 else fmt_seconds(seconds)


def _x(ratio: float) -> str:
    return "—" if math.isnan(ratio) else f"{ratio:.2f}x"


def spill_lines(part: Part, nbytes: int) -> list[str]:
    send, h5 = part.extra.get("send_returned", []), part.extra.get("h5", [])
    ours, save = part.samples, part.baseline
    if not ours or not save:
        return []
    lines = [
        f"pyplantd reached durability at {nbytes / median(ours) / GIB:.2f} GiB/s (median); "
        f"`pipe.send` itself returned in {fmt_median_min(send, fmt_precise)}.",
        f"Ratio of the fastest runs (min `np.save` + fsync / min pyplantd): "
        f"{_x(min(save) / min(ours))}.",
    ]
    if h5:
        lines.append(
            f"Plain h5py, contiguous dataset then fsync (the format pyplantd writes, without a "
            f"content hash): {fmt_median_min(h5)}. pyplantd writes the file's HDF5 header "
            "from a template for the array's dtype and rank (no h5py), writes the array's bytes "
            "at its offset in 64 MiB slices and asks the kernel to start writing each slice to "
            "disk at once (`sync_file_range`), so the disk works while later slices are copied; "
            "the content hash is computed on a helper thread meanwhile; then the fsync, and the "
            "file is renamed."
        )
    lines.append(
        "Without fsync `np.save` only copies into the page cache; pyplantd's durability "
        "includes the fsync, so that row is not like for like and is shown for completeness."
    )
    return lines


def rerun_lines(part: Part) -> list[str]:
    cold = ", ".join(f"{k} {fmt_seconds(v)}" for k, v in part.extra.get("cold", {}).items())
    lines = [f"Cold runs (empty plant dir): {cold}."]
    spaces: dict[str, Workspace] = part.extra.get("spaces", {})
    if not spaces:
        return lines
    oneshot, pyplant = spaces["oneshot"].times, spaces["pyplant"].times
    if oneshot and pyplant:
        ratio = median(oneshot) / median(pyplant)
        lines.append(
            f"pyplantd in a new process (`python pipeline.py`, not warm): "
            f"{fmt_median_min(oneshot)}, {_x(ratio)} PyPlant's time"
            + (
                ": the speed-up above comes from keeping the plant warm in the process, not "
                "from a faster start (pyplantd imports more, and its code signatures look up "
                "the versions of the packages a reactor uses)."
                if ratio > 1
                else "."
            )
        )
    for workspace in spaces.values():
        distinct = sorted({", ".join(names) or "nothing" for names in workspace.executed})
        lines.append(
            f"Reactors executed in the re-runs, {workspace.label}: {' / '.join(distinct)}."
        )
    wrong = [f"{w.label}: {bad}" for w in spaces.values() for bad in w.wrong]
    lines.append(
        f"**Wrong values: {', '.join(wrong[:5])}.**" if wrong else "Every value was right."
    )
    lines += [failure for w in spaces.values() for failure in w.failures[:2]]
    return lines


def stream_lines(part: Part) -> list[str]:
    runs = part.extra.get("runs", [])
    if not runs:
        return []
    rows, cols, block = part.extra["shape"]
    peaks = " / ".join(
        ", ".join(f"{k} {fmt_bytes(v)}" for k, v in run["peaks"].items()) for run in runs
    )
    wall = [run["seconds"] for run in runs]
    written = 2 * rows * cols * FLOAT32
    correct = sum(1 for run in runs if run["correct"])
    return [
        f"Shape ({rows}, {cols}) float32 (1 MiB rows), chunks and blocks of {block} rows "
        f"({fmt_bytes(block * cols * FLOAT32)}).",
        f"Peak RSS (VmHWM, so cumulative) after each reactor, per run: {peaks}.",
        f"Pipeline time in the child: {fmt_median_min(wall)} "
        f"({written / median(wall) / GIB:.2f} GiB/s written, {fmt_bytes(written)} per run).",
        f"The sum computed by `summarize` and the bottom-right corner were right in {correct} of "
        f"{len(runs)} runs (expected sum {part.extra['total']:.0f}).",
    ]


def render(args: argparse.Namespace, parts: dict[str, Part], loads: tuple[str, str]) -> str:
    table = md_table(
        [
            "figure",
            "pyplantd: median (min)",
            "baseline: median (min)",
            "baseline",
            "ratio",
            "target",
            "result",
        ],
        summary_rows(parts, int(args.gib * GIB)),
    )
    details = {
        "handoff": parts["handoff"].notes,
        "spill": spill_lines(parts["spill"], int(args.gib * GIB)),
        "rerun": [*rerun_lines(parts["rerun"]), *parts["rerun"].notes],
        "stream": stream_lines(parts["stream"]),
    }
    failures = [f"**{p.title}** failed: {p.failure}" for p in parts.values() if p.failure]
    return SECTION.format(
        gib=fmt_bytes(args.gib * GIB),
        stream_size=fmt_bytes(args.stream_gib * GIB),
        memory=args.memory,
        repeats=args.repeats,
        stream_repeats=args.stream_repeats,
        load_before=loads[0],
        load_after=loads[1],
        table=table,
        **{
            k: "\n".join(f"- {line}" for line in v) or "- (nothing measured)"
            for k, v in details.items()
        },
        failures="\n".join(f"- {f}" for f in failures) or "- None.",
        command=command_line(args),
    )


SECTION = """\
## Store: hand-off, spill, warm re-run, out-of-core streaming

**What is measured.** Four figures, each next to a baseline measured in the same run, {repeats}
rounds alternating the order of pyplantd and baseline (peak RSS: {stream_repeats} rounds); shown
as median (min). Before every timed step the script writes and frees 2 GiB (the host reclaims
idle memory) and, for disk steps, runs `sync` first. The machine is shared: load average
{load_before} before, {load_after} after.

1. **Hand-off**: a producer reactor sends a {gib} float32 array (random) as its last statement;
   the consumer (the target of `run_reactor`) receives it. Timed inside the reactors with
   `time.perf_counter`: just before `pipe.send` to just after `yield pipe.receive` returns, so it
   includes the producer's end, its commit being queued, and waking the consumer (the background
   writer is meanwhile hashing and writing the array). Baseline: `np.copyto` of the same array
   into a pre-touched one. A fresh plant dir per round, `memory={memory!r}`.
2. **Spill**: a reactor sends the same array, takes its `PendingWrite` from
   `plant.store.writer.pending()` right after `send` and waits on it: time from before `send`
   to durable (HDF5 written with its content hash, fsynced, renamed; the directory is fsynced
   afterwards, once per reactor, with its commit).
   Baselines: `np.save` of the array to a file in the same directory, with and without
   `os.fsync` before close.
3. **Warm re-run**: `load` sends a {gib} float32 `np.ones` array, `reduce` its mean over axis
   0, `plot` sums that; `plant.run_reactor(plot)`. pyplantd: one plant kept open in this process
   (`Plant(dir, function_hash=f)`, `f` returning a counter per reactor), cold run first, then per
   round `plot` is marked changed and `run_reactor(plot)` timed (including its commit).
   PyPlant 0.6.0: the same script (`from pyplant import *`) run as `python pipeline.py`, once
   cold, then per round after `plot`'s source is edited (a constant changes), a new process
   timed with `perf_counter` around `subprocess.run`.
4. **Streaming out of core**: a child process (`python stream.py`, `memory={memory!r}`) runs
   `produce` (allocates a {stream_size} chunked hdf_array and fills it block by block),
   `transform` (receives it and writes `2x + 1` into a second {stream_size} hdf_array block by
   block), `summarize` (receives that, sums it block by block in float64). Figure: the child's
   peak RSS (`VmHWM` from `/proc/self/status`, read in the child: the kernel's high-water
   mark; not `ru_maxrss`, which a child inherits from its parent across fork and exec).
   Baseline: a child that only imports numpy, h5py and pyplantd. The child's result is checked
   against the closed-form sum.

{table}

**Hand-off.**
{handoff}

**Spill.**
{spill}

**Warm re-run.**
{rerun}

**Streaming.**
{stream}

**Failures.**
{failures}

**Command:** `bash bench/run.sh bench_store`, which runs

    {command}
"""


def command_line(args: argparse.Namespace) -> str:
    return (
        f"bench/.venv/bin/python bench/bench_store.py --repeats {args.repeats} --gib {args.gib:g} "
        f"--stream-gib {args.stream_gib:g} --stream-repeats {args.stream_repeats} "
        f"--chunk-mib {args.chunk_mib} --memory {args.memory} --timeout {args.timeout:.0f}"
    )


# --- entry point ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds of figures 1-3")
    parser.add_argument("--gib", type=float, default=1.0, help="array size of figures 1-3")
    parser.add_argument("--stream-gib", type=float, default=4.0, help="hdf_array size (4)")
    parser.add_argument("--stream-repeats", type=int, default=3, help="rounds of figure 4")
    parser.add_argument("--chunk-mib", type=int, default=32, help="hdf_array chunk (MiB)")
    parser.add_argument("--memory", default="1GiB", help="the plants' memory budget")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per subprocess")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.stream_repeats < 1 or args.gib <= 0 or args.stream_gib <= 0:
        parser.error("need positive sizes and repeats")
    return args


def attempt(title: str, measure: Callable[..., Part], *args: Any) -> Part:
    """The part `measure(*args)` returns, or one saying why it crashed (no pyplantd...)."""
    try:
        return measure(*args)
    except Exception as err:
        part = Part(title, "—")
        part.fail("measurement crashed", err)
        return part


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = load_average()
    parts: dict[str, Part] = {}
    with tempfile.TemporaryDirectory(prefix="bench_store_") as tmp:
        work = Path(tmp)
        log(f"work dir {work} (removed at the end)")
        source = np.random.default_rng(0).random(int(args.gib * GIB) // FLOAT32, np.float32)
        parts["handoff"] = attempt("hand-off", measure_handoff, args, work, source)
        parts["spill"] = attempt("spill", measure_spill, args, work, source)
        del source
        parts["rerun"] = attempt("warm re-run", measure_rerun, args, work)
        parts["stream"] = attempt("streaming", measure_stream, args, work)
    print(render(args, parts, (load_before, load_average())))


if __name__ == "__main__":
    main()
