"""Byte sizes: parse `512MB` / `4GiB`, print them, and the memory and disk budgets (the one
parser of a budget, wherever it is given, and the defaults).

`MB`/`GB` are powers of 10, `MiB`/`GiB` powers of 2. Depends on nothing else in pyplantd
(but its errors).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
}  # fmt: skip

MEMORY_SHARE = 0.25  # of physical memory: leaves room for the reactors' own working memory
DISK_SHARE = 0.5  # of the free space where the plant dir lives


def parse_size(text: str | int | float) -> int:
    """Bytes in `text`: `1024`, `512MB`, `1.5 GiB`, `4g` (bare k/m/g are powers of 2)."""
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"A size cannot be negative: {text}.")
        return int(text)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"'{text}' is not a size. Write a number with an optional unit, e.g. 512MB, 4GiB."
        )
    return int(float(match.group(1)) * _UNITS[unit])


def parse_budget(value: object) -> int:
    """A memory or disk budget in bytes, as `--memory`, an environment variable, pyproject.toml
    and `Plant(memory=..., disk=...)` all give it; ValueError says why not, worded to follow
    the value (`'lots' is not a size: ...`)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError('is not a size (e.g. "512MB", "4GiB")')
    try:
        size = parse_size(value)
    except ValueError as error:
        raise ValueError(f"is not a size: {str(error).rstrip('.')}") from None
    if size <= 0:
        raise ValueError("must be more than 0 bytes")
    return size


def script_budget(name: str, value: object) -> int | None:
    """`Plant(memory=...)`/`Plant(disk=...)` read by the same rules as the flags (None: not
    given)."""
    if value is None:
        return None
    try:
        return parse_budget(value)
    except ValueError as error:
        from .errors import SettingsError

        raise SettingsError(
            f"Plant({name}={value!r}) {str(error).rstrip('.')}. Give a size such as '512MB'."
        ) from None


def format_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 8 * 2**30


def memory_budget(memory: int | None) -> int:
    """The warm tier's budget: `memory`, or by default a share of physical memory."""
    return memory if memory is not None else default_memory_budget()


def disk_budget(disk: int | None, plant_dir: Path) -> int:
    """The budget of kept versions: `disk`, or by default a share of the free space."""
    return disk if disk is not None else default_disk_budget(plant_dir)


def default_memory_budget() -> int:
    return int(physical_memory() * MEMORY_SHARE)


def default_disk_budget(plant_dir: Path) -> int:
    probe = plant_dir if plant_dir.exists() else plant_dir.parent
    fs = os.statvfs(probe)  # what shutil.disk_usage reads (shutil costs ~2 ms to import)
    return int(fs.f_bavail * fs.f_frsize * DISK_SHARE)
