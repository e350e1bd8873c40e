"""A real `pyplantd watch pipeline.py` subprocess, its output read line by line: each run ends with
a `memory:` line, and `next_run` returns the lines of the next one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


class WatchDaemon:
    def __init__(self, root: Path, env: dict[str, str], poll: bool = False) -> None:
        args = [sys.executable, "-m", "pyplantd.cli", "watch", "pipeline.py"]
        self.proc = subprocess.Popen(
            [*args, *(["--poll"] if poll else [])], cwd=root, env=env, text=True, bufsize=1,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.lines: list[str] = []
        self._runs_taken = 0
        self._taken_to = 0
        self._ended = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="difftest-daemon", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def next_run(self, timeout: float) -> list[str] | None:
        """The lines of the next run, once its `memory:` line is out; None on timeout or exit."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index in range(self._taken_to, len(self.lines)):
                    if self.lines[index].startswith("memory: "):
                        run = self.lines[self._taken_to : index + 1]
                        self._taken_to = index + 1
                        return run
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._ended:
                    return None
                self._cond.wait(remaining)

    def wait_for(self, text: str, timeout: float) -> bool:
        """Wait for a line containing `text`; the lines up to it are taken."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for index in range(self._taken_to, len(self.lines)):
                    if text in self.lines[index]:
                        self._taken_to = index + 1
                        return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._ended:
                    return False
                self._cond.wait(remaining)

    def pending(self) -> list[str]:
        """Lines printed since the last run returned (notices, a run still going)."""
        with self._cond:
            return self.lines[self._taken_to :]

    def skip_pending(self) -> None:
        with self._cond:
            self._taken_to = len(self.lines)

    def transcript(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def daemon_env(repo: Path, out: Path) -> dict[str, str]:
    path = os.pathsep.join([str(repo), str(repo / "client")])
    return {
        **os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", "COLUMNS": "200",
        "DIFFTEST_OUT": str(out), "DIFFTEST_PLANT": "plant",
    }  # fmt: skip
