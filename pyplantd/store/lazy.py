"""A mapping of records read from the manifest and decoded on first use: opening a plant dir
reads its rows but builds only the records a run asks for. Plain data; no I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

_GONE = object()
R = TypeVar("R")
T = TypeVar("T")


class LazyRecords(MutableMapping[str, R], Generic[R]):
    """Keys are known at once; a value is decoded the first time it is read, then kept.

    A stored row is told from a record by its type (`row_type`: str for a JSON body, tuple
    for columns), which no record has. Decoding replaces the value in place (never adds or
    removes a key), so a thread that iterates while another reads sees no change of size; and
    only if it is still that row, so that a record another thread stored meanwhile (a commit)
    is never overwritten by the older one decoded."""

    def __init__(self, rows: dict[str, Any], row_type: type, decode: Callable[[Any], R]) -> None:
        self._items: dict[str, Any] = rows
        self._row_type = row_type
        self._decode = decode
        self._lock = threading.Lock()  # a decoded row is put back only if still there

    def __getitem__(self, key: str) -> R:
        value = self._items[key]
        if type(value) is self._row_type:
            value = self._decoded(key, value)
        return value  # type: ignore[no-any-return]

    def get(self, key: str, default: Any = None) -> Any:
        value = self._items.get(key, default)
        if type(value) is self._row_type:
            value = self._decoded(key, value)
        return value

    def _decoded(self, key: str, row: Any) -> Any:
        record = self._decode(row)
        with self._lock:
            now = self._items.get(key, _GONE)
            if now is row:
                self._items[key] = record
            elif now is not _GONE and type(now) is not self._row_type:
                return now  # stored meanwhile (a commit): that is the record now
        return record

    def __setitem__(self, key: str, value: R) -> None:
        with self._lock:
            self._items[key] = value

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def each(self, of_record: Callable[[R], T], of_row: Callable[[Any], T]) -> list[T]:
        """A field of every value, read from the stored row of those not decoded yet."""
        return [
            of_row(value) if type(value) is self._row_type else of_record(value)
            for value in list(self._items.values())
        ]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __repr__(self) -> str:
        return f"LazyRecords({len(self._items)} records)"
