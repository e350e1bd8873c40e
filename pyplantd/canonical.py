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


def is_mutable(value: object) -> bool:
    """True for lists, dicts, sets, bytearrays and numpy arrays: values often mutated in place."""
    numpy = sys.modules.get("numpy")
    is_array = numpy is not None and type(value) is numpy.ndarray
    return is_array or isinstance(value, list | dict | set | bytearray)


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
