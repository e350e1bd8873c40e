"""Payload files: every ingredient value on disk is one file under `<plant dir>/payloads/`.

A payload is written under a temporary name, fsynced, then renamed into place, so a killed
process leaves either nothing or a complete file; temporary files and payloads the manifest does
not reference are removed at start-up. Nothing is ever loaded from outside this directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PayloadDamagedError, StoreError
from .specs import IngredientTypeSpec

PAYLOAD_DIR = "payloads"
TEMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class Payload:
    """Where and what a stored value is; `path` is relative to the plant dir."""

    path: str
    size: int
    fingerprint: str | None
    meta: dict[str, Any] = field(default_factory=dict)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80] or "_"


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PayloadFiles:
    def __init__(self, plant_dir: Path) -> None:
        self.plant_dir = plant_dir
        self.root = plant_dir / PAYLOAD_DIR
        self.root.mkdir(exist_ok=True)

    def temp_path(self, name: str, suffix: str) -> Path:
        return self.root / f"{TEMP_PREFIX}{secrets.token_hex(6)}-{_safe(name)}{suffix}"

    def commit(self, temp: Path, name: str, suffix: str) -> Path:
        """Make a completely written temporary file durable and give it its final name."""
        final = self.root / f"{_safe(name)}-{secrets.token_hex(6)}{suffix}"
        try:
            fsync_path(temp)
            os.replace(temp, final)
            fsync_path(self.root)
        except OSError as err:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise StoreError(
                f"Could not write ingredient '{name}' to {final}: {err.strerror or err}. "
                "Check free space and permissions of the plant dir."
            ) from err
        return final

    def write(self, name: str, spec: IngredientTypeSpec, value: Any) -> Payload:
        temp = self.temp_path(name, spec.suffix)
        try:
            spec.store(value, str(temp))
        except OSError as err:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise StoreError(
                f"Could not write ingredient '{name}' to {temp}: {err.strerror or err}. "
                "Check free space and permissions of the plant dir."
            ) from err
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        final = self.commit(temp, name, spec.suffix)
        return self.describe(final, spec.fingerprint(value, str(final)), spec.describe(value))

    def describe(self, final: Path, fingerprint: str | None, meta: dict[str, Any]) -> Payload:
        rel = final.relative_to(self.plant_dir).as_posix()
        return Payload(rel, final.stat().st_size, fingerprint, meta)

    def resolve(self, rel: str) -> Path:
        """The absolute path of a payload, refusing anything outside the payload directory."""
        path = (self.plant_dir / rel).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise PayloadDamagedError(f"Payload path {rel!r} points outside {self.root}.")
        return path

    def intact(self, rel: str, size: int) -> bool:
        """Cheap check: the file is there with the size recorded."""
        try:
            return self.resolve(rel).stat().st_size == size
        except (OSError, PayloadDamagedError):
            return False

    def remove(self, rel: str) -> None:
        with contextlib.suppress(OSError, PayloadDamagedError):
            self.resolve(rel).unlink()

    def remove_unreferenced(self, referenced: set[str]) -> list[str]:
        """Delete temporary files and payloads no manifest row points to; return their names."""
        removed = []
        for entry in self.root.iterdir():
            rel = entry.relative_to(self.plant_dir).as_posix()
            if entry.is_file() and rel not in referenced:
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(entry.name)
        return removed
