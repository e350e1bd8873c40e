"""Interrupting the user's code on the daemon's main thread: a newer save cancels the script's
module-level code or the reactor that is running, a stop ends it.

An interrupt is raised only while the main thread runs the user's own code (a reactor, the
script's module-level code, or a library either of them called), never inside pyplantd's own
work (a send, a commit, a print), which it would leave half done. Arriving there, it is
delivered again every few milliseconds until the user's code runs or the request is withdrawn.
Signals are the only way into a busy main thread, so this module owns SIGUSR1 while the daemon
serves.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import threading
import time
from types import CodeType, FrameType

from .. import reactor as _reactor
from ..errors import RunCancelled
from ..hosting.script import run_script
from ..run.scheduler import Run

# Retries while the main thread is in pyplantd's code: soon at first, then less often, so a long
# wait of ours (a large commit) is not woken hundreds of times a second.
RETRY_SECONDS = (0.002, 0.005, 0.01, 0.02, 0.05)

_PYPLANTD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
# Where pyplantd hands the main thread to the user's code...
_ENTRIES: frozenset[CodeType] = frozenset({Run._advance.__code__, run_script.__code__})
# ...and the file of its pure wrappers (a plain reactor as a generator, @SubreactorFunc),
# which do no bookkeeping of their own.
_WRAPPERS = os.path.abspath(_reactor.__file__)


class Stop(RunCancelled):
    """Ctrl-C, SIGTERM or a client's stop, raised into the running code: leave gracefully."""


def in_user_code(frame: FrameType | None) -> bool:
    """Whether the innermost frames, up to where pyplantd entered the user's code, are all
    outside pyplantd (the user's code and the libraries it calls)."""
    outside = False
    while frame is not None:
        code = frame.f_code
        if code in _ENTRIES:
            return outside
        filename = code.co_filename
        if filename.startswith(_PYPLANTD_DIR) and filename != _WRAPPERS:
            return False
        outside = True
        frame = frame.f_back
    return False


class Interrupter:
    """Raises a requested exception in the main thread's user code, as soon as it runs some."""

    def __init__(self) -> None:
        self.pending: type[BaseException] | None = None
        self._main = threading.main_thread().ident or 0
        self._wake: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self._previous: object = None

    def start(self) -> None:
        """Own SIGUSR1 and start the retrying thread (main thread only)."""
        read, write = os.pipe()
        fcntl.fcntl(write, fcntl.F_SETFL, os.O_NONBLOCK)  # a signal handler writes to it
        self._wake = read, write
        self._previous = signal.signal(signal.SIGUSR1, self._on_signal)
        self._thread = threading.Thread(target=self._retry, name="pyplantd-interrupts", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.pending = None
        if self._wake is None:
            return
        signal.signal(signal.SIGUSR1, self._previous)  # type: ignore[arg-type]
        read, write = self._wake
        os.close(write)  # the retrying thread reads the end of the pipe and returns
        if self._thread is not None:
            self._thread.join(5)
        os.close(read)
        self._wake = self._thread = None

    def request(self, kind: type[BaseException]) -> None:
        """Raise `kind` in the user's code (any thread; a stop is never replaced by a cancel)."""
        if self.pending is Stop and kind is not Stop:
            return
        self.pending = kind
        self._signal_main()

    def withdraw(self) -> None:
        """The main thread left the user's code for good (the run or the load is over)."""
        self.pending = None

    def _signal_main(self) -> None:
        if self._wake is not None:
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pthread_kill(self._main, signal.SIGUSR1)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        kind = self.pending
        if kind is None:
            return
        if in_user_code(frame):
            self.pending = None
            raise kind()
        if self._wake is not None:  # not now: ask the retrying thread for another try
            with contextlib.suppress(OSError):  # a full pipe: a retry is on its way anyway
                os.write(self._wake[1], b".")

    def _retry(self) -> None:
        assert self._wake is not None
        read, tries, asked = self._wake[0], 0, None
        while os.read(read, 512):
            tries = tries + 1 if asked is not None and asked is self.pending else 0
            asked = self.pending
            time.sleep(RETRY_SECONDS[min(tries, len(RETRY_SECONDS) - 1)])
            if self.pending is not None:
                self._signal_main()
