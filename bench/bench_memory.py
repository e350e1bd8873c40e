"""Measures the memory budget as a bound: peak RSS and time of `pyplantd run --memory`.

Five reactors each send a 200 MB float64 array; a sink receives them one at a time and drops
each after use. Run under a 300 MB budget (the arrays cannot all stay in memory) and under a
4 GB one (they fit), each in a fresh plant dir; a child that only imports numpy, h5py and
pyplantd gives the fixed overhead. Peak RSS is measured from outside the process: a small
launcher forks, execs the run and reads `ru_maxrss` from `wait4` (forked from the launcher, the
child does not inherit the benchmark's own high-water mark). With `--baseline-path DIR` (a
checkout of an earlier commit, put first on PYTHONPATH) the same runs are measured with that code
too, side by side.

Prints a Markdown section on stdout; progress on stderr.

    bench/.venv/bin/python bench/bench_memory.py --repeats 7 --baseline-path /tmp/old-checkout
    BENCH_BASELINE_PATH=/tmp/old-checkout bash bench/run.sh bench_memory
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    child_env,
    fmt_bytes,
    fmt_median_min,
    load_average,
    log,
    md_table,
    median,
    run_timed,
)

MB = 10**6
COUNT = 5
ARRAY_MB = 200
TIMEOUT = 600

PRODUCER = """
@ReactorFunc
def produce{i}(pipe):
    pipe.send("a{i}", np.full({size} // 8, {i}.0))
"""
PIPELINE = """
import numpy as np

from pyplantd import Plant, ReactorFunc
{producers}

@ReactorFunc
def total(pipe):
    result = 0.0
    for i in range({count}):
        array = yield pipe.receive(f"a{{i}}")
        result += float(array[::100_000].sum())
        del array  # one at a time: the sink holds no more than one array
    print("TOTAL", result)


if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.run_reactor(total)
"""
# Forks, execs argv[1:], waits: the child's peak RSS is its own, not this process's.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print("LAUNCHED", os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""
IMPORTS_ONLY = "import numpy, h5py, pyplantd, pyplantd.store.plant_store"


@dataclass
class Scenario:
    label: str
    args: list[str]  # after `python`
    peaks: dict[str, list[float]] = field(default_factory=dict)  # engine -> bytes
    times: dict[str, list[float]] = field(default_factory=dict)  # engine -> seconds
    failures: list[str] = field(default_factory=list)


def write_pipeline(folder: Path) -> None:
    producers = "".join(PRODUCER.format(i=i, size=ARRAY_MB * MB) for i in range(COUNT))
    text = PIPELINE.format(producers=producers, count=COUNT)
    (folder / "pipeline.py").write_text(text)


def measure(scenario: Scenario, engine: str, path: str | None, folder: Path) -> None:
    shutil.rmtree(folder / "plant", ignore_errors=True)
    env = child_env()
    if path is not None:
        env["PYTHONPATH"] = path
    result = run_timed(
        [sys.executable, "-c", LAUNCHER, *scenario.args], TIMEOUT, cwd=folder, env=env
    )
    found = re.search(r"LAUNCHED (-?\d+) (\d+)", result.stderr)
    if not result.ok or found is None:
        scenario.failures.append(f"{engine}: {result.failure()}")
        return
    scenario.peaks.setdefault(engine, []).append(float(found[2]))
    scenario.times.setdefault(engine, []).append(result.seconds)


def scenarios() -> list[Scenario]:
    run = ["-m", "pyplantd.cli", "run", "pipeline.py", "--memory"]
    return [
        Scenario("imports only (fixed overhead)", ["-c", IMPORTS_ONLY]),
        Scenario("5 x 200 MB, `--memory 300MB` (over budget)", [*run, "300MB"]),
        Scenario("5 x 200 MB, `--memory 4GB` (fits in the budget)", [*run, "4GB"]),
    ]


def report(args: argparse.Namespace, found: list[Scenario], engines: list[str]) -> str:
    headers = ["scenario"]
    for engine in engines:
        headers += [f"{engine}: peak RSS, median (min)", f"{engine}: wall time, median (min)"]
    rows = []
    for scenario in found:
        row = [scenario.label]
        for engine in engines:
            row.append(fmt_median_min(scenario.peaks.get(engine, []), fmt_bytes))
            row.append(fmt_median_min(scenario.times.get(engine, [])))
        rows.append(row)
    over = found[1].peaks.get(engines[0], [])
    overhead = median(found[0].peaks.get(engines[0], []))
    bound = overhead + 300 * MB + ARRAY_MB * MB
    verdict = (
        f"Bound for the over-budget run (fixed overhead + budget + one ingredient): "
        f"{fmt_bytes(bound)}; measured peak {fmt_bytes(max(over))} (max of the repeats)."
        if over
        else "The over-budget run failed; see below."
    )
    failures = [f for s in found for f in s.failures]
    command = "bench/.venv/bin/python bench/bench_memory.py --repeats " + str(args.repeats)
    if args.baseline_path:
        command += " --baseline-path " + args.baseline_path
    return "\n".join(
        [
            "## Memory budget: peak RSS and time of a run over and within the budget",
            "",
            f"**What is measured.** {COUNT} reactors each send a {ARRAY_MB} MB float64 array; a",
            "sink receives them one at a time and drops each after use. `pyplantd run",
            "pipeline.py --memory 300MB` cannot keep them all in memory; with `--memory 4GB` they",
            "fit. Each run is a new process in a fresh plant dir; peak RSS is `ru_maxrss` of",
            "the run, read by a small launcher that forks and execs it (`wait4`), so the",
            "figure is the run's own; wall time is the launcher's (`run_timed`).",
            f"{args.repeats} repeats of each, shown as median (min). "
            + (
                f"`{engines[1]}` is the code at `{args.baseline_path}` (an earlier commit, put "
                "first on PYTHONPATH), measured in the same rounds."
                if len(engines) > 1
                else ""
            ),
            f"Load average after the runs: {load_average()}.",
            "",
            md_table(headers, rows),
            "",
            verdict,
            *(["", "Failures: " + "; ".join(failures)] if failures else []),
            "",
            f"Command: `{command}`",
            "",
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--baseline-path",
        default=os.environ.get("BENCH_BASELINE_PATH", ""),
        help="an earlier checkout to compare (default: $BENCH_BASELINE_PATH)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    engines = {"pyplantd": None} | ({"before": args.baseline_path} if args.baseline_path else {})
    found = scenarios()
    with tempfile.TemporaryDirectory(prefix="pyplantd-bench-memory-") as temp:
        folder = Path(temp)
        write_pipeline(folder)
        for repeat in range(args.repeats):
            for scenario in found:
                for engine, path in engines.items():
                    log(f"round {repeat + 1}: {scenario.label} with {engine}")
                    measure(scenario, engine, path, folder)
    print(report(args, found, list(engines)))


if __name__ == "__main__":
    main()
