"""The daemon's event bus: every event clients hear leaves through `DaemonBus.publish`, under
one of the names of `Kind`, in the order published, to each subscriber (the server's event
stream; without clients, none). Depends on nothing else in pyplantd.

The names are the wire's: pyplant_client reads them, so they never change here alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import Enum
from typing import Any

Sink = Callable[[str, dict[str, Any]], None]


class Kind(str, Enum):
    """What happened, as clients name it (`type` of an event message)."""

    run_started = "run_started"  # a run (a load of the script, then its reactors) begins
    reactor_started = "reactor_started"
    reactor_finished = "reactor_finished"  # ran, or found warm (`result`)
    reactor_failed = "reactor_failed"  # with the place in the user's code
    progress = "progress"  # a reactor's pipe.progress / pipe.track report
    log = "log"  # a line a reactor printed
    reload_failed = "reload_failed"  # the script did not load: the last good state is kept
    run_finished = "run_finished"  # with its status and what ran
    mark = "mark"  # a subscriber's token: its subscription is live (see Server._mark)


class DaemonBus:
    """Publish from any thread; subscribers are called in the publisher's thread, in order."""

    def __init__(self) -> None:
        self._sinks: tuple[Sink, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, sink: Sink) -> None:
        with self._lock:
            self._sinks = (*self._sinks, sink)

    def unsubscribe(self, sink: Sink) -> None:
        with self._lock:
            self._sinks = tuple(s for s in self._sinks if s is not sink)

    def publish(self, kind: Kind, fields: dict[str, Any]) -> None:
        for sink in self._sinks:  # a tuple: subscribing meanwhile does not disturb this loop
            sink(kind.value, fields)
