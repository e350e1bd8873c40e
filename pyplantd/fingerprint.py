"""Content fingerprints: fast hashes of ingredient values and config parameter values.

Equal fingerprints mean equal content, which lets a re-run that produced identical data stop
there (early cutoff). Depends on nothing else in pyplantd but pickler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, BinaryIO

import numpy as np
import xxhash

from .pickler import PICKLE_PROTOCOL, dumps

__all__ = ["PICKLE_PROTOCOL"]  # re-exported: pickles are made in one format everywhere
_CHUNK = 1 << 24  # hash big buffers in 16 MiB slices so no copy is ever made


def hash_bytes(*parts: bytes | memoryview | str) -> str:
    hasher = xxhash.xxh3_128()
    for part in parts:
        hasher.update(part.encode() if isinstance(part, str) else part)
    return hasher.hexdigest()


def array_hasher(dtype: Any, shape: tuple[int, ...]) -> Any:
    """A streaming hasher for an array's content; feed it blocks in C order."""
    hasher = xxhash.xxh3_128()
    hasher.update(f"{np.dtype(dtype).str}|{tuple(shape)}|".encode())
    return hasher


def hash_block(hasher: Any, block: Any) -> None:
    """Feed a block's raw bytes without copying it (unless it is not C-contiguous)."""
    hasher.update(np.ascontiguousarray(block).reshape(-1).view(np.uint8))


def array_fingerprint(array: np.ndarray) -> str:
    """Hash of dtype, shape and values; C-contiguous arrays are hashed in place."""
    hasher = array_hasher(array.dtype, array.shape)
    if array.dtype.hasobject:
        hasher.update(dumps(array)[0])
        return hasher.hexdigest()
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    for start in range(0, flat.size, _CHUNK):
        hasher.update(flat[start : start + _CHUNK])
    return hasher.hexdigest()


def file_fingerprint(path: str) -> str:
    with open(path, "rb") as handle:
        return stream_fingerprint(handle)


def stream_fingerprint(handle: BinaryIO) -> str:
    """The fingerprint of what is left to read of an open file (`file_fingerprint`'s)."""
    hasher = xxhash.xxh3_128()
    while block := handle.read(_CHUNK):
        hasher.update(block)
    return hasher.hexdigest()


def value_fingerprint(value: Any) -> str:
    """Fingerprint of any value: plain arrays by content, everything else (array subclasses
    too: type, mask and attributes count) by its pickled bytes."""
    if type(value) is np.ndarray:
        return array_fingerprint(value)
    try:
        return hash_bytes(dumps(value)[0])
    except Exception:  # unpicklable values: the repr is the best content we can see
        return hash_bytes("repr:", repr(value))


def with_code(content: str, code: Mapping[str, str]) -> str:
    """The fingerprint of a value whose pickle names classes or functions by reference: its
    content and the code signatures of those (`code`: name -> digest). What the value does
    depends on that code, which its bytes do not hold."""
    if not code:
        return content
    return hash_bytes(content, *(f"|{name}={digest}" for name, digest in sorted(code.items())))


def short_repr(value: Any, limit: int = 40) -> str:
    """A one-line repr for explanations: `param 'n' changed 10 -> 20`."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
