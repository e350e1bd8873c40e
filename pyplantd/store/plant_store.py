"""PlantStore: one plant dir, owned by one process: the lock, the manifest, payload files and
the values already in memory.

The plant decides *what* to store and when; this class only knows *how*. It never imports the
plant, the daemon or the CLI.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Any

import h5py

from ..errors import PayloadDamagedError, PlantDirError, StoreError
from .manifest import DB_NAME, Manifest
from .payloads import PAYLOAD_DIR, Payload, PayloadFiles
from .records import IngredientRecord, ReactorRecord
from .specs import DATASET, IngredientTypeSpec, builtin_specs

logger = logging.getLogger(__name__)
LOCK_NAME = ".lock"


class PlantStore:
    def __init__(self, plant_dir: str | os.PathLike[str]) -> None:
        self.plant_dir = Path(plant_dir).expanduser().absolute()
        _check_plant_dir(self.plant_dir)
        self._lock = _acquire_lock(self.plant_dir)
        try:
            self.manifest = Manifest(self.plant_dir)
        except BaseException:
            self._lock.close()
            raise
        self.payloads = PayloadFiles(self.plant_dir)
        self.specs: dict[str, IngredientTypeSpec] = builtin_specs()
        self.custom_specs: list[IngredientTypeSpec] = []
        self.reactors = self.manifest.reactors()
        self.ingredients = self.manifest.ingredients()
        self._warm: dict[str, tuple[str, Any]] = {}  # payload path -> (fingerprint, value)
        self._verified: set[str] = set()
        self._open_h5: list[h5py.File] = []
        removed = self.payloads.remove_unreferenced({i.path for i in self.ingredients.values()})
        if removed:
            logger.info("Removed %d unfinished or orphan payload files.", len(removed))

    # -- specs ------------------------------------------------------------------------------
    def register_specs(self, specs: list[IngredientTypeSpec]) -> None:
        for spec in specs:
            self.specs[spec.name] = spec
            self.custom_specs = [s for s in self.custom_specs if s.name != spec.name] + [spec]

    def spec(self, type_name: str) -> IngredientTypeSpec:
        try:
            return self.specs[type_name]
        except KeyError:
            known = ", ".join(sorted(self.specs))
            raise StoreError(
                f"Ingredient type '{type_name}' is unknown (known: {known}). Register its spec "
                "with plant.register_ingredient_specs([...])."
            ) from None

    # -- writing ----------------------------------------------------------------------------
    def write(self, name: str, type_name: str, value: Any) -> Payload:
        payload = self.payloads.write(name, self.spec(type_name), value)
        self._warm[payload.path] = (payload.fingerprint or "", value)
        return payload

    def allocate_file(self, name: str, suffix: str = "") -> Path:
        path = self.payloads.temp_path(name, suffix)
        path.touch()
        return path

    def allocate_hdf(self, name: str, shape: Any, dtype: Any, **options: Any) -> h5py.Dataset:
        path = self.payloads.temp_path(name, ".h5")
        handle = h5py.File(path, "w")
        try:
            return handle.create_dataset(DATASET, shape=shape, dtype=dtype, **options)
        except Exception:
            handle.close()
            path.unlink()
            raise

    def commit_file(self, name: str, temp: Path) -> Payload:
        final = self.payloads.commit(temp, name, temp.suffix)
        spec = self.spec("file")
        return self.payloads.describe(final, spec.fingerprint(str(final), str(final)), {})

    def commit_hdf(self, name: str, dataset: h5py.Dataset) -> Payload:
        meta = self.spec("hdf_array").describe(dataset)
        temp = Path(dataset.file.filename)
        dataset.file.close()
        final = self.payloads.commit(temp, name, ".h5")
        return self.payloads.describe(final, None, meta)

    def discard(self, paths: list[str]) -> None:
        for path in paths:
            self._warm.pop(path, None)
            self.payloads.remove(path)

    def commit(self, record: ReactorRecord, outputs: list[IngredientRecord]) -> None:
        """Record a finished reactor; payloads it replaced are deleted afterwards."""
        replaced = [
            old.path
            for out in outputs
            if (old := self.ingredients.get(out.name)) is not None and old.path != out.path
        ]
        self.manifest.commit_reactor(record, outputs)
        self.reactors[record.id] = record
        for out in outputs:
            self.ingredients[out.name] = out
            self._verified.add(out.path)  # written by this process: known good
        still_used = {i.path for i in self.ingredients.values()}
        self.discard([path for path in replaced if path not in still_used])

    def forget(self, names: list[str]) -> None:
        """Drop damaged or cleaned ingredients from the manifest and disk."""
        records = [self.ingredients.pop(n) for n in names if n in self.ingredients]
        self.manifest.forget_ingredients(names)
        self.discard([r.path for r in records])

    # -- reading ----------------------------------------------------------------------------
    def intact(self, record: IngredientRecord) -> bool:
        return record.path in self._warm or self.payloads.intact(record.path, record.size)

    def load(self, record: IngredientRecord) -> Any:
        """The value of a stored ingredient; the first load of a payload verifies it."""
        warm = self._warm.get(record.path)
        if warm is not None:
            return warm[1]
        if not self.payloads.intact(record.path, record.size):
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) is missing or has the "
                "wrong size."
            )
        value = self._fetch_verified(record)
        self._warm[record.path] = (record.fingerprint, value)
        return value

    def _fetch_verified(self, record: IngredientRecord) -> Any:
        spec = self.spec(record.type)
        path = str(self.payloads.resolve(record.path))
        try:
            value = spec.fetch(path)
        except Exception as err:
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) cannot be read: {err}"
            ) from err
        if isinstance(value, h5py.Dataset):
            self._open_h5.append(value.file)
        if record.path not in self._verified:
            expected = spec.fingerprint(value, path)
            if not spec.check(value, record.meta) or (
                expected is not None and expected != record.fingerprint
            ):
                raise PayloadDamagedError(
                    f"Payload of ingredient '{record.name}' ({record.path}) does not match its "
                    "recorded fingerprint."
                )
            self._verified.add(record.path)
        return value

    def reopen_hdf(self, payload: Payload) -> h5py.Dataset:
        handle = h5py.File(self.payloads.resolve(payload.path), "r")
        self._open_h5.append(handle)
        dataset = handle[DATASET]
        self._warm[payload.path] = ("", dataset)
        return dataset

    def remember(self, payload: Payload, value: Any) -> None:
        self._warm[payload.path] = (payload.fingerprint or "", value)

    def close(self) -> None:
        for handle in self._open_h5:
            with contextlib.suppress(Exception):
                handle.close()
        self._open_h5.clear()
        self._warm.clear()
        self.manifest.close()
        self._lock.close()


def _check_plant_dir(plant_dir: Path) -> None:
    if plant_dir.exists() and not plant_dir.is_dir():
        raise PlantDirError(f"Plant dir {plant_dir} is a file. Choose a directory.")
    plant_dir.mkdir(parents=True, exist_ok=True)
    if (plant_dir / DB_NAME).exists():
        return
    foreign = [p.name for p in plant_dir.iterdir() if p.name not in (LOCK_NAME, PAYLOAD_DIR)]
    if not foreign:
        return
    hint = " It looks like a PyPlant 0.x plant dir." if "plant.pcl" in foreign else ""
    raise PlantDirError(
        f"{plant_dir} is not a pyplantd plant dir: it holds other files ({', '.join(foreign[:5])})"
        f" and no {DB_NAME}.{hint} Use an empty or new directory; nothing was deleted."
    )


class _Lock:
    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def close(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def _acquire_lock(plant_dir: Path) -> _Lock:
    """One process per plant dir; the kernel drops the lock when the process dies."""
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
    return _Lock(handle)
