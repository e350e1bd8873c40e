"""Which files on this machine the client may believe: only what no other user could have
written. A runtime dir must be a real directory of the current user, writable by nobody else; a
connection file a regular file of the current user, readable by nobody else (0600); a payload
file a regular file of the current user. Symbolic links are never followed. Standard library only.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # a FIFO must not hang
MAX_CONNECTION_FILE = 64 * 1024  # a real one is a few hundred bytes


class UntrustedFileError(Exception):
    """A file or directory another user could have written or read: refused, never used."""


def user_name(uid: int) -> str:
    """`user NAME (uid N)`, or `uid N` for an unknown uid."""
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def check_owner(path: Path, info: os.stat_result, hint: str) -> None:
    """UntrustedFileError unless the current user owns it."""
    if info.st_uid != os.geteuid():
        raise UntrustedFileError(
            f"Refusing {path}: it belongs to {user_name(info.st_uid)}, not to you "
            f"({user_name(os.geteuid())}), so it may have been left to pass for yours. {hint}"
        )


def check_runtime_dir(path: Path, info: os.stat_result) -> None:
    """`info` (from lstat) must show a directory of ours that nobody else can write to."""
    if stat.S_ISLNK(info.st_mode):
        raise UntrustedFileError(
            f"Refusing {path}: it is a symbolic link, and a daemon's runtime dir is never reached "
            "through one. Remove it."
        )
    if not stat.S_ISDIR(info.st_mode):
        raise UntrustedFileError(f"Refusing {path}: it is not a directory. Remove it.")
    check_owner(path, info, "Remove it, or run pyplant from your own project (--dir).")
    if info.st_mode & 0o022:
        raise UntrustedFileError(
            f"Refusing {path}: its mode {stat.S_IMODE(info.st_mode):04o} lets other users "
            f"replace the files in it. Restrict it (chmod 700 {path}) or remove it."
        )


def check_secret_file(path: Path, info: os.stat_result) -> None:
    """`info` (from lstat or fstat) must show a regular file of ours that only we can read."""
    _check_regular(path, info)
    check_owner(path, info, "Remove it, or run pyplant from your own project (--dir).")
    if info.st_mode & 0o077:
        raise UntrustedFileError(
            f"Refusing {path}: its mode {stat.S_IMODE(info.st_mode):04o} lets other users read "
            f"or change the daemon's key; it must be 0600. Restart the daemon, or remove it."
        )


def read_connection_file(path: Path) -> bytes:
    """The bytes of a connection file, read only once it and its folder are known to be ours and
    private (checked on the open descriptor: what was checked is what is read)."""
    check_runtime_dir(path.parent, os.lstat(path.parent))
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as err:
        if err.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            check_secret_file(path, os.lstat(path))  # which says so
        raise
    try:
        check_secret_file(path, os.fstat(fd))
        return os.read(fd, MAX_CONNECTION_FILE)
    finally:
        os.close(fd)


def check_payload_file(path: Path) -> os.stat_result:
    """A payload file named by the daemon: a regular file of ours, not writable by others, not
    reached through a link; its stat, for the size check."""
    info = os.lstat(path)
    _check_regular(path, info)
    check_owner(path, info, "Only your own daemon's plant dir is read. Remove it.")
    if info.st_mode & 0o022:
        raise UntrustedFileError(
            f"Refusing {path}: its mode {stat.S_IMODE(info.st_mode):04o} lets other users "
            "change it."
        )
    return info


def read_payload_file(path: Path) -> bytes:
    """The bytes of a payload file named by the daemon, read only once the open descriptor
    shows a regular file of ours that others cannot write (never through a link): what was
    checked is what is read."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as err:
        if err.errno == errno.ELOOP:
            _check_regular(path, os.lstat(path))  # says it is a link
        raise
    try:
        info = os.fstat(fd)
        _check_regular(path, info)
        check_owner(path, info, "Only your own daemon's plant dir is read. Remove it.")
        if info.st_mode & 0o022:
            raise UntrustedFileError(
                f"Refusing {path}: its mode {stat.S_IMODE(info.st_mode):04o} lets other users "
                "change it."
            )
        chunks = []
        while chunk := os.read(fd, 1 << 24):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check_regular(path: Path, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise UntrustedFileError(
            f"Refusing {path}: it is a symbolic link, which pyplant never follows to a file it "
            "trusts. Remove it."
        )
    if not stat.S_ISREG(info.st_mode):
        raise UntrustedFileError(f"Refusing {path}: it is not a regular file. Remove it.")
