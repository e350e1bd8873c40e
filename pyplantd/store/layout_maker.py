"""Lays out contiguous array payloads with h5py, and makes the header templates that let the
store write most payloads without importing h5py (see store.layouts, store.layout_templates).

Regenerate the templates after changing the layout: `python -m pyplantd.store.layout_maker >
pyplantd/store/layout_templates.py`. Imports h5py: only the writer thread's fallback and the
generator use this module.
"""

from __future__ import annotations

import base64
import math
import os
import sys
import tempfile
import zlib
from typing import Any

import h5py
import numpy as np

from .layouts import DATASET, patch

# Ranks and dtypes with a template: numbers in the machine's byte order (what numpy makes).
TEMPLATE_RANKS = range(5)
TEMPLATE_DTYPES = tuple(
    np.dtype(code).str
    for code in ("?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16")
)
# Shapes whose dims are found again in the header bytes: values no other field of a header
# has, small enough that even a rank-4 complex array fits a sparse file.
_MARKERS = (1021, 1019, 1013, 1009)


def lay_out(path: str, dtype: np.dtype[Any], shape: tuple[int, ...]) -> bytes:
    """Create an HDF5 file at `path` (exclusively, owner-only) holding one contiguous dataset of
    this dtype and shape, allocated but never filled; returns its header, the bytes before the
    data. No modification time is recorded, so they depend on dtype and shape alone."""
    with h5py.File(path, "x") as handle:
        os.chmod(path, 0o600)
        create = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        create.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        create.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        create.set_obj_track_times(False)
        space = h5py.h5s.create_simple(shape)
        file_type = h5py.h5t.py_create(dtype)
        dataset = h5py.h5d.create(handle.id, DATASET.encode(), file_type, space, dcpl=create)
        offset: int = dataset.get_offset()
    with open(path, "rb") as laid_out:
        return laid_out.read(offset)


def header_of(dtype: np.dtype[Any], shape: tuple[int, ...]) -> bytes:
    """The bytes h5py writes before the data of such a payload."""
    with tempfile.TemporaryDirectory(prefix="pyplantd-layout-") as folder:
        return lay_out(os.path.join(folder, "payload.h5"), dtype, shape)


def _u64(value: int) -> bytes:
    return int(value).to_bytes(8, "little")


def _only(data: bytes, pattern: bytes, what: str) -> int:
    at = data.find(pattern)
    if at < 0 or data.find(pattern, at + 1) >= 0:
        raise ValueError(f"{what} is not found exactly once in the header")
    return at


def make_template(dtype: np.dtype[Any], rank: int) -> tuple[str, list[int]]:
    """A header for this dtype and rank (compressed, base64), and where its shape-dependent
    fields are: the end of file address, the dims and the max dims of the dataspace, the data
    size of the layout (see layouts.patch)."""
    shape = _MARKERS[:rank]
    data = header_of(dtype, shape)
    dims = b"".join(map(_u64, shape))
    nbytes = math.prod(shape) * dtype.itemsize
    size_at = data.rfind(_u64(nbytes)) if rank else -1  # the layout message comes last
    found, at = [], data.find(dims)
    while rank and at >= 0:
        if at != size_at:
            found.append(at)
        at = data.find(dims, at + 1)
    if rank and (len(found) != 2 or size_at < 0):
        raise ValueError(f"the shape fields of a {dtype} rank-{rank} header are not found")
    eof_at = _only(data, _u64(len(data) + nbytes), "the end of file address")
    fields = [eof_at, *(found if rank else [-1, -1]), size_at]
    other = tuple(n + 2 for n in shape)  # the fields found must be all that a shape changes
    if patch(data, fields, other, dtype.itemsize) != header_of(dtype, other):
        raise ValueError(f"patching the {dtype} rank-{rank} header does not give h5py's")
    return base64.b64encode(zlib.compress(data, 9)).decode("ascii"), fields


def templates_module() -> str:
    """The source of store/layout_templates.py."""
    lines = [
        '"""Headers of contiguous array payloads by dtype and rank, made by store/layout_maker.py',
        f"with h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version}). Generated: do not edit.",
        '"""',
        "",
        "# dtype.str/rank: (zlib+base64 header, eof_at, dims_at, maxdims_at, size_at)",
        "TEMPLATES: dict[str, tuple[str, int, int, int, int]] = {",
    ]
    for code in TEMPLATE_DTYPES:
        for rank in TEMPLATE_RANKS:
            packed, fields = make_template(np.dtype(code), rank)
            numbers = "".join(f"        {n},\n" for n in fields)
            lines.append(f'    "{code}/{rank}": (\n        "{packed}",\n{numbers}    ),')
    lines.append("}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(templates_module())
