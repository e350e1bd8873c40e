"""PlantReader: a plant dir opened to list and read its ingredients, while a daemon or another
process may hold it. It takes no lock and writes nothing: the manifest is read through a
read-only SQLite connection (in WAL mode readers never wait for the writer, and see each commit
whole), and payload files are never changed once in place. Every value is checked before it is
loaded: the file must be the user's own (the plant dir's trust rules), of the recorded size and
checksum. Depends on the store's modules only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import PayloadDamagedError, PlantDirError, PlantError
from ..suggest import unknown
from .listing import IngredientRow, list_ingredients
from .locking import PlantLock, acquire_lock, check_plant_dir
from .manifest import DB_NAME, Manifest
from .payloads import PayloadFiles
from .records import IngredientRecord
from .specs import IngredientTypeSpec, builtin_specs, is_dataset
from .trust import check_own


class PlantReader:
    """The ingredients of a plant dir, read-only.

    >>> with PlantReader("plant") as plant:                          # doctest: +SKIP
    ...     plant.names()
    ['data', 'model']
    >>> plant["data"].shape                                           # doctest: +SKIP
    (1000,)
    """

    def __init__(
        self,
        plant_dir: str | os.PathLike[str],
        *,
        exclusive: bool = False,
        specs: Iterable[IngredientTypeSpec] = (),
    ) -> None:
        self.plant_dir = Path(plant_dir).expanduser().absolute()
        if not (self.plant_dir / DB_NAME).is_file():
            raise PlantDirError(
                f"{self.plant_dir} is not a plant dir (it has no {DB_NAME}). Run the pipeline "
                "first, or name the plant dir its Plant(...) uses."
            )
        check_plant_dir(self.plant_dir, create=False)  # nothing another user could change
        # exclusive: hold the plant's lock, so that nothing changes it while it is open
        self._lock: PlantLock | None = acquire_lock(self.plant_dir) if exclusive else None
        try:
            self._manifest = Manifest.read_only(self.plant_dir)
        except BaseException:
            if self._lock is not None:
                self._lock.close()
            raise
        self._payloads = PayloadFiles(self.plant_dir, create=False)
        self.specs = builtin_specs()
        for spec in specs:
            self.specs[spec.name] = spec
        self._verified: dict[str, tuple[int, ...]] = {}  # path -> stat stamp when checked
        self._open: list[Any] = []  # HDF5 files behind hdf_array datasets handed out

    # -- listing ----------------------------------------------------------------------------
    def records(self) -> Mapping[str, IngredientRecord]:
        """The current ingredient records, as committed now (each decoded when read)."""
        return self._manifest.ingredients()

    def names(self) -> list[str]:
        return sorted(self.records())

    def ingredients(self) -> list[IngredientRow]:
        """One row per ingredient: producer, type, shape, size, tier, age, versions."""
        return list_ingredients(self.plant_dir)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.records()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.records())

    # -- values -----------------------------------------------------------------------------
    def fetch(self, name: str) -> Any:
        """The stored value of `name` (objects included, loaded in this process), checked first:
        the file must be the user's own, of the recorded size and checksum."""
        records = self.records()
        record = records.get(name)
        if record is None:
            raise PlantError(
                unknown("Ingredient", name, records, str(self.plant_dir))
                + " Run the reactor that sends it first."
            )
        spec = self.specs.get(record.type)
        if spec is None:
            raise PlantError(
                f"Ingredient '{name}' is of the custom type '{record.type}': pass its spec, "
                "open_plant(..., specs=[YourSpec()])."
            )
        path = self._checked(record, spec)
        try:
            value = spec.load(str(path), out_of_core=False)
        except PlantError:
            raise
        except FileNotFoundError:
            raise PayloadDamagedError(
                f"Payload of ingredient '{name}' ({record.path}) was removed while it was read "
                "(a newer result replaced it): fetch it again."
            ) from None
        except Exception as err:
            raise PayloadDamagedError(
                f"Payload of ingredient '{name}' ({record.path}) cannot be read: {err}"
            ) from err
        if is_dataset(value):
            self._open.append(value.file)
        return value

    __getitem__ = fetch

    def _checked(self, record: IngredientRecord, spec: IngredientTypeSpec) -> Path:
        path = self._payloads.resolve(record.path)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) is missing: re-run the "
                "reactor that sends it."
            ) from None
        check_own(path, info, "Payload file", self.plant_dir)
        if info.st_size != record.size:
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) has {info.st_size} "
                f"bytes, not the {record.size} recorded: re-run the reactor that sends it."
            )
        # ctime cannot be set back (an altered file keeping size and mtime still moves it)
        stamp = (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev)
        if self._verified.get(record.path) != stamp:
            if not spec.verify(str(path), record.checksum):
                raise PayloadDamagedError(
                    f"Payload of ingredient '{record.name}' ({record.path}) does not match its "
                    "recorded checksum: it was changed on disk. Re-run the reactor that sends it."
                )
            self._verified[record.path] = stamp
        return path

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        for handle in self._open:
            with contextlib.suppress(Exception):
                handle.close()
        self._open.clear()
        self._manifest.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> PlantReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PlantReader({str(self.plant_dir)!r})"
