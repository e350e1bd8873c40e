"""Which paths pyplantd may trust: only what no other user can change. The plant dir and all
it holds must be yours and writable by no one else; every directory and symbolic link above it
must be yours or root's, so that nobody else can rename the plant dir away and put theirs in its
place. Depends on nothing in pyplantd but its errors.
"""

from __future__ import annotations

import contextlib
import functools
import grp
import os
import pwd
import stat
from pathlib import Path, PurePosixPath

from ..errors import PlantDirError

_MAX_LINKS = 40  # as the kernel's limit on symbolic links followed while resolving one path
_NOTHING_DONE = "nothing in it was read, changed or deleted"


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return f"gid {gid}"


def describe(st: os.stat_result) -> str:
    """`owned by alice, mode 0755` for messages."""
    return f"owned by {user_name(st.st_uid)}, mode {stat.S_IMODE(st.st_mode):04o}"


@functools.cache
def _private_group(gid: int, uid: int) -> bool:
    """A group that is yours alone (the user private groups of most Linux distributions,
    whose default umask 002 makes every directory group-writable): named after you, your
    primary group, and listing no other member."""
    try:
        user, group = pwd.getpwuid(uid), grp.getgrgid(gid)
    except KeyError:
        return False
    return (
        user.pw_gid == gid and group.gr_name == user.pw_name and set(group.gr_mem) <= {user.pw_name}
    )


def others_can_write(st: os.stat_result) -> str | None:
    """Who besides the owner can write: `group staff`, `others`, ...; None if nobody."""
    mode, who = st.st_mode, []
    if mode & stat.S_IWGRP and not _private_group(st.st_gid, os.geteuid()):
        who.append(f"group {group_name(st.st_gid)}")
    if mode & stat.S_IWOTH:
        who.append("others")
    return " and ".join(who) or None


def _trusted_owner(uid: int) -> bool:
    return uid in (os.geteuid(), 0)


def check_ancestor(path: str, st: os.stat_result, plant_dir: Path) -> None:
    """A directory or link above the plant dir: nobody but you or root may change it."""
    kind = "Symbolic link" if stat.S_ISLNK(st.st_mode) else "Directory"
    if not _trusted_owner(st.st_uid):
        raise PlantDirError(
            f"{kind} {path} on the way to plant dir {plant_dir} is {describe(st)}: that user "
            f"could put a plant dir of theirs in place of yours, and pyplantd would load and run "
            f"what it holds. Use a plant dir under a directory of your own (for instance beside "
            f"your pipeline); {_NOTHING_DONE}."
        )
    writers = others_can_write(st) if stat.S_ISDIR(st.st_mode) else None
    if writers and not st.st_mode & stat.S_ISVTX:
        raise PlantDirError(
            f"Directory {path} above plant dir {plant_dir} is writable by {writers} ("
            f"{describe(st)}) and not sticky: they could rename the plant dir away and put "
            f"their own in its place. Use a plant dir under a directory of your own, or make "
            f"this one safe with `chmod go-w {path}` (or `chmod +t`, as /tmp); {_NOTHING_DONE}."
        )


def check_own(path: Path, st: os.stat_result, what: str, plant_dir: Path) -> None:
    """The plant dir or a file in it: yours, a directory or regular file, writable by you only."""
    if stat.S_ISLNK(st.st_mode):
        raise PlantDirError(
            f"{what} {path} is a symbolic link (to {os.readlink(path)}); pyplantd never makes "
            f"one and does not follow it. Remove the link (its target stays as it is) or use "
            f"another plant dir; {_NOTHING_DONE}."
        )
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise PlantDirError(
            f"{what} {path} is neither a file nor a directory; pyplantd never makes one. "
            f"Remove it or use another plant dir; {_NOTHING_DONE}."
        )
    if st.st_uid != os.geteuid():
        raise PlantDirError(
            f"{what} {path} is {describe(st)}, not by you ({user_name(os.geteuid())}): "
            f"pyplantd would load and run what another user put there. Use a plant dir of your "
            f"own (for instance beside your pipeline); {_NOTHING_DONE}."
        )
    writers = others_can_write(st)
    if writers:
        fix = f"chmod -R go-w {path}" if stat.S_ISDIR(st.st_mode) else f"chmod go-w {path}"
        raise PlantDirError(
            f"{what} {path} is writable by {writers} ({describe(st)}): another user could "
            f"swap in files that pyplantd would load and run. If you trust what it holds, "
            f"`{fix}`; otherwise use a new plant dir. In {plant_dir}, {_NOTHING_DONE}."
        )


