"""A command on a real pseudo-terminal, its screen kept by a terminal emulator (pyte), so that
tests see what a user would: what stays on screen, what is redrawn, what is wiped.

The screen is tall enough that nothing scrolls off it in these tests.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyte

COLUMNS, ROWS = 160, 200


class Terminal:
    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self._stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        env = {**env, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(ROWS)}
        env.pop("NO_COLOR", None)
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        self._master = master
        self._cond = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, name="terminal", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self._master], [], [], 0.2)
            if not ready:
                if self.proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(self._master, 65536)
            except OSError:  # the other end closed: the process is gone
                break
            if not data:
                break
            with self._cond:
                self.raw += data
                self._stream.feed(data)
                self._cond.notify_all()
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def lines(self) -> list[str]:
        """The screen's non-empty lines, top to bottom."""
        with self._cond:
            return [line.rstrip() for line in self.screen.display if line.strip()]

    def text(self) -> str:
        return "\n".join(self.lines())

    def wait_until(
        self, check: Callable[[list[str]], object], what: str, timeout: float = 60
    ) -> object:
        """The first truthy `check(lines)`, as the screen changes; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                lines = [line.rstrip() for line in self.screen.display if line.strip()]
                found = check(lines)
                if found:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._ended:
                    raise AssertionError(
                        f"the screen never showed {what} within {timeout} s "
                        f"(exit code {self.proc.poll()}); it shows:\n" + "\n".join(lines)
                    )
                self._cond.wait(min(remaining, 0.5))

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        """The first screen line matching `pattern`."""
        regex = re.compile(pattern)

        def search(lines: list[str]) -> re.Match[str] | None:
            return next((m for line in lines if (m := regex.search(line))), None)

        found = self.wait_until(search, repr(pattern), timeout)
        assert isinstance(found, re.Match)
        return found

    def wait_exit(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM to its process group, then SIGKILL; closes the terminal."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self._reader.join(timeout)
        os.close(self._master)
        return self.proc.returncode
