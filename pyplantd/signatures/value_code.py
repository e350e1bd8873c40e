"""The code a sent value's behaviour depends on beyond its bytes: the user's classes and functions
its pickle names by reference, and the packages of the others. A value's fingerprint covers their
signatures, at `send` and again whenever the value is checked, so a consumer that calls
`box.value()` re-runs when `Box` changes, even if the bytes of `box` did not.
Depends on signature, origins, fingerprint and the store's records.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from types import FunctionType
from typing import Any

from ..fingerprint import with_code
from ..store.frozen import CODE_META, CONTENT_META
from ..store.records import IngredientRecord
from .origins import definition_origin, module_file, module_origin, package_version
from .signature import SignatureComputer

PACKAGE = "package:"
MISSING = "missing"


class ValueCode:
    """Code digests of what values name, for one run (signatures are cached by `computer`).

    >>> ValueCode(SignatureComputer()).of([dict, len])
    {}
    """

    def __init__(self, computer: SignatureComputer, track_versions: bool = True) -> None:
        self._computer = computer
        self._track_versions = track_versions
        self._digests: dict[str, str] = {}
        self.why: dict[str, str] = {}  # ingredient -> what changed in the code its value names

    def of(self, named: Iterable[type | FunctionType]) -> dict[str, str]:
        """`module:qualname` -> code digest for each user class or function among `named`, and
        `package:name` -> version for those of third-party packages (while versions are
        tracked); the standard library counts for nothing."""
        code: dict[str, str] = {}
        for obj in named:
            origin = definition_origin(obj)
            if origin == "user":
                key = f"{obj.__module__}:{obj.__qualname__}"
                code[key] = self._digest(key, obj)
            elif origin == "package" and self._track_versions:
                top = str(obj.__module__).partition(".")[0]
                code[PACKAGE + top] = package_version(top) or MISSING
        return code

    def fingerprint(self, record: IngredientRecord) -> str:
        """The stored value's fingerprint now: as recorded, unless the code it names changed
        since it was sent (then its content with the code as it is now)."""
        recorded = record.meta.get(CODE_META)
        if not recorded:
            return record.fingerprint
        now = {key: self._current(key) for key in recorded if self._counts(key)}
        changed = [key for key, digest in now.items() if recorded[key] != digest]
        if not changed:
            return record.fingerprint
        self.why[record.name] = ", ".join(
            _describe(key, recorded[key], now[key]) for key in changed
        )
        return with_code(record.meta.get(CONTENT_META, record.checksum), now)

    def _counts(self, key: str) -> bool:
        return self._track_versions or not key.startswith(PACKAGE)

    def _current(self, key: str) -> str:
        if key.startswith(PACKAGE):
            return package_version(key[len(PACKAGE) :]) or MISSING
        if key not in self._digests:
            found = _find(key)
            self._digests[key] = MISSING if found is None else self._digest(key, found)
        return self._digests[key]

    def _digest(self, key: str, obj: type | FunctionType) -> str:
        if key not in self._digests:
            self._digests[key] = self._computer.definition_signature(obj).digest
        return self._digests[key]


def _describe(key: str, before: str, after: str) -> str:
    """`class Box in shapes.py changed`, `numpy 1.26.4 -> 2.0.1`, in the words of --explain."""
    if key.startswith(PACKAGE):
        return f"{key[len(PACKAGE) :]} {before} -> {after}"
    module_name, _, qualname = key.partition(":")
    file = module_file(module_name)
    where = os.path.basename(file) if file else module_name
    found = _find(key)
    if found is None:
        return f"{qualname} in {where} is gone"
    kind = "class" if isinstance(found, type) else "function"
    return f"{kind} {qualname} in {where} changed"


def _find(key: str) -> type | FunctionType | None:
    """The class or function a `module:qualname` names now (the user's modules are imported,
    as unpickling the value would); None if there is none."""
    module_name, _, qualname = key.partition(":")
    module = sys.modules.get(module_name)
    if module is None and module_origin(module_name) == "user":
        try:
            module = importlib.import_module(module_name)
        except Exception:  # a consumer that loads the value meets the same error, with context
            return None
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found if isinstance(found, type | FunctionType) else None
