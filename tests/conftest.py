"""Shared fixtures: an isolated reactor registry, plant dirs, and pipeline projects on disk."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyplantd import reactor

REPO = Path(__file__).resolve().parents[1]
SUBPROCESS_TIMEOUT = 60

# A suite started in the background by a non-interactive shell (`bash .ci/run &`, a CI runner)
# inherits Ctrl-C ignored, and an ignored signal stays ignored in every process it starts: the
# tests of what Ctrl-C does would wait for a signal that no process hears. Handled here, each
# process the tests start gets Ctrl-C's default again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """pyplantd's cache (package versions) in a folder of the test session, for subprocesses
    too: tests neither read nor leave anything in the user's own cache."""
    saved = os.environ.get("PYPLANTD_CACHE_DIR")
    os.environ["PYPLANTD_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if saved is None:
        os.environ.pop("PYPLANTD_CACHE_DIR", None)
    else:
        os.environ["PYPLANTD_CACHE_DIR"] = saved


@pytest.fixture(autouse=True, scope="session")
def _no_bytecode_caches():
    """The processes tests start write no .pyc: Python keys its own by whole-second mtime and
    size, so a same-size edit within a second (what tests make) would run the old module from a
    stale .pyc, in the run under test and in the fresh run the oracle makes alike. What pyplantd
    does about a stale .pyc is tested with ones the tests write themselves (py_compile)."""
    saved = os.environ.get("PYTHONDONTWRITEBYTECODE")
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    yield
    if saved is None:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        os.environ["PYTHONDONTWRITEBYTECODE"] = saved


@pytest.fixture(autouse=True)
def _isolated_registry():
    reactor.forget_visible()
    yield
    reactor.forget_visible()


@pytest.fixture(autouse=True)
def _no_leaked_threads():
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"test leaked threads: {leaked}"


@pytest.fixture
def plant_dir(tmp_path: Path) -> Path:
    return tmp_path / "plant"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    ran: list[str]


class Project:
    """A pipeline project in a temp dir; reactors log their executions to ran.log."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.plant_dir = root / "plant"

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def edit(self, name: str, old: str, new: str) -> None:
        path = self.root / name
        text = path.read_text()
        assert old in text, f"{old!r} not in {name}"
        path.write_text(text.replace(old, new))

    def _run(self, args: list[str], env: dict[str, str] | None = None) -> Result:
        log = self.root / "ran.log"
        log.unlink(missing_ok=True)
        base = {"PYTHONPATH": str(REPO), "PYTHONHASHSEED": "random", "COLUMNS": "200"}
        env = {**os.environ, **base, **(env or {})}
        proc = subprocess.run(
            args, cwd=self.root, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
            env=env,
        )  # fmt: skip
        ran = log.read_text().split() if log.exists() else []
        return Result(proc.returncode, proc.stdout, proc.stderr, ran)

    def python(self, script: str = "pipeline.py", env: dict[str, str] | None = None) -> Result:
        """`python pipeline.py`"""
        return self._run([sys.executable, script], env)

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """`pyplantd ...`"""
        return self._run([sys.executable, "-m", "pyplantd.cli", *args], env)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


LOG_HELPER = """
def log_run(name):
    with open('ran.log', 'a') as handle:
        handle.write(name + '\\n')
"""


def mapped_file(array) -> str | None:
    """The file an array's memory is a map of (from /proc/self/maps), or None if it is not."""
    address = array.__array_interface__["data"][0]
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            low, high = (int(bound, 16) for bound in fields[0].split("-"))
            if low <= address < high:
                return fields[5].strip() if len(fields) == 6 else None
    return None


@contextlib.contextmanager
def start_cluster_host(workers: int = 2, pythonpath: str = "") -> Iterator[str]:
    """A real dask LocalCluster in a process of its own (tests/dask_cluster_host.py); yields
    its scheduler address (127.0.0.1) and stops it, with its workers, at the end.
    `pythonpath` goes first on its processes' path."""
    path = os.pathsep.join(filter(None, [pythonpath, str(REPO)]))
    host = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "dask_cluster_host.py"), str(workers)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        cwd=REPO, env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip
    try:
        assert host.stdout is not None
        ready = threading.Event()
        lines: list[str] = []

        def read_address() -> None:
            assert host.stdout is not None
            lines.append(host.stdout.readline().strip())
            ready.set()

        reader = threading.Thread(target=read_address, daemon=True)
        reader.start()
        assert ready.wait(120), "the dask cluster did not start in 120 s"
        reader.join(5)
        assert lines and lines[0].startswith("tcp://127.0.0.1:"), lines
        yield lines[0]
    finally:
        if host.stdin is not None:
            host.stdin.close()
        try:
            host.wait(30)
        except subprocess.TimeoutExpired:
            host.kill()
            host.wait(10)