def check_plant_dir_path(plant_dir: Path) -> None:
    """Walk the absolute path to the plant dir as the kernel resolves it, checking every
    directory and link on the way and then the plant dir itself. Raises FileNotFoundError if
    some part does not exist (yet)."""
    current = "/"
    check_ancestor(current, os.lstat(current), plant_dir)
    pending = list(reversed(PurePosixPath(plant_dir).parts[1:]))
    links = 0
    st = os.lstat(current)
    while pending:
        part = pending.pop()
        if part == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, part)
        st = os.lstat(candidate)
        if stat.S_ISLNK(st.st_mode):  # yours or root's, in a directory checked already
            check_ancestor(candidate, st, plant_dir)
            links += 1
            if links > _MAX_LINKS:
                raise PlantDirError(f"Too many symbolic links on the way to {plant_dir}.")
            target = PurePosixPath(os.readlink(candidate))
            if target.is_absolute():
                current = "/"
            pending.extend(reversed([p for p in target.parts if p != "/"]))
            continue
        current = candidate
        if pending:
            check_ancestor(current, st, plant_dir)
    check_own(Path(current), st, "Plant dir", plant_dir)
    if not stat.S_ISDIR(st.st_mode):
        raise PlantDirError(f"Plant dir {plant_dir} is a file. Choose a directory.")


def secure_plant_dir(plant_dir: Path, create: bool) -> None:
    """Refuse a plant dir another user could change; create a missing one, mode 0700."""
    try:
        check_plant_dir_path(plant_dir)
        return
    except FileNotFoundError:
        if not create:
            raise PlantDirError(f"{plant_dir} is not a plant dir (it does not exist).") from None
    except NotADirectoryError:
        raise PlantDirError(
            f"A part of {plant_dir} is a file, not a directory. Choose another plant dir."
        ) from None
    _make_dirs(plant_dir)
    check_plant_dir_path(plant_dir)  # whoever made it first, it must be safe now


def _make_dirs(plant_dir: Path) -> None:
    """Create the plant dir (0700) and missing directories above it (0755: whatever the umask,
    never writable by others, or the check that follows would refuse what pyplantd made)."""
    missing = [plant_dir]
    while not missing[-1].parent.exists() and missing[-1].parent != missing[-1]:
        missing.append(missing[-1].parent)
    for path in reversed(missing):
        # made meanwhile, or a file: the check that follows tells
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700 if path == plant_dir else 0o755)


def open_own(path: Path, flags: int, plant_dir: Path, what: str, mode: int = 0o600) -> int:
    """Open a file of the plant dir without following a symbolic link (O_NOFOLLOW) and check,
    on the open file itself, that it is a regular file of yours with no other link to it."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError:
        if os.path.islink(path):
            check_own(path, os.lstat(path), what, plant_dir)  # raises: a symbolic link
        raise
    try:
        st = os.fstat(fd)
        check_own(path, st, what, plant_dir)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise PlantDirError(
                f"{what} {path} is not a plain file of its own ({st.st_nlink} hard links); "
                f"pyplantd never makes such a file. Remove it or use another plant dir."
            )
    except BaseException:
        os.close(fd)
        raise
    return fd
