"""The daemon while the script's module-level code runs (a slow import, an endless loop), and how
it stops: `pyplant status` says what it is doing and where, a fixing save cancels the load,
`pyplant stop` stops it, and a stop waits for pending writes (saying which) unless a third stop
insists. One-shot runs keep the same rule: a signal during the final flush does not cut it short.

Real `pyplantd watch` and `python pipeline.py` subprocesses, the real `pyplant` client, real
signals. A custom ingredient type whose write waits for a gate file holds a write pending for as
long as a test needs, whatever the machine's load.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

from conftest import LOG_HELPER, Project
from slow_disk import SLOW_DISK
from test_daemon import PYTHONPATH, Daemon, save_atomic, start_daemon  # noqa: F401 - the fixture

# -- the script hangs while it loads -------------------------------------------------------------
HANGING = """
import time

from sidefx import log_run

LOADED = True
while True:  # the endless loop
    time.sleep(0.01)
"""

FIXED = """
from sidefx import log_run

LOADED = True
"""

PIPELINE = """
import slow

from sidefx import log_run

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def show(pipe):
    log_run('show')
    pipe.send('loaded', slow.LOADED)


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(show)
"""


def pyplant(project: Project, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real client, in its own process."""
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    return subprocess.run(
        [sys.executable, "-m", "pyplant_client.cli", *args, "--dir", str(project.root)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )  # fmt: skip


def status_line_matching(project: Project, pattern: str, timeout: float = 60) -> str:
    """Polls `pyplant status` until its state line matches `pattern`."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        result = pyplant(project, "status")
        state = [line for line in result.stdout.splitlines() if line.startswith("state: ")]
        if result.returncode == 0 and state and re.search(pattern, state[0]):
            return state[0]
        seen = result.stdout + result.stderr
        time.sleep(0.1)
    raise AssertionError(f"`pyplant status` never matched {pattern!r}; last output:\n{seen}")


def hanging_project(project: Project) -> None:
    project.write("sidefx.py", LOG_HELPER)
    project.write("slow.py", HANGING)
    project.write("pipeline.py", PIPELINE)


def test_status_says_where_the_load_hangs_and_a_fixing_save_cancels_it(
    project: Project,
    start_daemon: Callable[..., Daemon],  # noqa: F811 - the fixture imported above
) -> None:
    hanging_project(project)
    daemon = start_daemon()
    # polled until the load is inside slow.py (just after start it is still at pipeline.py:1)
    line = status_line_matching(project, r"loading pipeline\.py for \d+\.\d s \(at slow\.py:")
    loop = textwrap.dedent(HANGING).lstrip("\n").splitlines().index("    time.sleep(0.01)") + 1
    assert re.fullmatch(
        rf"state: loading pipeline\.py for \d+\.\d s \(at slow\.py:{loop}\), run 1 \(start\)", line
    ), line

    # slow.py never finished loading: it is watched from a moment after its import began (a
    # save within that moment is not seen, so the save is repeated, as a user would)
    for attempt in range(20):
        save_atomic(project.root / "slow.py", textwrap.dedent(FIXED) + f"# {attempt}\n")
        with contextlib.suppress(AssertionError):
            daemon.wait_for(r"^start: loading pipeline\.py cancelled \(", timeout=3)
            break
    else:
        raise AssertionError("saving slow.py never cancelled the load:\n" + daemon.transcript())
    run = daemon.next_run()
    assert run.states == {"show": "ran"}, run
    assert run.summary.startswith("saved slow.py: 1 of 1 reactors ran"), run
    assert (project.root / "ran.log").read_text().split() == ["show"]
    status_line_matching(project, r"^state: idle$")


def test_pyplant_stop_stops_a_load_that_never_ends(
    project: Project,
    start_daemon: Callable[..., Daemon],  # noqa: F811 - the fixture imported above
) -> None:
    hanging_project(project)
    daemon = start_daemon()
    status_line_matching(project, r"loading pipeline\.py")
    stopped = pyplant(project, "stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert daemon.proc.wait(60) == 0
    daemon.wait_for(r"^stopping: flushing")


# -- a stop waits for what is being written ------------------------------------------------------
GATED = (
    SLOW_DISK
    + """
import os, sys, time

from sidefx import log_run

from pyplantd import Plant, ReactorFunc




@ReactorFunc
def load(pipe):
    log_run('load')
    pipe.send('data', 'x' * 1000)


@ReactorFunc
def process(pipe):
    data = yield pipe.receive('data')
    log_run('process')
    if os.path.exists('slow'):
        time.sleep(120)
    pipe.send('total', len(data))


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(process)
"""
)


def gated_project(project: Project) -> None:
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", GATED)
    project.write("slow", "")


def wait_for_file(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)


def wait_for_word(path: Path, word: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and word in path.read_text().split()):
        assert time.monotonic() < deadline, f"{word} never appeared in {path}"
        time.sleep(0.005)


def load_was_kept(project: Project) -> bool:
    """A fresh one-shot run: did `load`'s result survive (only `process` runs)?"""
    (project.root / "slow").unlink(missing_ok=True)
    (project.root / "gate-open").touch()
    result = project.python()
    assert result.returncode == 0, result.stderr
    return result.ran == ["process"]


def test_a_second_sigterm_does_not_cut_the_daemons_flush_short(
    project: Project,
    start_daemon: Callable[..., Daemon],  # noqa: F811 - the fixture imported above
) -> None:
    gated_project(project)
    daemon = start_daemon()
    wait_for_word(project.root / "ran.log", "process")
    wait_for_file(project.root / "writing")  # load's write has begun and cannot end yet
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.wait_for(r"^stopping|cancelled")
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.wait_for(r"^stopping: still (finishing|writing)")
    assert daemon.proc.poll() is None  # still waiting for the write
    (project.root / "gate-open").touch()
    assert daemon.proc.wait(60) == 0, daemon.transcript()
    assert load_was_kept(project)


def test_a_third_stop_exits_at_once_and_says_what_it_drops(
    project: Project,
    start_daemon: Callable[..., Daemon],  # noqa: F811 - the fixture imported above
) -> None:
    gated_project(project)
    daemon = start_daemon()
    wait_for_word(project.root / "ran.log", "process")
    wait_for_file(project.root / "writing")
    for expected in (r"^stopping|cancelled", r"^stopping: still", r"dropped|without writing"):
        daemon.proc.send_signal(signal.SIGINT)
        daemon.wait_for(expected)
    assert daemon.proc.wait(60) == 128 + signal.SIGINT
    assert not load_was_kept(project)  # as announced: its reactor runs again


def test_a_second_sigterm_does_not_cut_a_one_shot_flush_short(project: Project) -> None:
    """The run is over, the plant closing waits for the gated write: the first SIGTERM unwinds
    to that flush, the next one may not interrupt it (it used to: the write was lost)."""
    gated_project(project)
    (project.root / "slow").unlink()
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    proc = subprocess.Popen(
        [sys.executable, "pipeline.py"], cwd=project.root, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    said: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: [said.put(line) for line in proc.stderr or ()])
    reader.start()
    try:
        wait_for_word(project.root / "ran.log", "process")
        wait_for_file(project.root / "writing")
        # Two signals sent at once may arrive as one: send, and again until it says it waits.
        for _ in range(30):
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(queue.Empty):
                told = said.get(timeout=2)
                break
        else:
            raise AssertionError("it never said what it waits for")
        assert re.match(r"pyplantd: still (stopping|writing ingredients .*'data')", told), told
        assert proc.poll() is None
        (project.root / "gate-open").touch()
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        assert proc.stdout is not None
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 128 + signal.SIGTERM, list(said.queue)
    assert load_was_kept(project)
