"""The plant's event bus: what happened, in the order it happened.

PyPlant-style listeners (`callback(event_type, reactor_name)`) and richer subscribers (the CLI
table, later the daemon console and its ZeroMQ stream) hear the same events. Depends on nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

logger = logging.getLogger(__name__)


class EventType(Enum):
    run_started = "run_started"
    reactor_started = "reactor_started"
    subreactor_started = "subreactor_started"
    reactor_finished = "reactor_finished"
    reactor_cached = "reactor_cached"
    reactor_failed = "reactor_failed"
    run_finished = "run_finished"


@dataclass(frozen=True)
class PlantEvent:
    type: EventType
    reactor: str | None = None  # short name, as users write it
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)


Listener = Callable[..., None]


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[tuple[EventType | None, Listener, bool]] = []

    def add_listener(self, event_type: EventType, callback: Listener) -> None:
        """PyPlant style: `callback(event_type, reactor_name)`."""
        self._listeners.append((event_type, callback, False))

    def subscribe(self, callback: Callable[[PlantEvent], None]) -> None:
        """Every event, as a PlantEvent."""
        self._listeners.append((None, callback, True))

    def remove(self, callback: Listener) -> None:
        self._listeners = [entry for entry in self._listeners if entry[1] is not callback]

    def emit(self, event: PlantEvent) -> None:
        for wanted, callback, wants_event in list(self._listeners):
            if wants_event:
                callback(event)
            elif wanted is event.type:
                callback(event.type, event.reactor)
