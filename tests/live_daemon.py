"""A real `pyplantd watch` in a subprocess for tests of the commands that go through it: started
in a project folder, awaited until its first run is over, stopped (killed if need be) after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import REPO
from pyplant_client import Client, protocol

ENV = {"PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "client")]), "COLUMNS": "200"}
START_SECONDS = 60


@contextmanager
def live_daemon(root: Path, *args: str) -> Iterator[Path]:
    """`pyplantd watch ARGS` in `root`, until its first run is over; yields its log file."""
    log = root.parent / f"{root.name}-daemon.log"
    with open(log, "w") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "pyplantd.cli", "watch", *args], cwd=root, stdout=out,
            stderr=subprocess.STDOUT, env={**os.environ, **ENV, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
    try:
        wait_idle(root, daemon, log)
        yield log
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(5)
        print(f"--- daemon printed:\n{log.read_text()}")


def wait_idle(root: Path, daemon: subprocess.Popen[bytes], log: Path) -> None:
    connection = root / protocol.RUNTIME_DIR / protocol.CONNECTION_FILE
    deadline = time.monotonic() + START_SECONDS
    while not connection.exists():
        assert daemon.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the daemon wrote no connection file"
        time.sleep(0.05)
    with Client.find(root) as client:
        while not ((status := client.status()).get("last_run") and status["state"] == "idle"):
            assert time.monotonic() < deadline, status
            time.sleep(0.05)


def wait_for_line(log: Path, text: str, timeout: float = 30) -> str:
    """The daemon's output once it holds `text`."""
    deadline = time.monotonic() + timeout
    while text not in (printed := log.read_text()):
        assert time.monotonic() < deadline, f"no {text!r} in:\n{printed}"
        time.sleep(0.05)
    return printed


def command(root: Path, program: str, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`pyplantd ARGS` or `pyplant ARGS` (program: the module) run in `root`."""
    return subprocess.run(
        [sys.executable, "-m", program, *args], cwd=root, capture_output=True, text=True,
        timeout=120, env={**os.environ, **ENV, **(env or {})},
    )  # fmt: skip


def pyplantd(root: Path, *args: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return command(root, "pyplantd.cli", *args, env=env)


def pyplant(root: Path, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return command(root, "pyplant_client.cli", *args, env=env)
