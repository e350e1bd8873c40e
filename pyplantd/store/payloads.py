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
    fingerprint: str | None  # content, for early cutoff (None: use provenance)
    meta: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""  # of the file, verified on first load ("" for out-of-core data)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80] or "_"


def _write_error(name: str, path: Path, err: Exception) -> StoreError:
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return StoreError(
        f"Could not write ingredient '{name}' to {path}: {reason}. "
        "Check free space and permissions of the plant dir."
    )


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PayloadFiles:
    def __init__(self, plant_dir: Path, create: bool = True) -> None:
        self.plant_dir = plant_dir
        self.root = plant_dir / PAYLOAD_DIR
        if create:
            self.root.mkdir(exist_ok=True)

    def temp_path(self, name: str, suffix: str) -> Path:
        return self.root / f"{TEMP_PREFIX}{secrets.token_hex(6)}-{_safe(name)}{suffix}"

    def final_path(self, name: str, suffix: str) -> Path:
        return self.root / f"{_safe(name)}-{secrets.token_hex(6)}{suffix}"

    def commit(self, temp: Path, name: str, final: Path | None = None) -> Path:
        """Make a completely written temporary file durable and give it its final name."""
        final = final or self.final_path(name, temp.suffix)
        try:
            fsync_path(temp)
            os.replace(temp, final)  # the directory is fsynced once per commit (sync_names)
        except OSError as err:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise _write_error(name, final, err) from err
        return final

    def write_to(self, final: Path, name: str, spec: IngredientTypeSpec, value: Any) -> Payload:
        """Write `value` under a temporary name, then commit it as `final`."""
        temp = self.temp_path(name, spec.suffix)
        try:
            written = spec.write_named(name, value, str(temp))
        except Exception as err:  # h5py reports a full disk as OSError or RuntimeError
            with contextlib.suppress(OSError):
                temp.unlink()
            raise _write_error(name, final, err) from err
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        self.commit(temp, name, final)
        meta = spec.describe(value)
        return Payload(
            self.rel(final), final.stat().st_size, written.fingerprint, meta, written.checksum
        )

    def sync_names(self) -> None:
        """Make the renames so far durable before metadata refers to them."""
        fsync_path(self.root)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.plant_dir).as_posix()

    def resolve(self, rel: str) -> Path:
        """The absolute path of a payload, refusing anything outside the payload directory."""
        parts = rel.split("/")
        if len(parts) != 2 or parts[0] != PAYLOAD_DIR or parts[1] in ("", ".", ".."):
            raise PayloadDamagedError(f"Payload path {rel!r} points outside {self.root}.")
        return self.root / parts[1]

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
