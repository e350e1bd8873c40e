"""Executors: the wide pipeline (8 independent sleeping reactors + a sink) per executor, the
overhead per trivial reactor of a 50-chain, and the default inline executor against the code
before the executor seam (one-shot chain and daemon edit-to-result).

    bash bench/run.sh bench_parallel
    bash bench/run.sh bench_parallel -- --executors inline,threads:2,local:2 --baseline-rev REV

Executors are measured by name (`--executors`); an executor added to pyplantd (local:N, a
cluster address) gets its rows by being named there, nothing else to change. Prints one
Markdown section on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from _common import (
    RunResult,
    child_env,
    fmt_median_min,
    load_average,
    log,
    md_table,
    median,
    percentile,
    run_timed,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EXECUTORS = "inline,threads:2"  # add local:2 here once the dask executor exists
BASELINE_REV = "2947466"  # the last commit before the executor seam

WIDE = (
    """
import json, os, sys, time
from pyplantd import Plant, ReactorFunc

PARTS = 8


def make(pipe, index):
    time.sleep(pipe.read_config("seconds"))
    pipe.send(f"part_{index}", index)

"""
    + "".join(f"\n@ReactorFunc\ndef part_{i}(pipe):\n    make(pipe, {i})\n\n" for i in range(8))
    + """
@ReactorFunc
def sink(pipe):
    parts = yield tuple(pipe.receive(f"part_{i}") for i in range(PARTS))
    pipe.send("total", sum(parts))


executor = os.environ["BENCH_EXECUTOR"]
with Plant(sys.argv[1], executor=executor) as plant:
    plant.set_config({"seconds": float(sys.argv[2])})
    start = time.perf_counter()
    plant.run_reactor(sink)
    wall = time.perf_counter() - start
    runs = [
        {"name": d.reactor, "status": d.status, "start": d.started_at, "duration": d.duration}
        for d in plant.last_run
    ]
    fingerprints = {n: r.fingerprint for n, r in sorted(plant.store.ingredients.items())}
print(json.dumps({"wall": wall, "runs": runs, "fingerprints": fingerprints}))
"""
)

CHAIN = (
    """
import json, os, sys, time
from pyplantd import Plant, ReactorFunc


@ReactorFunc
def r0(pipe):
    pipe.send("i0", pipe.read_config("start"))

"""
    + "".join(
        f"\n@ReactorFunc\ndef r{k}(pipe):\n    v = yield pipe.receive('i{k - 1}')\n"
        f"    pipe.send('i{k}', v + 1)\n\n"
        for k in range(1, 50)
    )
    + """

executor = os.environ.get("BENCH_EXECUTOR")
options = {"executor": executor} if executor else {}
with Plant(sys.argv[1], **options) as plant:
    plant.set_config({"start": int(sys.argv[2])})
    start = time.perf_counter()
    plant.run_reactor(r49)
    wall = time.perf_counter() - start
    ran = sum(d.status == "ran" for d in plant.last_run)
    import pyplantd
print(json.dumps({"wall": wall, "ran": ran, "engine": pyplantd.__file__}))
"""
)

IN_PROCESS = """
import json, sys, time
from pyplantd import Plant
sys.path.insert(0, sys.argv[2])
import chainmod

walls = {"all 100 stale": [], "no change": []}
cpu = {"all 100 stale": [], "no change": []}
with Plant(sys.argv[1]) as plant:
    for i in range(int(sys.argv[3])):
        plant.set_config({"start": i})
        for scenario in walls:
            start, start_cpu = time.perf_counter(), time.process_time()
            plant.run_reactor(chainmod.r99)
            walls[scenario].append(time.perf_counter() - start)
            cpu[scenario].append(time.process_time() - start_cpu)
drop = lambda runs: {k: v[2:] for k, v in runs.items()}
print(json.dumps({"walls": drop(walls), "cpu": drop(cpu)}))
"""

CHAIN_MODULE = (
    "from pyplantd import ReactorFunc\n\n\n@ReactorFunc\ndef r0(pipe):\n"
    "    pipe.send('i0', pipe.read_config('start'))\n"
) + "".join(
    f"\n\n@ReactorFunc\ndef r{k}(pipe):\n    v = yield pipe.receive('i{k - 1}')\n"
    f"    pipe.send('i{k}', v + 1)\n"
    for k in range(1, 100)
)

DAEMON_CHAIN = (
    """
