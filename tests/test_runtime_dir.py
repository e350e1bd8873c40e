"""Where the daemon keeps its runtime dir (the project root) and how the `pyplant` client finds
it, with a real `pyplantd watch` subprocess and the real client and CLI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import REPO
from foreign_user import OTHER_USER, as_other, shared_dir
from pyplant_client import Client, protocol

PYTHONPATH = os.pathsep.join([str(REPO), str(REPO / "client")])
# COLUMNS: rich wraps messages at the terminal width, even inside a path
WATCH_ENV = {**os.environ, "PYTHONPATH": PYTHONPATH, "COLUMNS": "1000"}
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
                env=WATCH_ENV, stdout=handle, stderr=subprocess.STDOUT,
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
        env=WATCH_ENV, capture_output=True, text=True, timeout=START_TIMEOUT,
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


# -- issue 9 B3: nothing in .pyplantd/ is followed through a link or taken from another user ---
def refused_start(cwd: Path, script: str = "pipeline.py") -> str:
    """`pyplantd watch` that must refuse to start: exit 2, its message on one line."""
    done = subprocess.run(
        [sys.executable, "-m", "pyplantd.cli", "watch", script], cwd=cwd,
        env=WATCH_ENV, capture_output=True, text=True,
        timeout=START_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return " ".join(done.stderr.split())


def plain_project(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipeline.py").write_text(PIPELINE.replace("PLANT", str(root / "plant")))


def test_a_lock_file_planted_as_a_symlink_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    plain_project(tmp_path)
    runtime = tmp_path / ".pyplantd"
    runtime.mkdir(mode=0o700)
    victim = tmp_path / "precious.txt"
    victim.write_text("my thesis\n")
    (runtime / "daemon.lock").symlink_to(victim)
    message = refused_start(tmp_path)
    assert f"Refusing {runtime / 'daemon.lock'}: it is a symbolic link" in message, message
    assert victim.read_text() == "my thesis\n"
    assert not (tmp_path / "plant").exists()  # refused before anything ran


def test_a_hard_linked_lock_file_is_refused_and_the_other_file_kept(tmp_path: Path) -> None:
    plain_project(tmp_path)
    runtime = tmp_path / ".pyplantd"
    runtime.mkdir(mode=0o700)
    victim = tmp_path / "precious.txt"
    victim.write_text("my thesis\n")
    os.link(victim, runtime / "daemon.lock")
    message = refused_start(tmp_path)
    assert "it has 2 hard links" in message, message
    assert victim.read_text() == "my thesis\n"


def test_a_runtime_dir_planted_as_a_symlink_is_refused_and_nothing_written_there(
    tmp_path: Path,
) -> None:
    plain_project(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "project" / ".pyplantd").symlink_to(elsewhere)
    message = refused_start(tmp_path / "project")
    assert f"Refusing {tmp_path / 'project' / '.pyplantd'}: it is a symbolic link" in message
    assert list(elsewhere.iterdir()) == []


def test_a_runtime_dir_that_is_a_file_is_refused_without_a_crash(tmp_path: Path) -> None:
    plain_project(tmp_path)
    (tmp_path / ".pyplantd").write_text("not a directory\n")
    message = refused_start(tmp_path)
    assert f"Refusing {tmp_path / '.pyplantd'}: it is not a directory" in message, message
    assert (tmp_path / ".pyplantd").read_text() == "not a directory\n"


def test_a_runtime_dir_made_by_another_user_is_refused_naming_its_owner() -> None:
    shared = shared_dir()  # a project in a folder others can write to, like /tmp
    try:
        plain_project(shared / "project")
        os.chmod(shared / "project", 0o1777)
        runtime = shared / "project" / ".pyplantd"
        as_other("mkdir", "-m", "0777", str(runtime))
        message = refused_start(shared / "project")
        assert f"Refusing {runtime}: it belongs to user {OTHER_USER}" in message, message
        assert list(runtime.iterdir()) == []  # no lock, no key left where that user reads
    finally:
        shutil.rmtree(shared)


def test_a_lock_file_made_by_another_user_is_refused_naming_its_owner(tmp_path: Path) -> None:
    shared = shared_dir()
    try:
        plain_project(shared / "project")
        runtime = shared / "project" / ".pyplantd"
        runtime.mkdir()
        os.chmod(runtime, 0o777)  # once open to everyone, e.g. made under another umask
        as_other("sh", "-c", f"echo '{{}}' > {runtime / 'daemon.lock'}")
        message = refused_start(shared / "project")
        assert f"Refusing {runtime / 'daemon.lock'}: it belongs to user {OTHER_USER}" in message
    finally:
        shutil.rmtree(shared)


def test_a_project_marker_another_user_planted_in_a_shared_folder_does_not_count(
    watch, tmp_path: Path
) -> None:
    shared = shared_dir()
    try:
        as_other("touch", str(shared / "pyproject.toml"))  # as anyone can in /tmp
        plain_project(shared / "mine")
        assert protocol.project_root(shared / "mine" / "pipeline.py") == shared / "mine"
        daemon = watch(shared / "mine", "pipeline.py")
        daemon.wait_connection(shared / "mine" / protocol.RUNTIME_DIR)
        assert not (shared / protocol.RUNTIME_DIR).exists()
        assert daemon.stop() == 0
    finally:
        shutil.rmtree(shared)
