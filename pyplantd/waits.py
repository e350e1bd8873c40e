"""Waits that let signal handlers run: a signal sent to the process goes to any one of its
threads that does not block it, and when that is not the main thread, Python only notes it; the
main thread runs the handler when it next runs Python code. A wait without a timeout on the main
thread (an event, a condition) would hold Ctrl-C or a daemon's stop until what it waits for
happens. Waiting in slices of SIGNAL_CHECK_SECONDS lets the handler run within that time.
Depends on nothing in pyplantd.
"""

from __future__ import annotations

import threading
import time

SIGNAL_CHECK_SECONDS = 0.1


def wait_event(event: threading.Event, timeout: float | None = None) -> bool:
    """`event.wait(timeout)` in slices: True once the event is set, False if `timeout` passed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = SIGNAL_CHECK_SECONDS if deadline is None else deadline - time.monotonic()
        if event.wait(max(0.0, min(SIGNAL_CHECK_SECONDS, left))):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False