from pyplantd import Plant, ReactorFunc


@ReactorFunc
def r0(pipe):
    pipe.send("i0", 0)

"""
    + "".join(
        f"\n@ReactorFunc\ndef r{k}(pipe):\n    v = yield pipe.receive('i{k - 1}')\n"
        f"    pipe.send('i{k}', v + {'EDIT' if k == 10 else 1})\n\n"
        for k in range(1, 20)
    )
    + """

if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.run_reactor(r19)
"""
)


def env_for(tree: Path, executor: str | None) -> dict[str, str]:
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tree), str(tree / "client")])
    env.pop("BENCH_EXECUTOR", None)
    if executor is not None:
        env["BENCH_EXECUTOR"] = executor
    return env


def run_script(script: Path, args: Sequence[str], env: dict[str, str], timeout: float) -> dict:
    result: RunResult = run_timed(
        [sys.executable, str(script), *args], timeout, cwd=script.parent, env=env, warm_gib=0
    )
    if not result.ok:
        raise RuntimeError(f"{script.name} {' '.join(args)}: {result.failure()}")
    data: dict = json.loads(result.stdout.strip().splitlines()[-1])
    data["process"] = result.seconds
    return data


def overlap(runs: list[dict]) -> int:
    """The most reactors running at one moment, from their recorded start and duration."""
    edges = sorted(
        [(r["start"], 1) for r in runs if r["status"] == "ran"]
        + [(r["start"] + r["duration"], -1) for r in runs if r["status"] == "ran"]
    )
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def wide(work: Path, executors: list[str], repeats: int, timeout: float) -> str:
    script = work / "wide.py"
    script.write_text(WIDE)
    rows, prints = [], {}
    for executor in executors:
        env = env_for(ROOT, executor)
        first, records = [], []
        for repeat in range(repeats):
            plant = work / f"wide-{executor.replace(':', '-')}-{repeat}"
            log(f"wide {executor}: first run (multi-receive sink), repeat {repeat + 1}")
            first.append(run_script(script, [str(plant), "1.0"], env, timeout))
            run_script(script, [str(plant), "0.01"], env, timeout)  # records, 0.01 s each
            log(f"wide {executor}: all 8 stale (param edit) with records, repeat {repeat + 1}")
            # 1.0001, not 1.0: the result made with 1.0 would be restored (an undone edit)
            records.append(run_script(script, [str(plant), "1.0001"], env, timeout))
        prints[executor] = (first[0]["fingerprints"], records[0]["fingerprints"])
        for label, runs in (("first run, multi-receive", first), ("with records", records)):
            ran = {sum(r["status"] == "ran" for r in data["runs"]) for data in runs}
            rows.append([
                executor, label, fmt_median_min([d["wall"] for d in runs]),
                max(overlap(d["runs"]) for d in runs), "/".join(map(str, sorted(ran))),
            ])  # fmt: skip
    same = all(prints[e] == prints[executors[0]] for e in executors)
    table = md_table(
        ["executor", "scenario", "run wall: median (min)", "most at once", "reactors ran"], rows
    )
    note = (
        "Fingerprints of every ingredient are identical across executors."
        if same
        else "**Fingerprints differ between executors.**"
    )
    return f"{table}\n\n{note}"


def chain_overhead(work: Path, executors: list[str], repeats: int, timeout: float) -> str:
    script = work / "chain.py"
    script.write_text(CHAIN)
    rows = []
    for executor in executors:
        env = env_for(ROOT, executor)
        cold, records = [], []
        for repeat in range(repeats):
            plant = work / f"chain-{executor.replace(':', '-')}-{repeat}"
            cold.append(run_script(script, [str(plant), "0"], env, timeout))
            records.append(run_script(script, [str(plant), str(repeat + 1)], env, timeout))
        log(f"chain {executor}: done")
        for label, runs in (
            ("no records (first run)", cold),
            ("with records (all 50 stale)", records),
        ):
            per = [d["wall"] / 50 for d in runs]
            ran = "/".join(str(n) for n in sorted({d["ran"] for d in runs}))
            rows.append([executor, label, fmt_median_min(per, _ms), ran])
    return md_table(["executor", "scenario", "per reactor: median (min)", "ran"], rows)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def baseline_tree(work: Path, rev: str) -> Path:
    tree = work / f"tree-{rev}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", rev], cwd=ROOT, capture_output=True, check=True, timeout=120
    ).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def inline_oneshot(work: Path, old: Path, repeats: int, timeout: float) -> str:
    script = work / "chain.py"
    script.write_text(CHAIN)
    times: dict[str, dict[str, list[float]]] = {"before": {}, "now": {}}
    engines: dict[str, str] = {}
    for repeat in range(repeats):
        for label, tree in (("before", old), ("now", ROOT)):
            env = env_for(tree, None)
            plant = work / f"oneshot-{label}-{repeat}"
            for scenario, start in (("first run", 0), ("no change", 0), ("all 50 stale", 1)):
                data = run_script(script, [str(plant), str(start)], env, timeout)
                times[label].setdefault(scenario, []).append(data["process"])
                engines[label] = data["engine"]
        log(f"inline one-shot chain: round {repeat + 1} of {repeats}")
    rows = []
    for scenario in times["now"]:
        before, now = median(times["before"][scenario]), median(times["now"][scenario])
        rows.append([
            scenario, fmt_median_min(times["before"][scenario]),
            fmt_median_min(times["now"][scenario]), f"{100 * (now / before - 1):+.1f} %",
        ])  # fmt: skip
    wrong = [label for label, tree in (("before", old), ("now", ROOT)) if
             not engines[label].startswith(str(tree))]  # fmt: skip
    check = f" (**engine not from its tree: {wrong}**)" if wrong else ""
    return (
        md_table(
            ["`python chain.py` (50 reactors)", "before", "now (inline)", "change of medians"], rows
        )
        + check
    )


def inline_in_process(work: Path, old: Path, rounds: int, timeout: float) -> str:
    """The run alone, inside one process (no interpreter start): 100-chain, min of 10 each."""
    module_dir = work / "module"
    module_dir.mkdir()
    (module_dir / "chainmod.py").write_text(CHAIN_MODULE)
    script = work / "in_process.py"
    script.write_text(IN_PROCESS)
    found: dict[str, dict[str, dict[str, list[float]]]] = {
        kind: {"before": {}, "now": {}} for kind in ("cpu", "walls")
    }
    for round_ in range(rounds):
        for label, tree in (("before", old), ("now", ROOT)):
            plant = work / f"inproc-{label}-{round_}"
            args = [str(plant), str(module_dir), "12"]
            data = run_script(script, args, env_for(tree, None), timeout)
            for kind in found:
                for scenario, values in data[kind].items():
                    found[kind][label].setdefault(scenario, []).extend(values)
        log(f"inline in-process chain: round {round_ + 1} of {rounds}")
    rows = []
    for kind, what in (("cpu", "CPU time (process)"), ("walls", "wall")):
        for scenario in found[kind]["now"]:
            before, now = found[kind]["before"][scenario], found[kind]["now"][scenario]
            rows.append([
                scenario, what, _ms(min(before)), _ms(min(now)),
                f"{100 * (min(now) / min(before) - 1):+.1f} %",
                f"{100 * (median(now) / median(before) - 1):+.1f} %",
            ])  # fmt: skip
    headers = ["`plant.run_reactor(r99)`, 100-chain", "measure", "before: min", "now: min",
               "change of mins", "change of medians"]  # fmt: skip
    return md_table(headers, rows)


class Watch:
    """`pyplantd watch` of the daemon chain in `root`, with `tree` on PYTHONPATH."""

    def __init__(self, root: Path, tree: Path) -> None:
        self.lines: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyplantd.cli", "watch", "pipeline.py"], cwd=root,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=env_for(tree, None),
        )  # fmt: skip
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append((time.perf_counter(), line.rstrip("\n")))
                self.cond.notify_all()

    def runs(self) -> list[float]:
        with self.cond:
            return [t for t, line in self.lines if line.startswith("memory: ")]

    def wait_runs(self, count: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.runs()) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    shown = "\n".join(line for _, line in self.lines[-20:])
                    raise RuntimeError(f"the daemon did not finish run {count}:\n{shown}")
                self.cond.wait(left)
            return self.runs()[count - 1]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def inline_daemon(work: Path, old: Path, saves: int, timeout: float) -> str:
    results: dict[str, list[float]] = {"before": [], "now": []}
    for label, tree in (("before", old), ("now", ROOT)):
        root = work / f"daemon-{label}"
        root.mkdir()
        pipeline = root / "pipeline.py"
        pipeline.write_text(DAEMON_CHAIN.replace("EDIT", "1"))
        watch = Watch(root, tree)
        try:
            watch.wait_runs(1, timeout)
            for save in range(saves):
                time.sleep(0.3)  # past the debounce and any re-scan
                text = DAEMON_CHAIN.replace("EDIT", str(save + 2))
                tmp = root / ".pipeline.tmp"
                tmp.write_text(text)
                saved = time.perf_counter()
                os.replace(tmp, pipeline)
                results[label].append(watch.wait_runs(save + 2, timeout) - saved)
        finally:
            watch.stop()
        log(f"inline daemon {label}: {saves} saves")
    rows = []
    for label in ("before", "now"):
        values = results[label]
        rows.append([label, fmt_median_min(values), f"{percentile(values, 95) * 1000:.1f} ms"])
    change = 100 * (median(results["now"]) / median(results["before"]) - 1)
    table = md_table(
        ["daemon, edit of r10 in a 20-chain", "save to result: median (min)", "p95"], rows
    )
    note = f"Change of medians, now vs before: {change:+.1f} % (20 ms debounce included)."
    return f"{table}\n\n{note}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executors", default=DEFAULT_EXECUTORS, help="comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="runs per wide/chain scenario")
    parser.add_argument("--inline-repeats", type=int, default=5, help="one-shot rounds")
    parser.add_argument("--saves", type=int, default=20, help="daemon saves per tree")
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="the code 'before'")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per subprocess")
    args = parser.parse_args()
    executors = [e.strip() for e in args.executors.split(",") if e.strip()]
    before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-parallel-") as tmp:
        work = Path(tmp)
        old = baseline_tree(work, args.baseline_rev)
        wide_table = wide(work, executors, args.repeats, args.timeout)
        chain_table = chain_overhead(work, executors, args.repeats, args.timeout)
        oneshot_table = inline_oneshot(work, old, args.inline_repeats, args.timeout)
        in_process_table = inline_in_process(work, old, args.inline_repeats, args.timeout)
        daemon_table = inline_daemon(work, old, args.saves, args.timeout)
    after = load_average()
    command = "bash bench/run.sh bench_parallel -- " + " ".join(sys.argv[1:])
    print(f"""## Executors: wide pipeline, per-reactor overhead, inline against before

