"""Payload files: every ingredient value on disk is one file under `<plant dir>/payloads/`.

A payload is written under a temporary name, fsynced, then renamed into place, so a killed
process leaves either nothing or a complete file; temporary files and payloads the manifest does
not reference are removed at start-up. Nothing is ever loaded from outside this directory, and
only files named as pyplantd names them, regular and of this user, are ever deleted.

Payloads are never written again once committed, so what its commit saw of a file (size,
modification and change times, inode: `STAT` in its meta) stays the same until something else
writes, truncates or replaces it; loads compare that instead of hashing the whole file.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PayloadDamagedError, StoreError
from ..sizes import format_size
from .failures import explain_os_error, explain_unknown
from .frozen import value_type_name
from .specs import IngredientTypeSpec, new_file
from .trust import check_own

PAYLOAD_DIR = "payloads"
TEMP_PREFIX = ".tmp-"
_SAFE = "[A-Za-z0-9_.-]"
# The names temp_path and final_path give; nothing else in the payload dir is ever deleted.
_OURS = re.compile(rf"\.tmp-[0-9a-f]{{12}}-{_SAFE}+|{_SAFE}{{1,80}}-[0-9a-f]{{12}}{_SAFE}*")
STAT = "stat"  # payload meta: [size, mtime_ns, ctime_ns, inode] of the file as committed
StatKey = list[int]


@dataclass(frozen=True)
class Payload:
    """Where and what a stored value is; `path` is relative to the plant dir."""

    path: str
    size: int
    fingerprint: str | None  # content, for early cutoff (None: use provenance)
    meta: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""  # of the file, verified on first load ("" for out-of-core data)


def _token() -> str:
    """12 random hex digits, as secrets.token_hex(6) (whose import costs ~3 ms: hmac, hashlib)."""
    return os.urandom(6).hex()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:80] or "_"


def _safe_suffix(suffix: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", suffix)[:40]


def stat_key(st: os.stat_result) -> StatKey:
    """What any write, truncation or replacement of a file changes: its size, modification and
    change times (the kernel sets ctime at every change; no user can set it), its inode."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _past_mtime_ns() -> int:
    """A modification time no later write can give a file: two or more seconds ago, on an even
    second (the coarsest any file system keeps). A write sets the time to now, so it changes it
    even within one tick of the clock the kernel stamps files with."""
    seconds = time.time_ns() // 10**9 - 2
    return (seconds - seconds % 2) * 10**9


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
        self._root = str(self.root)
        self._renamed = False  # a payload was renamed into place since the last sync_names
        try:
            check_own(self.root, os.lstat(self.root), "Payload dir", plant_dir)
        except FileNotFoundError:
            if create:
                os.mkdir(self.root, 0o700)

    def temp_path(
        self,
        name: str,
        suffix: str,
        value: Any = None,
        size: int | None = None,
        create: bool = True,
    ) -> Path:
        """A temporary path; with `create`, a new empty file made there (O_EXCL: never a file or
        link that was there). `value` and `size` only serve the message if it cannot be made."""
        path = self.root / f"{TEMP_PREFIX}{_token()}-{_safe(name)}{_safe_suffix(suffix)}"
        if create:
            try:
                os.close(new_file(str(path)))
            except OSError as err:
                raise self.write_error(name, path, err, value, size) from err
        return path

    def final_path(self, name: str, suffix: str) -> Path:
        return self.root / f"{_safe(name)}-{_token()}{_safe_suffix(suffix)}"

    def write_error(
        self,
        name: str,
        path: Path,
        err: BaseException,
        value: Any = None,
        size: int | None = None,
        spec: IngredientTypeSpec | None = None,
    ) -> StoreError:
        """Why ingredient `name` could not be written, and what to do."""
        kind = value_type_name(value) if value is not None else None
        about = [kind] if kind else []
        about += [format_size(size)] if size else []
        what = f"ingredient '{name}'" + (f" ({', '.join(about)})" if about else "")
        if isinstance(err, StoreError):  # explained already: a value pickle cannot store
            return StoreError(f"Could not store {what}: {err}")
        if isinstance(err, OSError) and (reason := explain_os_error(err, self.plant_dir, path)):
            return StoreError(f"Could not write {what} to {path}: {reason}.")
        if isinstance(err, TypeError | ValueError) and spec is not None and kind is not None:
            # the value, not the disk: the format of its type cannot hold it
            return StoreError(
                f"Could not store {what}: type {spec.name} cannot hold this {kind} ({err}). "
                f"Send it as another type (type=Ingredient.Type.object pickles it), or register "
                f"an IngredientTypeSpec for it."
            )
        reason = explain_unknown(err, self.plant_dir, size)
        return StoreError(f"Could not write {what} to {path}: {reason}.")

    def commit(self, temp: Path, name: str, final: Path | None = None) -> Path:
        """Make a completely written temporary file durable and give it its final name."""
        final = final or self.final_path(name, temp.suffix)
        try:
            past = _past_mtime_ns()
            os.utime(temp, ns=(past, past), follow_symlinks=False)
            fsync_path(temp)
            os.replace(temp, final)  # the directory is fsynced once per commit (sync_names)
            self._renamed = True  # after the rename: a sync_names running now leaves it set
        except OSError as err:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise self.write_error(name, final, err) from err
        return final

    def write_to(
        self, final: Path, name: str, spec: IngredientTypeSpec, value: Any, size: int | None = None
    ) -> Payload:
        """Write `value` under a temporary name, then commit it as `final`."""
        temp = self.temp_path(name, spec.suffix, value, size, create=not spec.creates_file)
        try:
            written = spec.write_named(name, value, str(temp))
        except Exception as err:  # h5py reports a full disk as OSError or RuntimeError
            with contextlib.suppress(OSError):
                temp.unlink()
            raise self.write_error(name, final, err, value, size, spec) from err
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        self.commit(temp, name, final)
        key = self.committed_stat(final)
        meta = {**spec.describe(value), **written.layout, STAT: key}
        return Payload(self.rel(final), key[0], written.fingerprint, meta, written.checksum)

    def committed_stat(self, final: Path) -> StatKey:
        """The stat key of a payload just committed (the rename changed its ctime: after it)."""
        return stat_key(os.lstat(final))

    def sync_names(self) -> None:
        """Make the renames so far durable before metadata refers to them; none since the last
        time (a reactor that stored nothing): no fsync."""
        if not self._renamed:
            return
        self._renamed = False  # before the fsync: a rename from now on is synced next time
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
        """Cheap check: a regular file of ours is there (never a link), with the size recorded.
        Raises PlantDirError for a file another user could have put or changed there."""
        return self.present(rel, size) is not None

    def present(self, rel: str, size: int) -> os.stat_result | None:
        """The lstat of a payload that passes `intact`, else None (missing, or another size).
        This stat is the payload's trust check: a link, or a file of another user or that
        others can write, is refused (PlantDirError) here, where it would be used."""
        try:
            path = self._path(rel)
            st = os.lstat(path)
        except (OSError, PayloadDamagedError):
            return None
        if st.st_mode & _SUSPECT_MODE != stat.S_IFREG or st.st_uid != os.geteuid():
            # raises, but for a directory of ours (missing, as before) or a regular file a
            # private group of yours may write (see trust.others_can_write)
            check_own(Path(path), st, "Payload file", self.plant_dir)
            if not stat.S_ISREG(st.st_mode):
                return None
        return st if st.st_size == size else None

    def _path(self, rel: str) -> str:
        """resolve() as a string: the same checks, without building Path objects."""
        head, sep, name = rel.partition("/")
        if head != PAYLOAD_DIR or not sep or name in ("", ".", "..") or "/" in name:
            raise PayloadDamagedError(f"Payload path {rel!r} points outside {self.root}.")
        return f"{self._root}/{name}"

    def remove(self, rel: str) -> None:
        with contextlib.suppress(OSError, PayloadDamagedError):
            path = self.resolve(rel)
            if _ours(os.lstat(path)):
                path.unlink()

    def stored_bytes(self) -> int:
        with os.scandir(self.root) as entries:
            sizes = [e.stat(follow_symlinks=False) for e in entries]
        return sum(st.st_size for st in sizes if stat.S_ISREG(st.st_mode))

    def remove_unreferenced(self, referenced: set[str]) -> list[str]:
        """Delete temporary files and payloads no manifest row points to; return their names.
        Only files pyplantd made: named as it names them, regular (a link is never followed
        nor removed) and this user's. A link or other special file found here is refused
        (PlantDirError): pyplantd never makes one."""
        removed = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                if not entry.is_file(follow_symlinks=False):  # the listing tells: no stat
                    st = entry.stat(follow_symlinks=False)
                    check_own(self.root / entry.name, st, "Payload file", self.plant_dir)
                if f"{PAYLOAD_DIR}/{entry.name}" in referenced or not _OURS.fullmatch(entry.name):
                    continue
                with contextlib.suppress(OSError):
                    if _ours(entry.stat(follow_symlinks=False)):
                        os.unlink(self.root / entry.name)
                        removed.append(entry.name)
        return removed


# Mode bits that need a closer look: the file type (a regular file is expected) and write bits
# for anyone but the owner.
_SUSPECT_MODE = 0o170000 | stat.S_IWGRP | stat.S_IWOTH


def _ours(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()
