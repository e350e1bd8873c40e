"""Values as text for hashing: plain data (scalars, exact builtin containers, numpy arrays) in a
process-independent form, and code objects of functions without source. Depends on nothing else
in pyplantd, and never imports numpy.
"""

from __future__ import annotations

import sys
from types import CodeType
from typing import Any

import xxhash

_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_CONTAINERS = (tuple, list, set, frozenset, dict)  # exactly these: subclasses may add state
_MAX_DEPTH = 32  # self-referencing containers must not recurse forever


def canonical_text(value: object, depth: int = 0) -> str | None:
    """A process-independent text for plain data, or None for anything else."""
    kind = type(value)
    if kind in _SCALARS:
        return f"{kind.__name__}:{value!r}"
    if not isinstance(value, tuple | list | set | frozenset | dict) or kind not in _CONTAINERS:
        return _canonical_numpy(value)
    if depth >= _MAX_DEPTH:
        return None
    items = [x for kv in value.items() for x in kv] if isinstance(value, dict) else list(value)
    texts = [t for t in (canonical_text(v, depth + 1) for v in items) if t is not None]
    if len(texts) < len(items):
        return None
    if isinstance(value, set | frozenset):
        texts.sort()  # set order varies from process to process
    if isinstance(value, dict):
        texts = [f"{k}:{v}" for k, v in zip(texts[::2], texts[1::2], strict=True)]
    return f"{kind.__name__}[{','.join(texts)}]"


def frozen_text(value: object) -> str | None:
    """`canonical_text` of a value that cannot change once made (scalars, numpy scalars, ranges,
    and tuples and frozensets of them); None for anything else.

    >>> frozen_text((1, "a")), frozen_text([1])
    ("tuple[int:1,str:'a']", None)
    """
    if type(value) is range:
        return f"range:{value.start},{value.stop},{value.step}"
    return canonical_text(value) if _is_frozen(value, 0) else None


def _is_frozen(value: object, depth: int) -> bool:
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is tuple or kind is frozenset:
        return depth < _MAX_DEPTH and all(_is_frozen(v, depth + 1) for v in value)  # type: ignore[attr-defined]
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.generic) and not value.dtype.hasobject


def code_text(code: CodeType) -> str:
    """A code object as text, for functions without source: stable within a process only."""
    consts = [
        code_text(c) if isinstance(c, CodeType) else canonical_text(c) or repr(c)
        for c in code.co_consts
    ]
    return f"{code.co_code.hex()}|{code.co_names}|{code.co_varnames}|{code.co_freevars}|{consts}"


def _canonical_numpy(value: Any) -> str | None:
    numpy = sys.modules.get("numpy")  # never import numpy just to find out it is not used
    if numpy is None or not (type(value) is numpy.ndarray or isinstance(value, numpy.generic)):
        return None
    if value.dtype.hasobject:
        return None
    content = xxhash.xxh3_128_hexdigest(numpy.ascontiguousarray(value))
    return f"numpy:{type(value).__name__}:{value.dtype!r}:{numpy.shape(value)}:{content}"
