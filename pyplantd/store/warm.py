"""The warm tier: ingredient values kept in memory by reference, bounded by a byte budget.

Least recently used values are dropped first, and only once their disk copy is complete, so
dropping a value never loses it. Values still being written cannot be dropped: `wait_for_room`
makes a new one wait for the writer rather than hold more than the budget. Thread-safe because
the background writer marks values durable.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..waits import SIGNAL_CHECK_SECONDS

MISSING: Any = object()  # `get`'s answer for a key that is not warm (a value may be None)


@dataclass
class _Entry:
    value: Any
    size: int
    durable: bool
    writing: bool  # queued for the disk and not written yet: the writer will mark it


@dataclass(frozen=True)
class WarmEntry:
    """One warm value as listings show it."""

    key: str
    size: int
    state: str  # durable / writing / unwritten (its write failed: memory is its only copy)


class WarmTier:
    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._writing = 0  # entries being written
        self.spilled_bytes = 0  # dropped from memory over the budget: served from disk since
        self.waited_seconds = 0.0  # time `wait_for_room` spent waiting for the writer
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def put(self, key: str, value: Any, size: int, durable: bool) -> None:
        """Keep `value`; one that is not durable is being written and is marked by the writer."""
        with self._lock:
            self._pop(key)
            self._entries[key] = _Entry(value, size, durable, writing=not durable)
            self._bytes += size
            self._writing += not durable
            self._evict(self.budget)

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return default
            self._entries.move_to_end(key)
            return entry.value

    def peek(self, key: str) -> Any:
        """The value without counting it as a use; MISSING if it is not warm."""
        with self._lock:
            entry = self._entries.get(key)
            return MISSING if entry is None else entry.value

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def mark_durable(self, key: str, size: int | None = None) -> None:
        """The disk copy is complete: the value may now be dropped when memory is short."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            self._settle(entry)
            entry.durable = True
            if size is not None:  # objects are accounted by their serialized size
                self._bytes += size - entry.size
                entry.size = size
            self._evict(self.budget)

    def mark_unwritten(self, key: str) -> None:
        """Its write failed: memory holds the only copy, kept for the rest of the run."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._settle(entry)

    def wait_for_room(self, size: int) -> float:
        """Make room for `size` more bytes: drop durable values, and while the budget is still
        exceeded by values being written, wait for the writer. Returns the seconds waited.

        Returns without room only when nothing being written is left to wait for (a value
        larger than the budget, or values whose write failed)."""
        waited = 0.0
        with self._lock:
            while True:
                self._evict(self.budget - size)
                if self._bytes + size <= self.budget or not self._writing:
                    return waited
                started = time.monotonic()
                self._changed.wait(SIGNAL_CHECK_SECONDS)  # a stop signal is heard meanwhile
                elapsed = time.monotonic() - started
                waited += elapsed
                self.waited_seconds += elapsed

    def set_budget(self, budget: int) -> None:
        """A new budget (the script's Plant(memory=...) changed): durable values over it are
        dropped now, least recently used first; waiting writers see the new room."""
        with self._lock:
            self.budget = budget
            self._evict(budget)
            self._changed.notify_all()

    def drop_unwritten(self) -> None:
        """At the end of a run: values whose write failed are needed no more."""
        with self._lock:
            for key in [k for k, e in self._entries.items() if not e.durable and not e.writing]:
                self._pop(key)

    def drop(self, key: str) -> None:
        with self._lock:
            self._pop(key)

    def entries(self) -> list[WarmEntry]:
        """What is warm, least recently used first."""
        with self._lock:
            return [WarmEntry(key, e.size, _state(e)) for key, e in self._entries.items()]

    @property
    def warm_bytes(self) -> int:
        return self._bytes

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = self._writing = 0
            self._changed.notify_all()

    # -- under the lock ---------------------------------------------------------------------
    def _pop(self, key: str) -> _Entry | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size
            self._settle(entry)
        return entry

    def _settle(self, entry: _Entry) -> None:
        if entry.writing:
            entry.writing = False
            self._writing -= 1
            self._changed.notify_all()

    def _evict(self, limit: int) -> None:
        if self._bytes <= limit:
            return
        for key in [k for k, e in self._entries.items() if e.durable]:
            if self._bytes <= limit:
                break
            size = self._entries.pop(key).size
            self._bytes -= size
            self.spilled_bytes += size


def _state(entry: _Entry) -> str:
    if entry.writing:
        return "writing"
    return "durable" if entry.durable else "unwritten"
