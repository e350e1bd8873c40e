"""The daemon with `--executor threads:2`: a save cancels a run while a pool thread runs a long
reactor (the next run starts at once; nothing of the cancelled run is sent or committed after
the cancel), and two reactors printing at once each get their own whole, prefixed lines."""

from __future__ import annotations

import re
import textwrap
import time
from collections.abc import Callable

from conftest import Project
from live_daemon import pyplant
from test_daemon import (
    Daemon,
    make_project,
    save_atomic,
    start_daemon,  # noqa: F401 - the fixture
    take_ran,
)

HELD = """
import os
import time

from sidefx import log_run

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def long(pipe):
    log_run('long')
    print('long started')
    while HOLD and not os.path.exists('release'):
        time.sleep(0.02)
    log_run('released')
    pipe.send('long', HOLD)
    log_run('sent-HOLD')


@ReactorFunc
def target(pipe):
    value = yield pipe.receive('long')
    pipe.send('out', value)


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(target)
"""


def held(hold: int) -> str:
    return textwrap.dedent(HELD).lstrip("\n").replace("HOLD", str(hold))


def test_a_save_cancels_a_run_whose_reactor_runs_on_a_thread(
    project: Project,
    start_daemon: Callable[..., Daemon],  # noqa: F811 - the fixture imported above
) -> None:
    make_project(project, held(1))
    daemon = start_daemon("--executor", "threads:2")
    daemon.wait_for(r"^\[long\] long started$")
    save_atomic(project.root / "pipeline.py", held(0))
    cancelled = daemon.next_run()
    assert "run cancelled by a newer save" in cancelled.summary, cancelled
    run = daemon.next_run()  # while the cancelled execution still waits on its thread
    assert run.states == {"long": "ran", "target": "ran"}, run
    assert any(re.match(r"^  ✓ long .+ on thread$", line) for line in run.lines), run
    assert take_ran(project) == sorted(["long", "long", "released", "sent-0"])

    (project.root / "release").touch()  # the cancelled execution goes on to its send
    deadline = time.monotonic() + 30
    seen: list[str] = []
    while "released" not in seen:
        assert time.monotonic() < deadline, "the cancelled execution never went on"
        seen += take_ran(project)
        time.sleep(0.05)
    assert daemon.quiet(1.0) == []  # no run, no line: it sent nothing and committed nothing
    assert "sent-1" not in seen + take_ran(project)
    status = pyplant(project.root, "status")
    assert re.search(r"ran\s+long \(\S+ \S+, on thread\)", status.stdout), status


TALKERS = """
import sys
import time

from pyplantd import Plant, ReactorFunc


def talk(name):
    for index in range(15):
        sys.stdout.write(name + '-line ')
        time.sleep(0.004)
        sys.stdout.write(str(index) + '\\n')
        time.sleep(0.002)


@ReactorFunc
def a(pipe):
    talk('a')
    pipe.send('a', 1)


@ReactorFunc
def b(pipe):
    talk('b')
    pipe.send('b', 2)


@ReactorFunc
def both(pipe):
    a, b = yield pipe.receive('a'), pipe.receive('b')
    pipe.send('sum', a + b)


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(both)
"""


def test_two_reactors_printing_at_once_get_their_own_prefixed_lines(
    project: Project,
    start_daemon: Callable[..., Daemon],  # noqa: F811 - the fixture imported above
) -> None:
    make_project(project, TALKERS)
    daemon = start_daemon("--executor", "threads:2")
    run = daemon.next_run()
    assert run.states == {"a": "ran", "b": "ran", "both": "ran"}, run
    talk = [line for line in run.lines if "-line" in line]
    for name in "ab":
        mine = [line for line in talk if f"{name}-line" in line]
        assert mine == [f"[{name}] {name}-line {index}" for index in range(15)], talk
    assert len(talk) == 30, talk
