"""The warm tier: ingredient values kept in memory by reference, bounded by a byte budget.

Least recently used values are dropped first, and only once their disk copy is complete, so
dropping a value never loses it. Thread-safe because the background writer marks values durable.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass
class _Entry:
    value: Any
    size: int
    durable: bool


class WarmTier:
    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self.spilled_bytes = 0  # dropped from memory over the budget: served from disk since
        self._lock = threading.Lock()

    def put(self, key: str, value: Any, size: int, durable: bool) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            self._bytes -= old.size if old else 0
            self._entries[key] = _Entry(value, size, durable)
            self._bytes += size
            self._evict()

    def get(self, key: str) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry.value

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def mark_durable(self, key: str, size: int | None = None) -> None:
        """The disk copy is complete: the value may now be dropped when memory is short."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.durable = True
            if size is not None:  # objects are accounted by their serialized size
                self._bytes += size - entry.size
                entry.size = size
            self._evict()

    def drop(self, key: str) -> None:
        with self._lock:
            entry = self._entries.pop(key, None)
            self._bytes -= entry.size if entry else 0

    def _evict(self) -> None:
        if self._bytes <= self.budget:
            return
        for key in [k for k, e in self._entries.items() if e.durable]:
            if self._bytes <= self.budget:
                break
            size = self._entries.pop(key).size
            self._bytes -= size
            self.spilled_bytes += size

    @property
    def warm_bytes(self) -> int:
        return self._bytes

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
