"""Copied into every generated project as `served.py`: what its reactors use to record what they
received and what the collector was served. Never edited by the tester, so it is part of every
reactor's code signature but never changes it.

`canon` is a canonical text of a value as a consumer sees it: types by name (a tuple is not a
list, an array subclass is not an ndarray), arrays by dtype, shape and bytes, functions by what
they return for a probe argument, instances by their attributes and by what `value()` returns.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from typing import Any

PROBE = 3  # every generated function takes one int


def canon(value: Any, depth: int = 0) -> str:
    if depth > 8:
        return "..."
    kind = type(value).__qualname__
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return f"{kind}:{value!r}"
    if isinstance(value, (list, tuple)):
        return f"{kind}[" + ",".join(canon(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted((canon(k, depth + 1), canon(v, depth + 1)) for k, v in value.items())
        return f"{kind}{{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    if isinstance(value, (set, frozenset)):
        return f"{kind}{{" + ",".join(sorted(canon(v, depth + 1) for v in value)) + "}"
    if hasattr(value, "dtype") and hasattr(value, "tobytes"):  # arrays and numpy scalars
        extra = _attributes(value, depth)
        mask = getattr(value, "mask", None)
        masked = "" if mask is None else "mask=" + canon(getattr(mask, "tolist", list)(), depth)
        shape = getattr(value, "shape", ())
        return f"{kind}<{value.dtype.str}{shape}{value.tobytes().hex()}{masked}{extra}>"
    if callable(value) and not isinstance(value, type):
        name = getattr(value, "__name__", kind)
        return f"fn {name}->" + canon(_call(value), depth + 1)
    if isinstance(value, type):
        return f"class {value.__qualname__}"
    result = ""
    method = getattr(value, "value", None)
    if callable(method):
        result = "=" + canon(_call(method, probe=False), depth + 1)
    return f"{kind}({_attributes(value, depth)}){result}"


def _attributes(value: Any, depth: int) -> str:
    attributes = getattr(value, "__dict__", None) or {}
    public = sorted((k, v) for k, v in attributes.items() if not k.startswith("_"))
    return ",".join(f"{k}={canon(v, depth + 1)}" for k, v in public)


def _call(func: Any, probe: bool = True) -> Any:
    try:
        return func(PROBE) if probe else func()
    except Exception as error:  # the canonical text says so; it never hides a difference
        return f"raised {type(error).__name__}: {error}"


def digest(value: Any) -> str:
    return hashlib.sha1(canon(value).encode()).hexdigest()[:16]


def mix(*values: Any) -> int:
    """A small int that changes whenever any of the values' canonical text does."""
    return zlib.crc32("|".join(canon(v) for v in values).encode()) % 1000


def _out(name: str) -> str | None:
    folder = os.environ.get("DIFFTEST_OUT")
    return os.path.join(folder, name) if folder else None


def note(reactor: str, **inputs: Any) -> None:
    """Record that `reactor` executed, and the digest of every input it received."""
    path = _out("ran.jsonl")
    if path is not None:
        line = {"reactor": reactor, "inputs": {k: digest(v) for k, v in inputs.items()}}
        with open(path, "a") as handle:
            handle.write(json.dumps(line) + "\n")


def serve(values: dict[str, Any]) -> dict[str, list[str]]:
    """What the collector was served: a digest and a short canonical text per ingredient,
    written to a file (the collector's side effect) and returned (the collector sends it)."""
    record = {k: [digest(v), canon(v)[:160]] for k, v in sorted(values.items())}
    path = _out("served.json")
    if path is not None:
        with open(path + ".tmp", "w") as handle:
            json.dump(record, handle)
        os.replace(path + ".tmp", path)
    return record


def plant_dir() -> str:
    return os.environ.get("DIFFTEST_PLANT", "plant")


__all__ = ["canon", "digest", "mix", "note", "plant_dir", "serve"]
