"""PayloadStore: write and read the payload files of a plant dir, with no lock and no manifest.

Any process may use one (the plant's own, or a worker of a cluster sharing the plant dir): a
write is durable before it returns (temp file, fsync, rename, directory fsync), names are never
reused, and nothing here deletes a payload another process may still need. What is current, and
when an unreferenced payload may go, is the manifest owner's business (PlantStore).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import PayloadDamagedError, PlantError, UnknownTypeError
from ..fingerprint import file_fingerprint, with_code
from .frozen import CODE_META, CONTENT_META, Pickled, thaw
from .mapped import map_array, mappable
from .payloads import STAT, Payload, PayloadFiles, StatKey, stat_key
from .records import IngredientRecord
from .specs import DATASET, IngredientTypeSpec, builtin_specs, hdf5, is_dataset, new_hdf5

if TYPE_CHECKING:
    import h5py

logger = logging.getLogger(__name__)

UNCACHED = "uncached"  # payload meta of a value sent with use_cache=False
ARRAY = "array"
# Fills the code digests of the classes and functions a pickled value names (see frozen).
CodeOf = Callable[[tuple[Any, ...]], dict[str, str]]
# Told of a value just read from disk that may be kept in memory: (path, frozen value, bytes).
Keep = Callable[[str, Any, int], None]
# Payload meta of a value written where code cannot be signed (a worker): `module:qualname` of
# the classes and functions it names, for the coordinator to add their code (see run.remote).
NAMED = "named"


class PayloadStore:
    def __init__(self, plant_dir: Path, create: bool = True) -> None:
        self.plant_dir = plant_dir
        self.files = PayloadFiles(plant_dir, create)
        self.specs: dict[str, IngredientTypeSpec] = builtin_specs()
        self.custom_specs: list[IngredientTypeSpec] = []
        # payload -> the stat key at which its content was hashed or written by this process
        self.verified: dict[str, StatKey] = {}
        self.open_h5: list[h5py.File] = []
        # What the pipeline script defined, for unpickling values that name it (see frozen.thaw).
        self.script_namespace: dict[str, Any] | None = None
        self.code_of: CodeOf | None = None
        # A worker's store: no code_of here; the names of what values name go in their meta.
        self.names_only = False

    # -- specs ------------------------------------------------------------------------------
    def register_specs(self, specs: list[IngredientTypeSpec]) -> None:
        """Use these specs from now on; one that replaces another spec object of its type
        is closed, as nothing uses it any more."""
        for spec in specs:
            replaced = [s for s in self.custom_specs if s.name == spec.name]
            self.specs[spec.name] = spec
            self.custom_specs = [s for s in self.custom_specs if s.name != spec.name] + [spec]
            _close([s for s in replaced if _wrapped(s) is not _wrapped(spec)])

    def drop_specs(self) -> None:
        """Close the custom specs and forget them: a reload of the script registers its own,
        as a fresh run of it would (PyPlant closed its specs at each plant's shutdown)."""
        dropped, self.custom_specs = self.custom_specs, []
        self.specs = builtin_specs()
        _close(dropped)

    def close_specs(self) -> None:
        _close(self.custom_specs)

    def spec(self, type_name: str) -> IngredientTypeSpec:
        try:
            return self.specs[type_name]
        except KeyError:
            known = ", ".join(sorted(self.specs))
            raise UnknownTypeError(
                f"Ingredient type '{type_name}' is unknown (known: {known}). Register its spec "
                "with plant.register_ingredient_specs([...])."
            ) from None

    # -- writing ----------------------------------------------------------------------------
    def freeze(self, name: str, spec: IngredientTypeSpec, value: Any) -> Any:
        """The value as it is at `send` (see frozen), fingerprinted with the code it names."""
        frozen = spec.freeze(name, value, self.is_payload_file)
        if isinstance(frozen, Pickled) and frozen.named and self.code_of is not None:
            return frozen.with_code(self.code_of(frozen.named))
        if isinstance(frozen, Pickled) and frozen.named and self.names_only:
            return replace(frozen, meta={**frozen.meta, NAMED: names_of(frozen.named)})
        return frozen

    def write(self, name: str, type_name: str, value: Any) -> Payload:
        """Write `value` durably now (file and name on disk before this returns)."""
        spec = self.spec(type_name)
        final = self.files.final_path(name, spec.suffix)
        if not spec.freezes_in_memory:
            payload = self.write_through(name, spec, value, final)
        else:
            frozen = self.freeze(name, spec, value)
            payload = self.files.write_to(final, name, spec, frozen, spec.nbytes(frozen))
            self.known_good(payload)
        self.files.sync_names()
        return payload

    def write_through(
        self, name: str, spec: IngredientTypeSpec, value: Any, final: Path
    ) -> Payload:
        """A custom type: written now, as it is at `send`; consumers read it from its file."""
        payload = self.with_class_code(self.files.write_to(final, name, spec, value), value)
        self.known_good(payload)
        return payload

    def with_class_code(self, payload: Payload, value: Any) -> Payload:
        """A value of a custom type, fingerprinted with the code of its class."""
        if self.names_only and self.code_of is None and payload.fingerprint is not None:
            return replace(payload, meta={**payload.meta, NAMED: names_of((type(value),))})
        code = self.code_of((type(value),)) if self.code_of is not None else {}
        if not code or payload.fingerprint is None:
            return payload
        fingerprint = with_code(payload.fingerprint, code)
        meta = {**payload.meta, CODE_META: code, CONTENT_META: payload.fingerprint}
        return replace(payload, fingerprint=fingerprint, meta=meta)

    def write_allocated(self, name: str, type_name: str, allocation: Any, sent: Any) -> Payload:
        """Storage a spec allocated (see compat.allocation), written now that its reactor
        ended; fingerprinted by content and the code of the value the reactor sent."""
        spec = self.spec(type_name)
        final = self.files.final_path(name, spec.suffix)
        written = self.files.write_to(final, name, spec, allocation)
        payload = self.with_class_code(written, sent)
        self.known_good(payload)
        return payload

    def write_uncached(self, name: str, type_name: str, value: Any) -> Payload:
        """Write `value` now and keep nothing of it in memory (PyPlant's useCache=False)."""
        spec = self.spec(type_name)
        final = self.files.final_path(name, spec.suffix)
        numeric = isinstance(value, np.ndarray) and not value.dtype.hasobject
        if spec.freezes_in_memory and not numeric:  # (freezing would make the array read-only)
            value = self.freeze(name, spec, value)
        payload = self.files.write_to(final, name, spec, value)
        if not spec.freezes_in_memory:
            payload = self.with_class_code(payload, value)
        payload = replace(payload, meta={**payload.meta, UNCACHED: True})
        self.known_good(payload)
        return payload

    def known_good(self, payload: Payload) -> None:
        """This process wrote the payload: its content is right as long as its stat key holds."""
        key = payload.meta.get(STAT)
        if key is not None:
            self.verified[payload.path] = key

    def is_payload_file(self, filename: str) -> bool:
        return Path(filename).parent == self.files.root

    def allocate_file(self, name: str, suffix: str = "") -> Path:
        return self.files.temp_path(name, suffix)

    def allocate_hdf(self, name: str, shape: Any, dtype: Any, **options: Any) -> h5py.Dataset:
        path = self.files.temp_path(name, ".h5", create=False)
        try:
            handle = new_hdf5(str(path))
        except OSError as err:
            path.unlink(missing_ok=True)
            raise self.files.write_error(name, path, err) from err
        try:
            return handle.create_dataset(DATASET, shape=shape, dtype=dtype, **options)
        except Exception:
            handle.close()
            path.unlink()
            raise

    def commit_file(self, name: str, temp: Path) -> tuple[Payload, str]:
        """An allocated file, filled: durable under its final name, fingerprinted."""
        final = self.files.commit(temp, name)
        checksum = file_fingerprint(str(final))
        key = self.files.committed_stat(final)
        payload = Payload(self.files.rel(final), key[0], checksum, {STAT: key}, checksum)
        self.known_good(payload)
        return payload, str(final)

    def commit_hdf(self, name: str, dataset: h5py.Dataset) -> tuple[Payload, h5py.Dataset]:
        """An allocated hdf_array, filled: durable under its final name, reopened read-only."""
        meta = self.spec("hdf_array").describe(dataset)
        temp = Path(dataset.file.filename)
        try:
            dataset.file.close()  # writes what HDF5 still buffers
        except (OSError, RuntimeError) as err:
            temp.unlink(missing_ok=True)
            raise self.files.write_error(name, temp, err) from err
        final = self.files.commit(temp, name)
        key = self.files.committed_stat(final)
        payload = Payload(self.files.rel(final), key[0], None, {**meta, STAT: key})
        handle = hdf5().File(final, "r")
        self.open_h5.append(handle)
        self.known_good(payload)
        return payload, handle[DATASET]

    def remove(self, paths: list[str]) -> None:
        """Delete payloads that no one will commit (a failed or abandoned reactor's)."""
        for path in paths:
            self.files.remove(path)

    # -- reading ----------------------------------------------------------------------------
    def load(self, record: IngredientRecord, budget: int, keep: Keep | None = None) -> Any:
        """The value of a stored payload, checked first (see `check`): contiguous arrays are
        read-only memory maps, other values larger than `budget` are read lazily (out of core);
        `keep` is offered what may stay in memory. A mutable value is each caller's own copy."""
        st = self.files.present(record.path, record.size)
        if st is None:
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) is missing or has the "
                "wrong size."
            )
        spec = self.spec(record.type)
        path = str(self.files.resolve(record.path))
        key = self.check(record, spec, path, st)
        if record.type == ARRAY and mappable(record.meta) and not record.meta.get(UNCACHED):
            return self.mapped(record, path, key)
        out_of_core = record.size > budget
        try:
            held = spec.load_frozen(path, out_of_core)
        except PlantError:  # the spec's own verdict (a missing package): the file is not at fault
            raise
        except Exception as err:
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) cannot be read: {err}"
            ) from err
        if is_dataset(held):
            self.open_h5.append(held.file)
        elif record.meta.get(UNCACHED):
            return own_copy(thaw(held, self.script_namespace))
        elif keep is not None and spec.freezes_in_memory and not out_of_core:
            keep(record.path, held, record.size)
        return thaw(held, self.script_namespace)

    def load_uncached(self, payload: Payload, type_name: str, budget: int) -> Any:
        """A fresh copy of a payload written by write_uncached, read from its file."""
        path = str(self.files.resolve(payload.path))
        held = self.spec(type_name).load_frozen(path, payload.size > budget)
        return own_copy(thaw(held, self.script_namespace))

    def mapped(self, record: IngredientRecord, path: str, key: StatKey) -> Any:
        """A read-only map of the payload checked just before. Not kept warm: the page cache
        holds what was read, and the map goes when its consumers drop it."""
        try:
            array = map_array(path, record.meta, lambda st: stat_key(st) == key)
        except (OSError, ValueError, TypeError) as err:
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) cannot be read: {err}"
            ) from err
        if array is None:
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) changed while it was "
                "being read."
            )
        return array

    def check(
        self, record: IngredientRecord, spec: IngredientTypeSpec, path: str, st: os.stat_result
    ) -> StatKey:
        """Is the payload still what its commit wrote? A payload is never written again, so a
        file with the stat key recorded at its commit (or at which this process hashed or wrote
        it) is; any other is hashed in full against its checksum. Returns the key it holds."""
        key = stat_key(st)
        if key in (record.meta.get(STAT), self.verified.get(record.path)):
            return key
        try:
            good = spec.verify(path, record.checksum)
        except Exception as err:
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) cannot be read: {err}"
            ) from err
        after = self.files.present(record.path, record.size)
        if not good:
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) does not match its "
                "recorded checksum."
            )
        if after is not None and stat_key(after) == key:  # not written while it was hashed
            self.verified[record.path] = key
        return key

    # -- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        self.close_specs()
        for handle in self.open_h5:
            with contextlib.suppress(Exception):
                handle.close()
        self.open_h5.clear()


def _close(specs: list[IngredientTypeSpec]) -> None:
    for spec in specs:
        try:
            spec.close()
        except Exception as err:  # a custom spec's bug must not keep the plant dir locked
            logger.warning("Closing ingredient type %s failed: %s", spec.name, err)


def _wrapped(spec: IngredientTypeSpec) -> Any:
    """The spec object the user registered (an adapted PyPlant-interface spec wraps it)."""
    return getattr(spec, "inner", spec)


def names_of(named: tuple[Any, ...]) -> list[str]:
    return [f"{obj.__module__}:{obj.__qualname__}" for obj in named]


def own_copy(value: Any) -> Any:
    """A value just read for one consumer is its own: arrays are writable, as np.load's are
    (a map of a payload file is copied: the file must not change)."""
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        if value.base is not None:
            return value.copy()
        value.flags.writeable = True
    return value
