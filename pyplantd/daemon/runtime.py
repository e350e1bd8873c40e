"""The daemon's runtime directory `.pyplantd/` at the project root (mode 0700): its lock, and the
connection file and sockets a client finds it by. One daemon per project, whichever pipeline of
it it serves: the lock is a kernel file lock, released if the daemon dies, so a crashed daemon
never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO

from pyplant_client.protocol import project_root

from ..errors import PlantError

RUNTIME_DIR = ".pyplantd"
LOCK_FILE = "daemon.lock"
LOG_FILE = "daemon.log"


class DaemonRunningError(PlantError):
    """Another daemon already serves this pipeline or plant dir."""


def runtime_dir(pipeline: Path) -> Path:
    """`.pyplantd/` at the pipeline's project root, created owner-only."""
    path = project_root(pipeline) / RUNTIME_DIR
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
    return path


class DaemonLock:
    """Held for the daemon's life; says who holds it when refused."""

    def __init__(self, directory: Path, pipeline: Path, plant_dir: Path | None) -> None:
        self.path = directory / LOCK_FILE
        self._handle: IO[str] = open(self.path, "a+")  # noqa: SIM115 - held open for life
        try:
            fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(self._handle)
            self._handle.close()
            raise DaemonRunningError(
                f"A pyplantd daemon is already running in the project {directory.parent} "
                f"({holder}); one daemon serves a project. Stop it with `pyplant stop` (or "
                "Ctrl-C in its terminal), then start this one."
            ) from None
        self._handle.seek(0)
        self._handle.truncate()
        info = {"pid": os.getpid(), "pipeline": str(pipeline.absolute()), "since": time.time()}
        if plant_dir is not None:
            info["plant_dir"] = str(plant_dir)
        json.dump(info, self._handle)
        self._handle.flush()

    def release(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()


def _describe(handle: IO[str]) -> str:
    handle.seek(0)
    try:
        info = json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        return "pid unknown"
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
    return f"pid {info.get('pid', '?')} on {info.get('pipeline', '?')}, running since {since}"
