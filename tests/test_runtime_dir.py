"""Where the daemon keeps its runtime dir (the project root) and how the `pyplant` client finds
it, with a real `pyplantd watch` subprocess and the real client and CLI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import REPO
from pyplant_client import Client, protocol

PYTHONPATH = os.pathsep.join([str(REPO), str(REPO / "client")])
START_TIMEOUT = 60  # a loaded 2-core machine takes a few seconds to start a daemon

PIPELINE = """
from pyplantd import Plant, ReactorFunc


@ReactorFunc
def load(pipe):
    pipe.send('data', [1, 2, 3])


with Plant('PLANT') as plant:
    plant.run_reactor(load)
"""


class Watch:
    """`pyplantd watch ARGS` started in `cwd`; its output goes to a log file."""

    def __init__(self, cwd: Path, *args: str, log: Path) -> None:
        self.log_path = log
        with open(log, "w") as handle:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pyplantd.cli", "watch", *args], cwd=cwd,
                env={**os.environ, "PYTHONPATH": PYTHONPATH},
                stdout=handle, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def output(self) -> str:
        return self.log_path.read_text()

    def wait_connection(self, runtime: Path) -> protocol.ConnectionInfo:
        """The connection file in `runtime`, once this daemon has written it."""
        path = runtime / protocol.CONNECTION_FILE
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.proc.poll() is None, self.output()
            if path.exists():
                info = protocol.ConnectionInfo.read(path)
                if info.pid == self.proc.pid:
                    return info
            assert time.monotonic() < deadline, f"no connection file in {runtime}"
            time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[Callable[..., Watch]]:
    started: list[Watch] = []

    def start(cwd: Path, *args: str) -> Watch:
        started.append(Watch(cwd, *args, log=tmp_path / f"daemon-{len(started)}.log"))
        return started[-1]

    try:
        yield start
    finally:
        for daemon in started:
            daemon.stop()


def pyplant(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The `pyplant` CLI run in `cwd`, without --dir: as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "pyplant_client.cli", *args], cwd=cwd, capture_output=True,
        text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO / "client")},
    )  # fmt: skip


def make_project(root: Path, *pipelines: str) -> None:
    """A project (pyproject.toml at `root`) with these pipeline scripts, each its own plant."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    for index, relative in enumerate(pipelines):
        script = root / relative
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(PIPELINE.replace("PLANT", str(root / f"plant-{index}")))


# -- issue 11.1: the runtime dir at the project root -------------------------------------------
def test_pyplant_finds_a_daemon_on_a_nested_pipeline_from_the_project_root_and_below(
    tmp_path: Path, watch
) -> None:
    root = tmp_path / "project"
    make_project(root, "examples/quickstart.py")
    (root / "src" / "deep").mkdir(parents=True)
    daemon = watch(root, "examples/quickstart.py")  # as the README says, from the root
    info = daemon.wait_connection(root / protocol.RUNTIME_DIR)
    assert not (root / "examples" / protocol.RUNTIME_DIR).exists()
    for cwd in (root, root / "examples", root / "src" / "deep"):
        status = pyplant(cwd, "status")
        assert status.returncode == 0, (cwd, status.stderr)
        assert status.stdout.startswith(f"daemon pid {info.pid}: "), status.stdout
    with Client.find(root / "src") as client:
        assert client.ping()["pong"] is True


def test_a_pipeline_outside_any_project_keeps_its_runtime_dir_beside_it(
    tmp_path: Path, watch
) -> None:
    folder = tmp_path / "scratch"
    folder.mkdir()
    (folder / "pipeline.py").write_text(PIPELINE.replace("PLANT", str(tmp_path / "plant")))
    daemon = watch(tmp_path, "scratch/pipeline.py")
    info = daemon.wait_connection(folder / protocol.RUNTIME_DIR)
    assert pyplant(folder, "status").returncode == 0
    assert info.pid == daemon.proc.pid


def test_a_second_daemon_in_the_project_is_refused_naming_pyplant_stop(
    tmp_path: Path, watch
) -> None:
    root = tmp_path / "project"
    make_project(root, "a/first.py", "b/second.py")
    first = watch(root / "a", "first.py")
    first.wait_connection(root / protocol.RUNTIME_DIR)
    second = subprocess.run(
        [sys.executable, "-m", "pyplantd.cli", "watch", "b/second.py"], cwd=root,
        env={**os.environ, "PYTHONPATH": PYTHONPATH}, capture_output=True, text=True,
        timeout=START_TIMEOUT,
    )  # fmt: skip
    message = " ".join(second.stderr.split())
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"pid {first.proc.pid} on {root / 'a' / 'first.py'}" in message, message
    assert "`pyplant stop`" in message and str(root) in message, message
    assert first.proc.poll() is None

    stopped = pyplant(root / "b", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert first.proc.wait(30) == 0
    third = watch(root, "b/second.py")
    assert third.wait_connection(root / protocol.RUNTIME_DIR).pid == third.proc.pid
