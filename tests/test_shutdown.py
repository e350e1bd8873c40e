"""Stopping a run (SIGTERM, Ctrl-C) flushes what finished reactors were still writing.

The write is held open by a slow disk (tests/slow_disk.py) until the test opens a gate, so the
signal always arrives while it is pending (a large array made that a matter of timing: on an idle
machine its write could finish first, on a busy one it took most of a minute).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from slow_disk import SLOW_DISK

REPO = Path(__file__).resolve().parents[1]

PIPELINE = (
    SLOW_DISK
    + """
import os, sys, time
from pyplantd import Plant, ReactorFunc


def log(name):
    with open('ran.log', 'a') as handle:
        handle.write(name + '\\n')

@ReactorFunc
def load(pipe):
    pipe.send('data', 'x' * 1000)
    log('load')

@ReactorFunc
def process(pipe):
    data = yield pipe.receive('data')
    log('process')
    if len(sys.argv) > 1:
        time.sleep(120)
    pipe.send('total', len(data))

with Plant('plant') as plant:
    plant.run_reactor(process)
"""
)


def run(root: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "pipeline.py", *args], cwd=root, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def wait_for(path: Path, word: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and word in path.read_text().split()):
        assert time.monotonic() < deadline, f"{word} never appeared in {path}"
        time.sleep(0.005)


def wait_for_file(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_stopping_a_run_keeps_what_finished_before_it(tmp_path, stop):
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    proc = run(tmp_path, "slow")
    try:
        wait_for(tmp_path / "ran.log", "process")
        wait_for_file(tmp_path / "writing")  # load's write has begun and cannot end yet
        proc.send_signal(stop)
        (tmp_path / "gate-open").touch()
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if stop == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM, stderr
    (tmp_path / "ran.log").unlink()
    again = run(tmp_path)
    _, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr
    assert (tmp_path / "ran.log").read_text().split() == ["process"]  # load stayed cached
