"""The plant's event bus: what happened, in the order it happened.

PyPlant-style listeners (`callback(event_type, *args)`, with PyPlant's arguments) and richer
subscribers (the CLI table, the daemon console and its ZeroMQ stream) hear the same events, but
`reactor_step` (one per step of a reactor's generator) goes to its listeners only, and costs
nothing when there are none. Depends on nothing.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class EventType(Enum):
    run_started = "run_started"
    reactor_started = "reactor_started"
    subreactor_started = "subreactor_started"
    reactor_finished = "reactor_finished"
    reactor_cached = "reactor_cached"
    reactor_failed = "reactor_failed"
    run_finished = "run_finished"
    # pyplantd's, for live views: a started reactor suspended on a `receive` (data: ingredient)
    # and going on again; and its `pipe.progress`/`pipe.track` reports (see pyplantd.run.progress).
    reactor_waiting = "reactor_waiting"
    reactor_resumed = "reactor_resumed"
    reactor_progress = "reactor_progress"
    # PyPlant's: after each step of a reactor (its code ran up to a yield); listeners only.
    reactor_step = "reactor_step"
    # PyPlant names these and never emits them; kept so that code naming them still runs.
    subreactor_finished = "subreactor_finished"
    unknown = "unknown"


@dataclass(frozen=True)
class PlantEvent:
    type: EventType
    reactor: str | None = None  # short name, as users write it
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)


Listener = Callable[..., None]


def listener_args(event: PlantEvent) -> tuple[Any, ...]:
    """What PyPlant passed its listeners after the event type: the reactor's name and function
    for reactor_started, the subreactor's name for subreactor_started, else the reactor's name."""
    if event.type is EventType.reactor_started:
        return (event.reactor, event.data.get("func"))
    if event.type is EventType.subreactor_started:
        return (event.data.get("subreactor"),)
    return (event.reactor,)


def _max_positional(callback: Listener) -> int | None:
    """How many positional arguments `callback` takes (None: any number, or unknown)."""
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = [p.kind for p in parameters]
    if inspect.Parameter.VAR_POSITIONAL in kinds:
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(kind in positional for kind in kinds)


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[tuple[EventType | None, Listener, bool]] = []
        self._arity: dict[int, int | None] = {}  # id(callback) -> _max_positional
        self._step_listeners = 0

    def add_listener(self, event_type: EventType, callback: Listener) -> None:
        """PyPlant style: `callback(event_type, *listener_args(event))`; a callback that takes
        fewer arguments (`callback(event_type, reactor_name)`) gets the first ones."""
        self._listeners.append((event_type, callback, False))
        self._arity[id(callback)] = _max_positional(callback)
        self._step_listeners += event_type is EventType.reactor_step

    def subscribe(self, callback: Callable[[PlantEvent], None]) -> None:
        """Every event, as a PlantEvent."""
        self._listeners.append((None, callback, True))

    def remove(self, callback: Listener) -> None:
        self._listeners = [entry for entry in self._listeners if entry[1] is not callback]
        self._step_listeners = sum(e[0] is EventType.reactor_step for e in self._listeners)

    def emit(self, event: PlantEvent) -> None:
        for wanted, callback, wants_event in list(self._listeners):
            if wants_event:
                if event.type is not EventType.reactor_step:
                    callback(event)
            elif wanted is event.type:
                args = (event.type, *listener_args(event))
                callback(*args[: self._arity.get(id(callback))])

    def step(self, reactor: str) -> None:
        """A reactor's code ran up to a yield (PyPlant's reactor_step); free without listeners."""
        if self._step_listeners:
            self.emit(PlantEvent(EventType.reactor_step, reactor))
