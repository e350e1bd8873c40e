"""Graceful termination: SIGTERM unwinds like Ctrl-C, so an open plant flushes what it is
writing before the process ends (the default action would kill it mid-write); and no stop
signal interrupts that flush unless the user insists (the next signal after it was told what is
left). Installed only from the main thread and only over the default handlers, so an
application's own handlers are never replaced. Depends on sizes only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Protocol

from ..sizes import format_size

_users = 0
_previous: signal.Handlers | None = None
_terminations = 0


class PendingWriteLike(Protocol):
    name: str  # an ingredient's, or a reactor's for the commit of its results
    path: str  # empty for a commit
    size_hint: int


def _terminate(signum: int, frame: FrameType | None) -> None:
    global _terminations
    _terminations += 1
    if _terminations == 1:
        raise SystemExit(128 + signum)
    if _terminations >= 3:
        os._exit(128 + signum)  # the user insists
    # a second one: unwinding again could skip the flush of what is being written
    _say("pyplantd: still stopping; send it once more to exit at once")


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
    global _users, _terminations
    if _users == 0 or threading.current_thread() is not threading.main_thread():
        return
    _users -= 1
    if _users == 0 and signal.getsignal(signal.SIGTERM) is _terminate:
        signal.signal(signal.SIGTERM, _previous or signal.SIG_DFL)
        _terminations = 0


def describe_writes(pending: Sequence[PendingWriteLike]) -> str:
    """`ingredient 'data' (320.0 MiB), the results of load`"""
    parts = []
    payloads = [p for p in pending if p.path]
    if payloads:
        names = ", ".join(f"'{p.name}'" for p in payloads[:5]) + (" ..." * (len(payloads) > 5))
        size = format_size(sum(p.size_hint for p in payloads))
        parts.append(f"ingredient{'s' * (len(payloads) > 1)} {names} ({size})")
    commits = [p.name for p in pending if not p.path]
    if commits:
        parts.append(f"the results of {', '.join(commits[:5])}" + " ..." * (len(commits) > 5))
    return ", ".join(parts) or "nothing"


@contextlib.contextmanager
def flushing(pending: Sequence[PendingWriteLike]) -> Iterator[None]:
    """Around the flush of `pending` writes before a plant closes: Ctrl-C and SIGTERM do not
    interrupt it; the first says what is left, the next exits at once without it."""
    if not pending or threading.current_thread() is not threading.main_thread():
        yield
        return
    what = describe_writes(pending)  # now: a handler must take no lock
    received = 1 if _terminations > 1 else 0  # told already, by _terminate

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        received += 1
        if received > 1:
            os._exit(128 + signum)
        _say(f"pyplantd: still writing {what}; interrupt again to exit without it")

    ours = {
        signal.SIGINT: (signal.default_int_handler,),
        signal.SIGTERM: (signal.SIG_DFL, _terminate),
    }
    replaced = {
        sig: signal.signal(sig, on_signal)
        for sig, defaults in ours.items()
        if signal.getsignal(sig) in defaults
    }
    try:
        yield
    finally:
        for sig, handler in replaced.items():
            signal.signal(sig, handler)


def _say(text: str) -> None:
    """A line on stderr from a signal handler: the file descriptor, not sys.stderr, which the
    interrupted code may be writing to."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.write(sys.stderr.fileno(), (text + "\n").encode(errors="replace"))
