"""Whether a directory may be used as a plant dir, and the lock that gives it to one process."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import IO

from ..errors import PlantDirError
from .manifest import DB_NAME
from .payloads import PAYLOAD_DIR

LOCK_NAME = ".lock"
# What PyPlant 0.6.0 keeps in its plant dir besides payloads: its reactors, manifest, scalars.
PYPLANT_FILES = frozenset({"plant.pcl", "manifest.pyplant.pcl", "simple.pyplant.pcl"})


def check_plant_dir(plant_dir: Path) -> None:
    """Create the plant dir, or refuse a directory that belongs to something else."""
    if plant_dir.exists() and not plant_dir.is_dir():
        raise PlantDirError(f"Plant dir {plant_dir} is a file. Choose a directory.")
    plant_dir.mkdir(parents=True, exist_ok=True)
    if (plant_dir / DB_NAME).exists():
        return
    foreign = [p.name for p in plant_dir.iterdir() if p.name not in (LOCK_NAME, PAYLOAD_DIR)]
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
        f"{plant_dir} is not a pyplantd plant dir: it holds other files ({', '.join(foreign[:5])})"
        f" and no {DB_NAME}. Use an empty or new directory; nothing was deleted."
    )


class PlantLock:
    """Held for the plant's life; the kernel releases it if the process dies."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def acquire_lock(plant_dir: Path) -> PlantLock:
    """One process per plant dir, refused with the holder's pid otherwise."""
    handle = open(plant_dir / LOCK_NAME, "a+")  # noqa: SIM115 - held open for the plant's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise PlantDirError(
            f"Plant dir {plant_dir} is in use by another process ({owner}). Wait for it to "
            "finish, stop it, or use another plant dir."
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}")
    handle.flush()
    return PlantLock(handle)
