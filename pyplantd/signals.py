"""Graceful termination: SIGTERM unwinds like Ctrl-C, so an open plant flushes what it is
writing before the process ends (the default action would kill it mid-write).

Installed only from the main thread and only while SIGTERM has its default action, so an
application's own handler is never replaced. Depends on nothing else in pyplantd.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_users = 0
_previous: signal.Handlers | None = None


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def graceful_sigterm() -> bool:
    """Turn SIGTERM into SystemExit while a plant is open; True if installed."""
    global _users, _previous
    if threading.current_thread() is not threading.main_thread():
        return False
    if _users == 0:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return False
        _previous = signal.SIG_DFL
        signal.signal(signal.SIGTERM, _terminate)
    _users += 1
    return True


def release_sigterm() -> None:
    """Undo one graceful_sigterm(); the default action returns with the last plant."""
    global _users
    if _users == 0 or threading.current_thread() is not threading.main_thread():
        return
    _users -= 1
    if _users == 0 and signal.getsignal(signal.SIGTERM) is _terminate:
        signal.signal(signal.SIGTERM, _previous or signal.SIG_DFL)
