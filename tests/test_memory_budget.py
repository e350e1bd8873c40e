"""The memory budget is a bound: values not yet on disk count against it, so `send` waits for the
writer rather than let write-behind hold every value sent. Peak RSS is measured from outside the
process: a launcher forks and execs the run and reads `ru_maxrss` from `wait4` (a fork from the
small launcher, so the child does not inherit the test process's own high-water mark), and the
daemon's `VmHWM` is read from /proc while it is alive.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import REPO, Project
from pyplant_client import Client
from test_daemon import Daemon, save_atomic

MB = 10**6
BUDGET_MB = 100
ARRAY_MB = 60
COUNT = 5
SLACK_MB = 40  # allocator and page-cache noise over the baseline run's peak

# Five producers send a large array each; the sink takes them one at a time and drops each.
PRODUCER = """
@ReactorFunc
def produce{i}(pipe):
    pipe.send("a{i}", np.full(SIZE // 8, {i}.0 + SEED))
"""
PIPELINE = """
import numpy as np

from pyplantd import Plant, ReactorFunc

SIZE = {size}
SEED = 0
{producers}

@ReactorFunc
def total(pipe):
    result = 0.0
    for i in range({count}):
        array = yield pipe.receive(f"a{{i}}")
        result += float(array[::100_000].sum())
        del array
    print("TOTAL", result)


if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.run_reactor(total)
"""

LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print("LAUNCHED", os.waitstatus_to_exitcode(status), usage.ru_maxrss, file=sys.stderr)
"""


def write_pipeline(project: Project, array_bytes: int) -> None:
    producers = "".join(PRODUCER.format(i=i) for i in range(COUNT))
    text = PIPELINE.format(size=array_bytes, producers=producers, count=COUNT)
    project.write("pipeline.py", textwrap.dedent(text))


def peak_rss_of_run(project: Project, *args: str) -> int:
    """Bytes: the peak RSS of `pyplantd run pipeline.py ARGS` in a fresh plant dir."""
    subprocess.run(["rm", "-rf", str(project.plant_dir)], check=True, timeout=60)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", LAUNCHER, "-m", "pyplantd.cli", "run", "pipeline.py", *args]
    done = subprocess.run(
        command, cwd=project.root, env=env, capture_output=True, text=True, timeout=300
    )
    found = re.search(r"LAUNCHED (-?\d+) (\d+)", done.stderr)
    assert found and found[1] == "0", done.stdout + done.stderr
    return int(found[2]) * 1024  # ru_maxrss is in KiB on Linux


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss units, /proc")
def test_peak_rss_of_a_run_stays_under_budget_plus_one_ingredient(project: Project) -> None:
    write_pipeline(project, 1 * MB)
    baseline = peak_rss_of_run(project, "--memory", f"{BUDGET_MB}MB")
    write_pipeline(project, ARRAY_MB * MB)
    peak = peak_rss_of_run(project, "--memory", f"{BUDGET_MB}MB")
    bound = baseline + (BUDGET_MB + ARRAY_MB + SLACK_MB) * MB
    assert peak < bound, (
        f"peak RSS {peak / MB:.0f} MB over {bound / MB:.0f} MB (baseline {baseline / MB:.0f} MB "
        f"+ budget {BUDGET_MB} MB + one {ARRAY_MB} MB ingredient + {SLACK_MB} MB)"
    )


# -- the daemon -----------------------------------------------------------------------------
@pytest.fixture
def daemons(project: Project) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(*args: str) -> Daemon:
        started.append(Daemon(project.root, *args))
        return started[-1]

    try:
        yield start
    finally:
        for daemon in started:
            code = daemon.stop()
            print(f"--- daemon (exit {code}) printed:\n{daemon.transcript()}")


def high_water_mark(daemon: Daemon) -> int:
    status = Path(f"/proc/{daemon.proc.pid}/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    assert found, status
    return int(found[1]) * 1024


def warm_status(project: Project) -> dict[str, object]:
    with Client.find(project.root) as client:
        memory: dict[str, object] = client.status()["memory"]
    return memory


def edit_seed(project: Project, seed: int) -> None:
    script = project.root / "pipeline.py"
    text = re.sub(r"^SEED = \d+$", f"SEED = {seed}", script.read_text(), flags=re.M)
    save_atomic(script, text)


def run_daemon_with_one_edit(
    project: Project, start: Callable[..., Daemon], array_bytes: int
) -> tuple[int, dict[str, object]]:
    """The daemon's peak RSS over its start and a save that re-runs every producer, and the
    status's memory part after it."""
    write_pipeline(project, array_bytes)
    daemon = start("--memory", f"{BUDGET_MB}MB")
    assert "TOTAL" in str(daemon.next_run())
    edit_seed(project, 1)
    run = daemon.next_run(timeout=120)
    assert run.states.get("produce4") == "ran", run
    peak, memory = high_water_mark(daemon), warm_status(project)
    daemon.stop()
    subprocess.run(["rm", "-rf", str(project.plant_dir)], check=True, timeout=60)
    return peak, memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/<pid>/status")
def test_the_daemon_keeps_old_versions_warm_only_within_the_budget_and_says_why(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    baseline, small = run_daemon_with_one_edit(project, daemons, 1 * MB)
    peak, large = run_daemon_with_one_edit(project, daemons, ARRAY_MB * MB)
    bound = baseline + (BUDGET_MB + ARRAY_MB + SLACK_MB) * MB
    assert peak < bound, (
        f"daemon peak RSS {peak / MB:.0f} MB over {bound / MB:.0f} MB "
        f"(baseline {baseline / MB:.0f} MB)"
    )
    assert isinstance(large["warm_bytes"], int) and large["warm_bytes"] <= BUDGET_MB * MB
    warm = small["warm"]  # what is warm, and why
    assert isinstance(warm, list)
    whys = {(entry["name"], entry["why"]) for entry in warm}
    assert ("a0", "current value") in whys
    assert any(why.startswith("earlier version") for _name, why in whys), json.dumps(warm)
