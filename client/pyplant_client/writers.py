"""`pyplant fetch NAME -o FILE`: the value written to exactly FILE, in the format its suffix
names (.npy, .csv for 1-D or 2-D numeric arrays, .json for JSON values, .pkl only when pickles
are allowed), through a temporary file renamed into place. numpy is imported for arrays only.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
from pathlib import Path
from typing import Any

from .errors import ClientError

FORMATS = {".npy": "npy", ".csv": "csv", ".json": "json", ".pkl": "pkl"}


class WriteError(ClientError):
    """The value cannot be written as asked: the fact and what to do instead."""


def format_of(output: Path, allow_pickle: bool) -> str:
    """The format FILE's suffix names; WriteError for another suffix, or .pkl without leave."""
    fmt = FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise WriteError(
            f"{output}: '{output.suffix or 'no suffix'}' is not a format pyplant writes. Name the "
            "file .npy, .csv (1-D or 2-D numeric arrays), .json (JSON values) or .pkl "
            "(with --allow-pickle)."
        )
    if fmt == "pkl" and not allow_pickle:
        raise WriteError(
            f"{output}: a .pkl file is a pickle, and loading one runs code. Add --allow-pickle "
            "if that is what you want, or choose .npy, .csv or .json."
        )
    return fmt


def is_array(value: Any) -> bool:
    return hasattr(value, "dtype") and hasattr(value, "shape")


def to_stdout(name: str, value: Any) -> str:
    """A value printed without -o: JSON; arrays need a file."""
    if is_array(value):
        raise WriteError(f"'{name}' is an array; write it with -o {name}.npy (or {name}.csv)")
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)  # an object loaded with --allow-pickle


def write(output: Path, fmt: str, name: str, value: Any, pickled: bytes | None) -> str:
    """Write the value (or, for .pkl, the pickle's bytes) to `output`; what was written."""
    data, what = _encode(fmt, name, value, pickled)
    _replace(output, data)
    return what


def _encode(fmt: str, name: str, value: Any, pickled: bytes | None) -> tuple[bytes, str]:
    if fmt == "pkl":
        assert pickled is not None
        return pickled, f"a pickle of {len(pickled)} bytes"
    if fmt == "json":
        if is_array(value):
            raise WriteError(f"'{name}' is an array; write it as .npy or .csv, not .json")
        try:
            return (json.dumps(value, allow_nan=False) + "\n").encode(), "JSON"
        except (TypeError, ValueError) as err:
            raise WriteError(f"'{name}' ({type(value).__name__}) is not JSON: {err}") from None
    if not is_array(value):
        kind = type(value).__name__
        raise WriteError(f"'{name}' is a {kind}, not an array: write it as .json")
    import numpy as np

    array = np.asarray(value)
    buffer = io.BytesIO()
    if fmt == "npy":
        np.save(buffer, array, allow_pickle=False)
        return buffer.getvalue(), f"{array.dtype} {tuple(array.shape)}"
    if array.ndim not in (1, 2) or array.dtype.kind not in "biuf":
        raise WriteError(
            f"'{name}' is a {array.ndim}-D {array.dtype} array; .csv holds 1-D or 2-D numeric "
            "arrays: write it as .npy"
        )
    number = "%d" if array.dtype.kind in "biu" else "%.17g"  # floats read back exactly
    np.savetxt(buffer, array, fmt=number, delimiter=",")
    return buffer.getvalue(), f"{array.dtype} {tuple(array.shape)} as CSV"


def _replace(output: Path, data: bytes) -> None:
    """Exactly `output`, whole or not at all: a temporary file beside it, renamed onto it."""
    temp = output.with_name(f".{output.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, output)
    except OSError as err:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise WriteError(f"cannot write {output}: {err.strerror or err}") from None
