"""Whether a directory may be used as a plant dir, and the lock that gives it to one process.

Nothing in a directory is read, written or deleted before it has passed these checks. Payload
files are checked where they are used: each use stats its file anyway (see payloads.present).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
from pathlib import Path

from ..errors import PlantDirError
from .manifest import DB_NAME, MANIFEST_FILES
from .payloads import PAYLOAD_DIR
from .trust import check_own, open_own, secure_plant_dir

LOCK_NAME = ".lock"
# What PyPlant 0.6.0 keeps in its plant dir besides payloads: its reactors, manifest, scalars.
PYPLANT_FILES = frozenset({"plant.pcl", "manifest.pyplant.pcl", "simple.pyplant.pcl"})
_LOCK_TEXT = re.compile(rb"(pid \d+ since \d\d:\d\d:\d\d)?")  # what acquire_lock writes


def check_plant_dir(plant_dir: Path, create: bool = True) -> None:
    """Refuse a directory another user could change, or one that holds files pyplantd did not
    make; create a missing one (mode 0700). Its payload files are checked when used."""
    secure_plant_dir(plant_dir, create)
    with os.scandir(plant_dir) as entries:
        found = {entry.name: entry.stat(follow_symlinks=False) for entry in entries}
    if DB_NAME not in found:
        _check_new(plant_dir, found)
        return
    for name in (*MANIFEST_FILES, LOCK_NAME, PAYLOAD_DIR):  # what pyplantd reads or writes
        if name in found:
            check_own(plant_dir / name, found[name], "Plant file", plant_dir)


def _check_new(plant_dir: Path, found: dict[str, os.stat_result]) -> None:
    """A plant dir without a manifest may hold only the lock of a first run that was killed."""
    foreign = sorted(name for name in found if name != LOCK_NAME)
    if LOCK_NAME in found and not foreign:
        check_own(plant_dir / LOCK_NAME, found[LOCK_NAME], "Plant file", plant_dir)
        with open(plant_dir / LOCK_NAME, "rb") as handle:  # a regular file of ours: checked
            if _LOCK_TEXT.fullmatch(handle.read(64).strip()):
                return
        foreign = [LOCK_NAME]
    if not foreign:
        return
    pyplant_files = sorted(PYPLANT_FILES.intersection(foreign))
    if pyplant_files:
        raise PlantDirError(
            f"{plant_dir} is a PyPlant 0.6.0 plant dir ({', '.join(pyplant_files)}). pyplantd "
            "stores results in a format of its own and never writes to it: give pyplantd a new "
            f"directory (e.g. {plant_dir}-pyplantd); its results are recomputed once there. "
            "Nothing was changed or deleted."
        )
    raise PlantDirError(
        f"{plant_dir} is not a pyplantd plant dir: it holds files pyplantd did not make "
        f"({', '.join(foreign[:5])}) and no {DB_NAME}. Use an empty or new directory; "
        "nothing was deleted."
    )


class PlantLock:
    """Held for the plant's life; the kernel releases it if the process dies."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        with contextlib.suppress(OSError):
            os.close(self.fd)


def acquire_lock(plant_dir: Path) -> PlantLock:
    """One process per plant dir, refused with the holder's pid otherwise. The lock file is
    never followed if it is a symbolic link, and checked to be a file of ours before use."""
    path = plant_dir / LOCK_NAME
    fd = open_own(path, os.O_RDWR | os.O_CREAT, plant_dir, "Lock file")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise PlantDirError(
            f"Plant dir {plant_dir} is in use by another process ({owner}). Wait for it to "
            "finish, stop it (`pyplant stop` if it is `pyplantd watch`, whose plant `pyplant "
            "run` runs), or use another plant dir."
        ) from None
    except BaseException:
        os.close(fd)
        raise
    text = f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}".encode()
    with contextlib.suppress(OSError):  # the pid is a courtesy for the next one: a full disk
        os.ftruncate(fd, 0)  # must not stop the plant from opening
        os.pwrite(fd, text, 0)
    return PlantLock(fd)
