"""Raw writes of large buffers: no copies, writeback started early, other work alongside.

A plain write-then-fsync copies everything into the page cache first and only then has the disk
write it, one after the other. Asking the kernel to start writeback after each slice (Linux's
sync_file_range) lets the disk work while the next slices are copied, so the fsync only waits for
the tail. CPU work the write needs besides (hashing: xxhash, like write and fsync, releases the
GIL) runs on a helper thread meanwhile, so the write's time is the longer of the two, not the sum.
Durability still comes from fsync alone: the writeback requests are hints, their result ignored.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")

_SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writeback of dirty pages, do not wait


def _load_sync_file_range() -> Any:
    """libc's sync_file_range, or None where there is none (not Linux, or not found)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        func = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


_sync_file_range = _load_sync_file_range()


def write_all(fd: int, data: memoryview) -> None:
    """Write every byte of `data` at the file position (a write may be partial near a full disk)."""
    view = data.cast("B")
    while view.nbytes:
        written = os.write(fd, view)
        if written <= 0:  # never for a regular file, but a loop must not spin on it
            raise OSError(f"write returned {written} with {view.nbytes} bytes left")
        view = view[written:]


def start_writeback(fd: int, offset: int, nbytes: int) -> None:
    """Ask the kernel to start writing this range to disk now, without waiting for it."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, nbytes, _SYNC_FILE_RANGE_WRITE)  # ctypes drops the GIL


class Background(Generic[T]):
    """`work` running on a helper thread from now on; `result()` waits for it and returns what
    it returned or raises what it raised."""

    def __init__(self, work: Callable[[], T], name: str) -> None:
        self._outcome: list[tuple[bool, Any]] = []
        self._thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], T]) -> None:
        try:
            self._outcome.append((True, work()))
        except BaseException as err:  # handed to the thread that asks for the result
            self._outcome.append((False, err))

    def result(self) -> T:
        self._thread.join()
        ok, value = self._outcome[0]
        if not ok:
            raise value
        return cast(T, value)
