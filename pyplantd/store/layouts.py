"""HDF5 headers of contiguous array payloads, reused: the bytes before an array's data depend
only on its dtype and shape, so once a payload of that dtype and shape was laid out (by h5py in
this process, or by a stored payload still as its commit wrote it), writing another needs no
h5py, whose import alone costs ~40 ms a process. Depends on nothing in pyplantd.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np

_KEPT = 256  # headers kept per process, at most (each ~2 KiB)
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

Key = tuple[str, tuple[int, ...]]
_headers: dict[Key, bytes] = {}


def _key(dtype: np.dtype[Any], shape: tuple[int, ...]) -> Key:
    return dtype.str, tuple(int(n) for n in shape)


def header(dtype: np.dtype[Any], shape: tuple[int, ...]) -> bytes | None:
    """The bytes before the data of a payload of this dtype and shape, if one was seen."""
    return _headers.get(_key(dtype, shape))


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