Command: `{command.strip()}`. Load average {before} before, {after} after (2 cores shared).

**Wide pipeline.** 8 independent reactors that each `time.sleep` 1 s and send a number, and a
sink receiving all 8 in one yield (a tuple of receives). *First run*: an empty plant dir.
*With records*: the same plant after a run with 0.01 s sleeps, then the sleep param set to
1.0001 s (not back to 1 s: that result would be restored), which makes all 8 stale.
Wall = `plant.run_reactor(sink)` inside the process; "most at
once" is the most reactors whose recorded [start, start + duration] overlap. Repeats:
{args.repeats}, median (min).

{wide_table}

**Overhead per trivial reactor.** A 50-chain (`r_k` receives `i_(k-1)` and sends it plus 1),
`plant.run_reactor(r49)` wall / 50: first run, then with records after a param edit of `r0`
that makes all 50 re-run. Every reactor waits for the one before: this is pure overhead.

{chain_table}

**The default (inline) against the code before the executor seam** (commit
`{args.baseline_rev}`, from `git archive`, on PYTHONPATH). One-shot: the whole process of
`python chain.py` on the 50-chain, rounds alternating before/now: {args.inline_repeats}.

{oneshot_table}

The run alone, without the interpreter's start: one process per round runs the 100-chain's
target 12 times with a new `start` param each time (all 100 stale) and 12 times unchanged (the
target runs, the 99 others are checked and served); the first two of each are dropped.

{in_process_table}

{daemon_table}
""")


if __name__ == "__main__":
    main()
