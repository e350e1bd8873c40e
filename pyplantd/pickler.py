"""Pickling values whole, and naming the code they refer to.

A value is pickled with all of its state: an ndarray subclass keeps its type and attributes (a
masked array its hard mask), and an instance of a user's subclass of a library type keeps its own
attributes where the library's pickling drops them (numpy, datetime, Decimal, defaultdict...).
The pickle also lists the classes and functions it names by reference: their code is not in its
bytes, yet what the value does depends on it. Depends on nothing else in pyplantd.
"""

from __future__ import annotations

import io
import pickle
import sys
from types import FunctionType
from typing import Any

import numpy as np

PICKLE_PROTOCOL = 5

_DEFAULT, _ARRAY, _LIBRARY, _MEMMAP = range(4)  # how an instance of a type is pickled
_LIBRARY_MODULES = frozenset({"builtins", "numpy", *sys.stdlib_module_names})


def dumps(value: Any) -> tuple[bytes, tuple[type | FunctionType, ...]]:
    """The pickle of `value`, and the classes and functions (not builtins) it names.

    Values of plain builtin types (numbers, strings, lists, dicts, tuples, sets) cost nothing
    more than `pickle.dumps`: the pickler calls back only for other objects.

    >>> data, named = dumps([1.5, {"a": (2, "x")}])
    >>> pickle.loads(data), named
    ([1.5, {'a': (2, 'x')}], ())
    """
    buffer = io.BytesIO()
    pickler = _WholePickler(buffer)
    pickler.dump(value)
    return buffer.getvalue(), tuple(pickler.named)


class _WholePickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=PICKLE_PROTOCOL)
        self.named: list[type | FunctionType] = []
        self._how: dict[type, int] = {}

    def reducer_override(self, obj: Any) -> Any:
        # Not called for None, bools and exact ints, floats, strings, bytes, lists, tuples,
        # sets and dicts; called once per class or function (the memo has them afterwards).
        kind = type(obj)
        if kind is FunctionType or isinstance(obj, type):
            if getattr(obj, "__module__", None) != "builtins":
                self.named.append(obj)
            return NotImplemented
        how = self._how.get(kind)
        if how is None:
            how = self._how[kind] = _how_to_pickle(kind)
        if how == _DEFAULT:
            return NotImplemented
        if how == _MEMMAP:  # a memory map's file is not part of its value: its content is
            return obj.view(np.ndarray).__reduce_ex__(PICKLE_PROTOCOL)
        attributes = getattr(obj, "__dict__", None)
        if not attributes:
            return NotImplemented
        reduced = obj.__reduce_ex__(PICKLE_PROTOCOL)
        if isinstance(reduced, str) or len(reduced) > 5:
            return reduced
        state = reduced[2] if len(reduced) > 2 else None
        if how == _LIBRARY and state is not None:
            return reduced  # the library's state holds the instance's attributes
        items = (*reduced[3:5], None, None)[:2]  # list and dict items, if any
        return (*reduced[:2], (state, attributes), *items, restore_attributes)


def _how_to_pickle(kind: type) -> int:
    if issubclass(kind, np.memmap):
        return _MEMMAP
    if issubclass(kind, np.ndarray):
        # numpy pickles an array's data, dtype and shape, never the instance's attributes
        numpy_pickles = _library_defines(kind, "__reduce_ex__", "__reduce__", "__setstate__")
        return _ARRAY if kind is not np.ndarray and numpy_pickles else _DEFAULT
    reducer = _reducer_class(kind)
    if reducer is object or not _is_library(reducer) or not kind.__dictoffset__:
        return _DEFAULT  # copyreg keeps the instance dict; a class's own reducer knows its state
    # A library type whose instances have no attributes (datetime, Decimal, defaultdict...):
    # the attributes of an instance of a subclass are unknown to its pickling.
    return _DEFAULT if reducer.__dictoffset__ else _LIBRARY


def _reducer_class(kind: type) -> type:
    """The class whose `__reduce_ex__` (or, when that is object's, `__reduce__`) pickles `kind`."""
    for name in ("__reduce_ex__", "__reduce__"):
        owner = next(k for k in kind.__mro__ if name in vars(k))
        if owner is not object:
            return owner
    return object


def _library_defines(kind: type, *names: str) -> bool:
    return all(_is_library(next(k for k in kind.__mro__ if name in vars(k))) for name in names)


def _is_library(kind: type) -> bool:
    return str(getattr(kind, "__module__", "")).partition(".")[0] in _LIBRARY_MODULES


def restore_attributes(obj: Any, state: tuple[Any, dict[str, Any]]) -> None:
    """Unpickling: the state the type's own pickling gave, then the instance's attributes."""
    inner, attributes = state
    if inner is not None:
        obj.__setstate__(inner)
    obj.__dict__.update(attributes)
