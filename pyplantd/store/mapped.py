"""Array payloads as read-only memory maps: a consumer reads only the pages it touches, and
loading needs no h5py. Only for arrays whose bytes the writer laid out itself, in C order at one
offset of the HDF5 file (its commit recorded where); depends on nothing else in pyplantd.

The map is made with the C library's mmap, not Python's `mmap` module, which keeps a duplicate
file descriptor open per map: a pipeline holding a thousand loaded arrays would run out of them.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import os
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

OFFSET = "offset"  # payload meta: byte offset of the array's raw data in its file


def contiguous_layout(offset: int) -> dict[str, Any]:
    """The meta a payload written as raw bytes at `offset` records."""
    return {OFFSET: offset}


def mappable(meta: dict[str, Any]) -> bool:
    return isinstance(meta.get(OFFSET), int) and "shape" in meta and "dtype" in meta


def map_array(
    path: str, meta: dict[str, Any], unchanged: Callable[[os.stat_result], bool]
) -> np.ndarray | None:
    """The array as a read-only map of the file, if the open file is still the one
    `unchanged` accepts (checked on the descriptor mapped: no swap in between); else None."""
    shape = tuple(int(n) for n in meta["shape"])
    dtype = np.dtype(meta["dtype"])
    count = math.prod(shape)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not unchanged(os.fstat(fd)):
            return None
        data = _map_readonly(fd, meta[OFFSET], count * dtype.itemsize)
    finally:
        os.close(fd)  # the map stays valid without it
    return np.frombuffer(data, dtype=dtype, count=count).reshape(shape)


def _map_readonly(fd: int, offset: int, nbytes: int) -> memoryview:
    """`nbytes` of the file at `offset`, mapped read-only; unmapped once nothing uses them."""
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    length = offset - start + nbytes
    if _libc_mmap is None:  # no C library to call: Python's map (one more descriptor each)
        return memoryview(mmap.mmap(fd, length, access=mmap.ACCESS_READ, offset=start))[
            offset - start :
        ]
    address = _libc_mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, start)
    if address is None or address == _MAP_FAILED:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    region = (ctypes.c_ubyte * length).from_address(address)
    weakref.finalize(region, _libc_munmap, address, length)
    return memoryview(region).toreadonly()[offset - start :]


def _load_libc() -> tuple[Any, Any]:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        map_, unmap = libc.mmap, libc.munmap
    except (OSError, AttributeError):
        return None, None
    map_.restype = ctypes.c_void_p
    map_.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long,
    ]  # fmt: skip
    unmap.restype = ctypes.c_int
    unmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return map_, unmap


_libc_mmap, _libc_munmap = _load_libc()
_MAP_FAILED = ctypes.c_void_p(-1).value
