"""Sent values frozen at `send`: the writer stores, and every consumer receives, the value as it
was when it was sent, and no consumer can change what another consumer or a later run receives.

Immutable values are shared as they are; numeric arrays are made read-only (the producer's own
array when it owns its memory, else a read-only copy); everything else is pickled at `send` and
each consumer unpickles its own copy. Depends on fingerprint, pickler and errors only.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import FunctionType
from typing import Any

import numpy as np

from ..errors import StoreError
from ..fingerprint import array_hasher, hash_bytes, with_code
from ..pickler import dumps

# Payload meta of a value whose behaviour depends on code it names: that code's digests at `send`
# (name -> digest), and the fingerprint of its content alone (see value_code).
CODE_META = "code"
CONTENT_META = "content"

_ATOMS = frozenset({int, float, complex, str, bytes, bool, type(None), range})
_SCANNED_ITEMS = 1000  # longer tuples are pickled rather than scanned item by item


@dataclass(frozen=True)
class Pickled:
    """A value as pickled at `send`: its bytes are what is written, hashed and handed out."""

    data: bytes
    content: str  # the hash of `data` (for an object array, with its dtype and shape)
    meta: dict[str, Any] = field(default_factory=dict)
    array: bool = False  # an object array: consumers get it read-only
    named: tuple[type | FunctionType, ...] = ()  # classes and functions it names (see pickler)
    code: Mapping[str, str] = field(default_factory=dict)  # their code digests (see with_code)

    @property
    def fingerprint(self) -> str:
        """Content, and the code of what the value names by reference."""
        return with_code(self.content, self.code)

    def with_code(self, code: Mapping[str, str]) -> Pickled:
        """This value, fingerprinted with the code digests of what it names."""
        if not code:
            return self
        meta = {**self.meta, CODE_META: dict(code), CONTENT_META: self.content}
        return replace(self, code=code, meta=meta)

    def thaw(self, script: Mapping[str, Any] | None = None) -> Any:
        """A new copy of the value; `script` resolves what the pipeline script defined."""
        if script is None:
            value = pickle.loads(self.data)  # bytes this process pickled itself
        else:
            value = _ScriptUnpickler(io.BytesIO(self.data), script).load()
        if self.array:
            value.flags.writeable = False
        return value

    @property
    def nbytes(self) -> int:
        return len(self.data)


def value_type_name(value: Any) -> str:
    """The type a user sent, also of a value frozen as its pickle (for messages)."""
    if isinstance(value, Pickled):
        return str(value.meta.get("python_type", "object"))
    return type(value).__qualname__


def thaw(held: Any, script: Mapping[str, Any] | None = None) -> Any:
    """What a consumer receives of a frozen value: its own copy of a pickled one. `script` is
    the namespace of the pipeline script when it is not `__main__` (the daemon, outside a run)."""
    return held.thaw(script) if isinstance(held, Pickled) else held


class _ScriptUnpickler(pickle.Unpickler):
    """Finds the classes and functions a value names in `__main__` in the script's namespace."""

    def __init__(self, file: io.BytesIO, script: Mapping[str, Any]) -> None:
        super().__init__(file)
        self._script = script

    def find_class(self, module: str, name: str) -> Any:
        if module != "__main__":
            return super().find_class(module, name)
        first, *rest = name.split(".")
        if first not in self._script:
            raise AttributeError(f"The pipeline script defines no {first!r} any more")
        found = self._script[first]
        for part in rest:
            found = getattr(found, part)
        return found


def is_immutable(value: Any, depth: int = 0) -> bool:
    """Nothing can change it: numbers, strings, bytes, None, and tuples of those (exact types:
    a subclass may carry mutable attributes)."""
    kind = type(value)
    if kind in _ATOMS or (isinstance(value, np.generic) and not isinstance(value, np.void)):
        return True
    if kind is tuple or kind is frozenset:
        if depth > 20 or len(value) > _SCANNED_ITEMS:
            return False
        return all(is_immutable(item, depth + 1) for item in value)
    return False


def pickle_at_send(name: str, value: Any, meta: dict[str, Any]) -> Pickled:
    """The value's pickled bytes now, so later changes to the object are not stored."""
    try:
        data, named = pickled_naming(value)
    except StoreError as err:
        raise StoreError(
            f"Could not store ingredient '{name}' ({type(value).__qualname__}): {err}"
        ) from err.__cause__
    return Pickled(data, hash_bytes(data), meta, named=named)


def pickled(value: Any) -> bytes:
    """The pickle of `value`, or a StoreError naming its type and what to do instead."""
    return pickled_naming(value)[0]


def pickled_naming(value: Any) -> tuple[bytes, tuple[type | FunctionType, ...]]:
    """The pickle of `value` and the classes and functions it names (see pickler.dumps), or a
    StoreError naming its type and what to do instead."""
    kind = type(value).__qualname__
    try:
        return dumps(value)
    except RecursionError as err:
        raise StoreError(
            f"pickle cannot store a {kind} nested this deeply. Send it flatter, or as an array."
        ) from err
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        raise StoreError(
            f"pickle cannot store a {kind}: {err}. Send plain data (numbers, strings, lists, "
            f"dicts, arrays, instances of module-level classes), or register an "
            f"IngredientTypeSpec for {kind}."
        ) from err


def pickle_object_array(name: str, array: np.ndarray, meta: dict[str, Any]) -> Pickled:
    """An object array's elements can be changed even when the array is read-only: pickle it.
    Its fingerprint is the array fingerprint (dtype, shape, then the pickle)."""
    pickled = pickle_at_send(name, array, meta)
    hasher = array_hasher(array.dtype, array.shape)
    hasher.update(pickled.data)
    return replace(pickled, content=hasher.hexdigest(), array=True)


def freeze_array(array: np.ndarray, is_stored_file: Callable[[str], bool]) -> np.ndarray:
    """A numeric array nobody can change any more, without a copy when possible.

    An array that owns its memory is made read-only itself: a later write by its producer
    raises `ValueError: assignment destination is read-only` instead of changing what was sent.
    A view of memory that can still be written (a slice of a writable array, a buffer, a
    writable memory map) is copied, since making the view read-only would not stop writes
    through its base.
    """
    if array.base is None:
        if array.flags.writeable:
            array.flags.writeable = False
        return array
    if not array.flags.writeable and _owner_is_frozen(array, is_stored_file):
        return array
    copy = np.array(array, copy=True)
    copy.flags.writeable = False
    return copy


def _owner_is_frozen(array: np.ndarray, is_stored_file: Callable[[str], bool]) -> bool:
    owner: Any = array
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if owner.base is None:  # an array owning its memory: frozen if it is read-only
        return not owner.flags.writeable
    if isinstance(owner.base, bytes):
        return True
    # a memory map of a payload file, which is never opened for writing again
    filename = getattr(owner, "filename", None)
    return (
        getattr(owner, "mode", None) == "r"
        and isinstance(filename, str)
        and (is_stored_file(filename))
    )
