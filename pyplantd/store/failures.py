"""Why a write to the plant dir failed, said so that the user knows what to do: a full disk
(with the space left), a file size limit, no permission, a read-only file system. Space is only
mentioned when space is the cause. Depends on nothing in pyplantd but its errors and sizes.
"""

from __future__ import annotations

import errno
import os
import resource
import sqlite3
import stat
from pathlib import Path

from ..sizes import format_size
from .trust import describe

_SPACE_FIX = "Free some space on it and run again; what was stored before is kept"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NO_PERMISSION = (errno.EACCES, errno.EPERM)
# SQLite's primary result codes (sqlite3.h) for the failures told apart here
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT = 3, 8, 10, 11
_SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 13, 14, 26
_SQLITE_MESSAGES = {  # Python < 3.11 has no sqlite_errorcode: the messages are SQLite's own
    "database or disk is full": _SQLITE_FULL,
    "attempt to write a readonly database": _SQLITE_READONLY,
    "disk I/O error": _SQLITE_IOERR,
    "unable to open database file": _SQLITE_CANTOPEN,
    "file is not a database": _SQLITE_NOTADB,
    "database disk image is malformed": _SQLITE_CORRUPT,
}


def free_space(path: Path) -> int | None:
    """Bytes an unprivileged user may still write where `path` is (None if unknown)."""
    for probe in (path, *path.parents):
        try:
            found = os.statvfs(probe)
        except OSError:
            continue
        return found.f_bavail * found.f_frsize
    return None


def disk_full(plant_dir: Path) -> str:
    """`the disk holding /p is full (12.0 KiB free)`"""
    free = free_space(plant_dir)
    left = f"{format_size(free)} free" if free is not None else "free space unknown"
    return f"the disk holding {plant_dir} is full ({left})"


def _may_write(st: os.stat_result) -> bool:
    """By its mode bits (root without the power to write anywhere is held to them too)."""
    if st.st_uid == os.geteuid():
        return bool(st.st_mode & stat.S_IWUSR)
    if st.st_gid in (os.getegid(), *os.getgroups()):
        return bool(st.st_mode & stat.S_IWGRP)
    return bool(st.st_mode & stat.S_IWOTH)


def _unwritable(path: Path) -> Path | None:
    """What keeps `path` from being written: the file itself, or the directory that would
    hold a new file (the nearest that exists); None if the mode bits allow both."""
    for candidate in (path, *path.parents):
        try:
            st = os.stat(candidate)
        except FileNotFoundError:
            continue
        except OSError:
            return candidate
        if not _may_write(st):
            return candidate
        if stat.S_ISDIR(st.st_mode):
            return None
    return None


def _not_writable(plant_dir: Path, path: Path) -> str:
    where = _unwritable(path) or next((p for p in (path, *path.parents) if p.exists()), path)
    try:
        owner = f" ({describe(os.stat(where))})"
    except OSError:
        owner = ""
    return (
        f"{where} is not writable by this process{owner}. Make it writable "
        f"(`chmod u+w {where}`) or use another plant dir"
    )


def _too_large(plant_dir: Path) -> str:
    limit, _hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if limit != resource.RLIM_INFINITY:
        return (
            f"the file is larger than this process may write (file size limit "
            f"{format_size(limit)}, see `ulimit -f`). Raise the limit, or send a smaller value"
        )
    return (
        f"the file is larger than the file system of {plant_dir} allows. Use a plant dir on "
        "another file system, or send a smaller value"
    )


def explain_os_error(err: OSError, plant_dir: Path, path: Path) -> str | None:
    """The cause and its fix, if `err` is one of the failures told apart here."""
    if err.errno in _NO_SPACE:
        reason = f"{disk_full(plant_dir)}. {_SPACE_FIX}"
    elif err.errno == errno.EFBIG:
        reason = _too_large(plant_dir)
    elif err.errno in _NO_PERMISSION:
        reason = _not_writable(plant_dir, path)
    elif err.errno == errno.EROFS:
        reason = f"{plant_dir} is on a read-only file system. Use a plant dir on a writable one"
    else:
        return None
    return f"{err.strerror}: {reason}" if err.strerror else reason


def explain_unknown(err: BaseException, plant_dir: Path, needed: int | None) -> str:
    """A failure with no errno (h5py reports some as RuntimeError): blame space only if the
    value does not fit in what is left."""
    free = free_space(plant_dir)
    if needed is not None and free is not None and needed >= free:
        return (
            f"{err}; it needs about {format_size(needed)} and {disk_full(plant_dir)}. {_SPACE_FIX}"
        )
    return f"{err}. Check that {plant_dir} is writable"


def sqlite_code(err: sqlite3.Error) -> int | None:
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF  # the primary code, without the extended bits
    return next((c for text, c in _SQLITE_MESSAGES.items() if text in str(err)), None)


def explain_sqlite(err: sqlite3.Error, plant_dir: Path, manifest: Path) -> str | None:
    """The cause and its fix for a manifest that could not be written; None if the manifest
    itself is at fault (damaged, not a database)."""
    code = sqlite_code(err)
    if code == _SQLITE_FULL or (code == _SQLITE_IOERR and (free_space(plant_dir) or 0) == 0):
        return f"{disk_full(plant_dir)}. {_SPACE_FIX}"
    if code in (_SQLITE_READONLY, _SQLITE_PERM, _SQLITE_CANTOPEN):
        return _not_writable(plant_dir, manifest)
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return None
    return f"{err}. Check that {plant_dir} is writable and its disk works"
