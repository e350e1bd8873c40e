"""HDF5 headers of contiguous array payloads, reused: the bytes before an array's data depend
only on its dtype and shape, so writing a payload needs no h5py (whose import alone costs ~40 ms
a process, on the writer thread, before the first byte is written) when the header is known: made
from a template for the dtype and rank (store.layout_templates, the shape patched in), or laid
out by h5py in this process, or read from a stored payload still as its commit wrote it.
Depends on nothing in pyplantd but its templates.
"""

from __future__ import annotations

import base64
import math
import os
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

DATASET = "data"  # the one dataset of an array payload
_KEPT = 256  # headers kept per process, at most (each ~2 KiB)
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

Key = tuple[str, tuple[int, ...]]
_headers: dict[Key, bytes] = {}


def _key(dtype: np.dtype[Any], shape: tuple[int, ...]) -> Key:
    return dtype.str, tuple(int(n) for n in shape)


def header(dtype: np.dtype[Any], shape: tuple[int, ...]) -> bytes | None:
    """The bytes before the data of a payload of this dtype and shape, if known."""
    key = _key(dtype, shape)
    known = _headers.get(key)
    if known is None:
        known = _from_template(*key)
        if known is not None:
            remember(dtype, shape, known)
    return known


def _from_template(code: str, shape: tuple[int, ...]) -> bytes | None:
    """A template's header with this shape patched in (see store.layout_maker)."""
    from .layout_templates import TEMPLATES

    found = TEMPLATES.get(f"{code}/{len(shape)}")
    if found is None:
        return None
    packed, *fields = found
    return patch(zlib.decompress(base64.b64decode(packed)), fields, shape, np.dtype(code).itemsize)


def patch(data: bytes, fields: list[int], shape: tuple[int, ...], itemsize: int) -> bytes:
    """A header with `shape` written into its shape-dependent fields, at the byte offsets
    `fields` = [end of file address, dims, max dims, data size] (-1: none, for rank 0)."""
    eof_at, dims_at, maxdims_at, size_at = fields
    out = bytearray(data)
    nbytes = math.prod(shape) * itemsize
    out[eof_at : eof_at + 8] = _u64(len(data) + nbytes)
    for i, n in enumerate(shape):
        out[dims_at + 8 * i : dims_at + 8 * i + 8] = _u64(n)
        out[maxdims_at + 8 * i : maxdims_at + 8 * i + 8] = _u64(n)
    if size_at >= 0:
        out[size_at : size_at + 8] = _u64(nbytes)
    return bytes(out)


def _u64(value: int) -> bytes:
    return int(value).to_bytes(8, "little")


def remember(dtype: np.dtype[Any], shape: tuple[int, ...], data: bytes) -> None:
    """Keep a header h5py laid out for this dtype and shape (`data`: the bytes before the
    array's own)."""
    if not data.startswith(_HDF5_SIGNATURE):
        return
    if len(_headers) >= _KEPT:
        _headers.pop(next(iter(_headers)))
    _headers[_key(dtype, shape)] = data


def learn(
    path: str,
    dtype: np.dtype[Any],
    shape: tuple[int, ...],
    offset: int,
    as_committed: Callable[[os.stat_result], bool],
) -> None:
    """Keep the header of a stored payload of this dtype and shape whose data starts at
    `offset`, if the file is still as its commit wrote it (`as_committed` of its stat: a
    payload is never written again, so any change shows in its stat key) and has the size such
    a payload has. Anything else is left alone: the next write lays out its own."""
    if header(dtype, shape) is not None:
        return
    nbytes = math.prod(shape) * dtype.itemsize
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        st = os.fstat(fd)
        if not as_committed(st) or st.st_size != offset + nbytes:
            return
        data = os.pread(fd, offset, 0)
    except OSError:
        return
    finally:
        os.close(fd)
    if len(data) == offset:
        remember(dtype, shape, data)
