"""A mapping of records read from the manifest and decoded on first use: opening a plant dir
reads its rows but builds only the records a run asks for. Plain data; no I/O, no locking.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

R = TypeVar("R")
T = TypeVar("T")


class _Row:
    """A row still in its stored form (a distinct type: a record is never mistaken for one)."""

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data


class LazyRecords(MutableMapping[str, R], Generic[R]):
    """Keys are known at once; a value is decoded the first time it is read, then kept.

    Decoding replaces the value in place (never adds or removes a key), so a thread that
    iterates while another reads sees no change of size."""

    def __init__(self, rows: dict[str, Any], decode: Callable[[Any], R]) -> None:
        self._items: dict[str, Any] = {key: _Row(row) for key, row in rows.items()}
        self._decode = decode

    def __getitem__(self, key: str) -> R:
        value = self._items[key]
        if type(value) is _Row:
            value = self._items[key] = self._decode(value.data)
        return value  # type: ignore[no-any-return]

    def get(self, key: str, default: Any = None) -> Any:
        value = self._items.get(key, default)
        if type(value) is _Row:
            value = self._items[key] = self._decode(value.data)
        return value

    def __setitem__(self, key: str, value: R) -> None:
        self._items[key] = value

    def __delitem__(self, key: str) -> None:
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
            of_row(value.data) if type(value) is _Row else of_record(value)
            for value in list(self._items.values())
        ]

    def clear(self) -> None:
        self._items.clear()

    def __repr__(self) -> str:
        return f"LazyRecords({len(self._items)} records)"
