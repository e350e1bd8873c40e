"""The daemon's runtime directory `.pyplantd/` at the project root (mode 0700): its lock, and the
connection file and sockets a client finds it by. One daemon per project, whichever pipeline of
it it serves: the lock is a kernel file lock, released if the daemon dies, so a crashed daemon
never blocks the next one.

Nothing here follows a symbolic link or uses what another user could have made: the directory
and the lock are opened with O_NOFOLLOW and checked on the open descriptor (type, owner, links),
so a planted link is refused, never followed, truncated or written through.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import time
from pathlib import Path

from pyplant_client.protocol import RUNTIME_DIR, project_root
from pyplant_client.trust import user_name

from ..errors import DaemonRunningError, RuntimeDirError

LOCK_FILE = "daemon.lock"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a planted FIFO must not hang the open; the fstat check then refuses it.
_FILE_FLAGS = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def runtime_dir(pipeline: Path) -> Path:
    """`.pyplantd/` at the pipeline's project root: created owner-only, or checked to be a real
    directory of this user (then made owner-only)."""
    path = project_root(pipeline) / RUNTIME_DIR
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    fd = open_runtime_dir(path)
    try:
        os.fchmod(fd, 0o700)  # mkdir's mode is masked by the umask; an older one may be 0755
    finally:
        os.close(fd)
    return path


def open_runtime_dir(path: Path) -> int:
    """A descriptor of the runtime dir, refused unless it is a directory (not a link to one)
    owned by this user."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError as err:
        raise _refusal(path, err, "directory") from None
    try:
        _check_owner(path, os.fstat(fd), "directory")
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private_file(directory: int, path: Path) -> int:
    """`path` (named relative to the open `directory`) for reading and writing: created 0600,
    or an existing regular file of this user with one link; never through a symbolic link."""
    try:
        try:
            fd = os.open(path.name, _FILE_FLAGS | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=directory)
        except FileExistsError:
            fd = os.open(path.name, _FILE_FLAGS, dir_fd=directory)
    except OSError as err:
        raise _refusal(path, err, "file") from None
    try:
        info = os.fstat(fd)
        _check_owner(path, info, "file")
        if info.st_nlink != 1:  # a hard link: writing it would change another file
            raise RuntimeDirError(
                f"Refusing {path}: it has {info.st_nlink} hard links, so it is also another "
                "file. Remove it and start the daemon again."
            )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_owner(path: Path, info: os.stat_result, kind: str) -> None:
    wanted = stat.S_ISDIR if kind == "directory" else stat.S_ISREG
    if not wanted(info.st_mode):
        raise RuntimeDirError(
            f"Refusing {path}: it is not a {kind} pyplantd made. Move it away and start again."
        )
    if info.st_uid != os.geteuid():
        raise RuntimeDirError(
            f"Refusing {path}: it belongs to {user_name(info.st_uid)}, not to you "
            f"({user_name(os.geteuid())}), so another user could read or replace the daemon's "
            "files there. Remove it (or ask its owner to) and start again."
        )


def _refusal(path: Path, err: OSError, kind: str) -> RuntimeDirError:
    if os.path.islink(path):  # ELOOP: O_NOFOLLOW met a symbolic link
        return RuntimeDirError(
            f"Refusing {path}: it is a symbolic link (to {os.readlink(path)}), which pyplantd "
            f"never follows for its runtime files. Remove the link and start again."
        )
    if err.errno == errno.ENOTDIR:
        return RuntimeDirError(
            f"Refusing {path}: it is not a directory pyplantd made. Move it away and start again."
        )
    return RuntimeDirError(
        f"Cannot use {path} as the daemon's runtime {kind}: {err.strerror or err}. "
        "Check that it is yours and writable, or move it away."
    )


class DaemonLock:
    """Held for the daemon's life; says who holds it when refused."""

    def __init__(self, directory: Path, pipeline: Path, plant_dir: Path | None) -> None:
        self.path = directory / LOCK_FILE
        folder = open_runtime_dir(directory)
        try:
            self._fd = open_private_file(folder, self.path)
        finally:
            os.close(folder)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(self._fd)
            os.close(self._fd)
            raise DaemonRunningError(
                f"A pyplantd daemon is already running in the project {directory.parent} "
                f"({holder}); one daemon serves a project. Stop it with `pyplant stop` (or "
                "Ctrl-C in its terminal), then start this one."
            ) from None
        info = {"pid": os.getpid(), "pipeline": str(pipeline.absolute()), "since": time.time()}
        if plant_dir is not None:
            info["plant_dir"] = str(plant_dir)
        os.ftruncate(self._fd, 0)  # our own regular file, checked above
        os.pwrite(self._fd, json.dumps(info).encode(), 0)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)


def _describe(fd: int) -> str:
    """Who holds the lock, from what it wrote there; never fails on what the file holds."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        since = time.strftime("%H:%M:%S", time.localtime(float(info["since"])))
        return f"pid {int(info['pid'])} on {info.get('pipeline', '?')}, running since {since}"
    except (OSError, ValueError, TypeError, KeyError, OverflowError):
        return "pid unknown"
