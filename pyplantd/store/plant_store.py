"""PlantStore: one plant dir, owned by one process — the lock, the manifest, payload files, the
warm tier in memory and the background writer that makes payloads durable.

The plant decides *what* to store and when; this class knows *how*. It never imports the plant,
the daemon or the CLI.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import PayloadDamagedError, PlantError, StoreError
from ..fingerprint import file_fingerprint, with_code
from ..sizes import default_disk_budget, default_memory_budget, format_size
from ..suggest import unknown
from . import layouts
from .failures import explain_os_error
from .frozen import CODE_META, CONTENT_META, Pickled, thaw
from .locking import acquire_lock, check_plant_dir
from .manifest import Manifest
from .mapped import OFFSET, map_array, mappable
from .payloads import STAT, Payload, PayloadFiles, StatKey, stat_key
from .records import IngredientRecord, Version
from .specs import DATASET, IngredientTypeSpec, builtin_specs, hdf5, is_dataset, new_hdf5
from .versions import VersionIndex
from .warm import MISSING, WarmTier
from .writer import PendingWrite, Writer

if TYPE_CHECKING:
    import h5py

logger = logging.getLogger(__name__)


class PlantStore:
    def __init__(
        self,
        plant_dir: str | os.PathLike[str],
        memory: int | None = None,
        disk: int | None = None,
    ) -> None:
        self.plant_dir = Path(plant_dir).expanduser().absolute()
        try:
            check_plant_dir(self.plant_dir)  # before anything in it is read or written
            self._lock = acquire_lock(self.plant_dir)
        except OSError as err:
            raise self._open_error(err) from err
        try:
            self.manifest = Manifest(self.plant_dir)
            self.payloads = PayloadFiles(self.plant_dir)
        except BaseException as err:
            if hasattr(self, "manifest"):
                self.manifest.close()
            self._lock.close()
            if isinstance(err, OSError):
                raise self._open_error(err) from err
            raise
        self.specs: dict[str, IngredientTypeSpec] = builtin_specs()
        self.custom_specs: list[IngredientTypeSpec] = []
        self.reactors = self.manifest.reactors()
        self.ingredients = self.manifest.ingredients()
        self.versions = VersionIndex(self.manifest.versions())
        self.warm = WarmTier(memory if memory is not None else default_memory_budget())
        self.disk_budget = disk if disk is not None else default_disk_budget(self.plant_dir)
        self.writer = Writer(self._written)
        self._state = threading.Lock()  # the writer thread commits while the engine reads
        # payload -> the stat key at which its content was hashed or written by this process
        self._verified: dict[str, StatKey] = {}
        self._open_h5: list[h5py.File] = []
        # The daemon's script runs in a namespace that is `__main__` only during its runs: what
        # it defines is unpickled from there (see frozen.thaw).
        self.script_namespace: dict[str, Any] | None = None
        # Set by the engine for a run: the code digests of the classes and functions a pickled
        # value names, which its fingerprint covers (see frozen.Pickled.with_code).
        self.code_of: Callable[[tuple[Any, ...]], dict[str, str]] | None = None
        removed = self.payloads.remove_unreferenced(self.referenced_paths())
        if removed:
            logger.info("Removed %d unfinished or orphan payload files.", len(removed))

    def _open_error(self, err: OSError) -> StoreError:
        path = Path(err.filename) if err.filename else self.plant_dir
        reason = explain_os_error(err, self.plant_dir, path) or err.strerror or str(err)
        return StoreError(f"Could not open plant dir {self.plant_dir}: {reason}.")

    # -- specs ------------------------------------------------------------------------------
    def register_specs(self, specs: list[IngredientTypeSpec]) -> None:
        for spec in specs:
            self.specs[spec.name] = spec
            self.custom_specs = [s for s in self.custom_specs if s.name != spec.name] + [spec]

    def close_specs(self) -> None:
        for spec in self.custom_specs:
            try:
                spec.close()
            except Exception as err:  # a custom spec's bug must not keep the plant dir locked
                logger.warning("Closing ingredient type %s failed: %s", spec.name, err)

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
    def write(self, name: str, type_name: str, value: Any) -> PendingWrite:
        """Freeze `value` as it is now (see store.frozen), keep it warm and queue it for the
        disk. Returns at once, unless values still being written fill the memory budget: then
        it waits for the writer, so that write-behind never holds more than the budget."""
        spec = self.spec(type_name)
        final = self.payloads.final_path(name, spec.suffix)
        if not spec.freezes_in_memory:
            return self._write_through(name, spec, value, final)
        frozen = self._with_code(spec.freeze(name, value, self._is_payload_file))
        nbytes = spec.nbytes(frozen)
        size = nbytes if nbytes is not None else sys.getsizeof(frozen)
        pending = PendingWrite(name, self.payloads.rel(final), size)
        if size > self.warm.budget:
            logger.warning(
                "Ingredient '%s' (%s) is larger than the memory budget (%s): it will be served "
                "from disk.", name, format_size(size), format_size(self.warm.budget),
            )  # fmt: skip
        self.warm.wait_for_room(size)
        self.warm.put(pending.path, frozen, size, durable=False)
        previous = self.ingredients.get(name) if type_name == ARRAY else None

        def job() -> Payload:
            if previous is not None:
                self._learn_layout(previous, frozen)
            return self.payloads.write_to(final, name, spec, frozen, nbytes)

        return self.writer.submit(pending, job)

    def _learn_layout(self, previous: IngredientRecord, array: Any) -> None:
        """An array sent again with the dtype and shape of its stored payload is laid out as
        that payload was (see store.layouts): no h5py to import for it."""
        meta = previous.meta
        if not isinstance(array, np.ndarray) or not mappable(meta):
            return
        if np.dtype(meta["dtype"]).str != array.dtype.str or tuple(meta["shape"]) != array.shape:
            return
        committed = meta.get(STAT)
        try:
            path = str(self.payloads.resolve(previous.path))
        except PlantError:
            return
        layouts.learn(
            path, array.dtype, array.shape, meta[OFFSET], lambda st: stat_key(st) == committed
        )

    def _write_through(
        self, name: str, spec: IngredientTypeSpec, value: Any, final: Path
    ) -> PendingWrite:
        """A custom type: written now, as it is at `send`; consumers read it from its file."""
        payload = self._payload_with_code(self.payloads.write_to(final, name, spec, value), value)
        self._known_good(payload)
        return PendingWrite.completed(name, payload)

    def _known_good(self, payload: Payload) -> None:
        """This process wrote the payload: its content is right as long as its stat key holds."""
        key = payload.meta.get(STAT)
        if key is not None:
            self._verified[payload.path] = key

    def _is_payload_file(self, filename: str) -> bool:
        return Path(filename).parent == self.payloads.root

    def _with_code(self, frozen: Any) -> Any:
        """A value pickled at `send`, fingerprinted with the code of what it names."""
        if isinstance(frozen, Pickled) and frozen.named and self.code_of is not None:
            return frozen.with_code(self.code_of(frozen.named))
        return frozen

    def _payload_with_code(self, payload: Payload, value: Any) -> Payload:
        """A value of a custom type, fingerprinted with the code of its class."""
        code = self.code_of((type(value),)) if self.code_of is not None else {}
        if not code or payload.fingerprint is None:
            return payload
        fingerprint = with_code(payload.fingerprint, code)
        meta = {**payload.meta, CODE_META: code, CONTENT_META: payload.fingerprint}
        return replace(payload, fingerprint=fingerprint, meta=meta)

    def write_uncached(self, name: str, type_name: str, value: Any) -> PendingWrite:
        """Write `value` now and keep nothing of it in memory (PyPlant's useCache=False)."""
        spec = self.spec(type_name)
        final = self.payloads.final_path(name, spec.suffix)
        numeric = isinstance(value, np.ndarray) and not value.dtype.hasobject
        if spec.freezes_in_memory and not numeric:  # (freezing would make the array read-only)
            value = self._with_code(spec.freeze(name, value, self._is_payload_file))
        payload = self.payloads.write_to(final, name, spec, value)
        if not spec.freezes_in_memory:
            payload = self._payload_with_code(payload, value)
        payload = replace(payload, meta={**payload.meta, UNCACHED: True})
        self._known_good(payload)
        return PendingWrite.completed(name, payload)

    def load_uncached(self, payload: Payload, type_name: str) -> Any:
        """A fresh copy of a payload written by write_uncached, read from its file."""
        path = str(self.payloads.resolve(payload.path))
        held = self.spec(type_name).load_frozen(path, payload.size > self.warm.budget)
        return own_copy(thaw(held, self.script_namespace))

    def _written(self, pending: PendingWrite) -> None:
        """Writer thread: a payload is durable (or failed)."""
        if pending.failed():
            self.warm.mark_unwritten(pending.path)  # usable for the rest of the run
            return
        payload: Payload = pending.wait()
        self._known_good(payload)
        objects = payload.meta.get("python_type") is not None and "shape" not in payload.meta
        self.warm.mark_durable(payload.path, payload.size if objects else None)

    def allocate_file(self, name: str, suffix: str = "") -> Path:
        return self.payloads.temp_path(name, suffix)

    def allocate_hdf(self, name: str, shape: Any, dtype: Any, **options: Any) -> h5py.Dataset:
        path = self.payloads.temp_path(name, ".h5", create=False)
        try:
            handle = new_hdf5(str(path))
        except OSError as err:
            path.unlink(missing_ok=True)
            raise self.payloads.write_error(name, path, err) from err
        try:
            return handle.create_dataset(DATASET, shape=shape, dtype=dtype, **options)
        except Exception:
            handle.close()
            path.unlink()
            raise

    def commit_file(self, name: str, temp: Path) -> tuple[PendingWrite, str]:
        final = self.payloads.commit(temp, name)
        checksum = file_fingerprint(str(final))
        key = self.payloads.committed_stat(final)
        payload = Payload(self.payloads.rel(final), key[0], checksum, {STAT: key}, checksum)
        self._known_good(payload)
        return PendingWrite.completed(name, payload), str(final)

    def commit_hdf(self, name: str, dataset: h5py.Dataset) -> tuple[PendingWrite, h5py.Dataset]:
        meta = self.spec("hdf_array").describe(dataset)
        temp = Path(dataset.file.filename)
        try:
            dataset.file.close()  # writes what HDF5 still buffers
        except (OSError, RuntimeError) as err:
            temp.unlink(missing_ok=True)
            raise self.payloads.write_error(name, temp, err) from err
        final = self.payloads.commit(temp, name)
        key = self.payloads.committed_stat(final)
        payload = Payload(self.payloads.rel(final), key[0], None, {**meta, STAT: key})
        handle = hdf5().File(final, "r")
        self._open_h5.append(handle)
        self._known_good(payload)
        return PendingWrite.completed(name, payload), handle[DATASET]

    def discard(self, paths: list[str]) -> None:
        """Delete payloads nobody will use (a failed reactor's, an evicted version's)."""
        if not paths:
            return
        writing = {p.path for p in self.writer.pending()}
        if writing & set(paths):
            self.writer.flush()  # let the write finish, or it would land after the delete
        for path in paths:
            self.warm.drop(path)
            self.payloads.remove(path)

    def commit(self, version: Version) -> None:
        """Record a finished reactor; its outputs become the current ingredients. Earlier
        versions stay (an undo serves them) until the disk budget needs their space."""
        self.manifest.commit_reactor(version)
        replaced = self._make_current(version)
        if replaced is not None:  # same inputs again: the older copy is no longer reachable
            self._remove_unreferenced([o.path for o in replaced.outputs])
        self.enforce_disk_budget()

    def enforce_disk_budget(self) -> list[Version]:
        """Forget least recently used versions that are not current until under budget."""
        if self.versions.stored_bytes <= self.disk_budget:  # the common case costs nothing
            return []
        with self._state:
            current = {o.path for o in self.ingredients.values()}
            evicted = self.versions.over_budget(current, self.disk_budget)
        self._forget_versions(evicted)
        return evicted

    def _forget_versions(self, versions: list[Version]) -> None:
        if not versions:
            return
        keys = [(v.record.id, v.key) for v in versions]
        with self._state:
            for key in keys:
                self.versions.remove(key)
        self.manifest.forget_versions(keys)
        self._remove_unreferenced([o.path for v in versions for o in v.outputs])

    def _remove_unreferenced(self, paths: list[str]) -> None:
        still_used = self.referenced_paths()
        for path in paths:
            if path not in still_used:
                self.warm.drop(path)
                self.payloads.remove(path)

    def commit_later(self, name: str, build: Callable[[], Version]) -> PendingWrite:
        """Commit the version `build()` makes on the writer thread, after every payload queued
        so far (its own and its inputs') is durable. Returns at once."""

        def job() -> Version:
            version = build()  # raises if a payload it refers to could not be written
            try:
                self.payloads.sync_names()
                self.commit(version)
            except (OSError, StoreError) as err:  # not recorded: its payloads only take space
                self._remove_unreferenced([o.path for o in version.outputs])
                if isinstance(err, StoreError):
                    raise
                reason = explain_os_error(err, self.plant_dir, self.payloads.root) or err
                raise StoreError(
                    f"Could not record the results of reactor '{name}' in {self.plant_dir}: "
                    f"{reason}."
                ) from err
            return version

        pending = PendingWrite(name, "", 0)
        return self.writer.submit(pending, job, after=lambda _done: None)

    def restore(self, version: Version) -> None:
        """Serve an earlier version of a reactor's results again."""
        self.manifest.restore_version(version)
        self._make_current(version)

    def _make_current(self, version: Version) -> Version | None:
        with self._state:
            self.reactors[version.record.id] = version.record
            for out in version.outputs:
                self.ingredients[out.name] = out
            return self.versions.add(version)

    def versions_of(self, reactor_id: str) -> list[Version]:
        """Earlier results of a reactor, most recently used first."""
        with self._state:
            return self.versions.of(reactor_id)

    def forget(self, names: list[str]) -> None:
        """Drop damaged or cleaned ingredients from the manifest (their files go too)."""
        self.writer.flush()  # no commit may bring them back behind our back
        with self._state:
            records = [self.ingredients.pop(n) for n in names if n in self.ingredients]
            dead = {r.path for r in records}
            doomed = self.versions.using(dead)
            for key in doomed:
                self.versions.remove(key)
        self.manifest.forget_ingredients(names)
        self.manifest.forget_versions(doomed)
        self._remove_unreferenced(sorted(dead))

    def clean(self, names: list[str] | None = None, everything: bool = False) -> int:
        """Remove stored results; returns the bytes freed.

        No arguments: every version but the current ones. `names`: those ingredients (their
        producers re-run next time). `everything`: all results; the run history stays.
        """
        self.writer.flush()
        before = self._payload_bytes()
        if everything or names:
            missing = sorted(set(names or []) - set(self.ingredients))
            if missing:
                raise StoreError(
                    " ".join(unknown("Ingredient", n, self.ingredients, "the plant dir")
                             for n in missing)
                )  # fmt: skip
            self.forget(list(self.ingredients) if everything else list(names or []))
        if everything:
            for reactor_id in list(self.reactors):
                self.manifest.forget_reactor(reactor_id)
            self.reactors.clear()
        with self._state:
            old = self.versions.not_current({o.path for o in self.ingredients.values()})
        self._forget_versions(old)
        self.payloads.remove_unreferenced(self.referenced_paths())
        return before - self._payload_bytes()

    def _payload_bytes(self) -> int:
        return self.payloads.stored_bytes()

    def referenced_paths(self) -> set[str]:
        with self._state:
            return {i.path for i in self.ingredients.values()} | self.versions.paths()

    # -- reading ----------------------------------------------------------------------------
    def intact(self, record: IngredientRecord) -> bool:
        return record.path in self.warm or self.payloads.intact(record.path, record.size)

    def load(self, record: IngredientRecord) -> Any:
        """The value of a stored ingredient: warm if it is, else from disk, checked first (see
        `_check`); contiguous arrays are read-only memory maps, read only where a consumer
        looks, and other arrays larger than the memory budget are read lazily (out of core). A
        mutable value is each caller's own copy (see store.frozen)."""
        held = self.warm.get(record.path, MISSING)
        if held is not MISSING:
            return thaw(held, self.script_namespace)
        st = self.payloads.present(record.path, record.size)
        if st is None:
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) is missing or has the "
                "wrong size."
            )
        spec = self.spec(record.type)
        path = str(self.payloads.resolve(record.path))
        key = self._check(record, spec, path, st)
        if record.type == ARRAY and mappable(record.meta) and not record.meta.get(UNCACHED):
            return self._mapped(record, path, key)
        out_of_core = record.size > self.warm.budget
        try:
            held = spec.load_frozen(path, out_of_core)
        except PlantError:  # the spec's own verdict (a missing package): the file is not at fault
            raise
        except Exception as err:
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) cannot be read: {err}"
            ) from err
        if is_dataset(held):
            self._open_h5.append(held.file)
        elif record.meta.get(UNCACHED):
            return own_copy(thaw(held, self.script_namespace))
        elif spec.freezes_in_memory and not out_of_core:
            self.warm.put(record.path, held, record.size, durable=True)
        return thaw(held, self.script_namespace)

    def _mapped(self, record: IngredientRecord, path: str, key: StatKey) -> Any:
        """A read-only map of the payload checked just before. Not kept warm: the page cache
        holds what was read, and the map goes when its consumers drop it (memory stays bounded
        by the budget)."""
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

    def load_sent(self, name: str, type_name: str, pending: PendingWrite) -> Any:
        """The value of a payload written in this run: warm, else (dropped once durable, or
        written through) from its file."""
        held = self.warm.get(pending.path, MISSING)
        if held is not MISSING:
            return thaw(held, self.script_namespace)
        return self.load(output_record(pending, name, "", type_name))

    def sent_fingerprint(self, type_name: str, pending: PendingWrite) -> str:
        """The fingerprint the writer records for a payload of this run, from memory when it
        is still being written (equal to what the writer computes: the value is frozen)."""
        held = self.warm.peek(pending.path)
        if not pending.done() and held is not MISSING:
            fingerprint = self.spec(type_name).value_fingerprint(held)
            if fingerprint is not None:
                return fingerprint
        return str(pending.wait().fingerprint)

    def _check(
        self, record: IngredientRecord, spec: IngredientTypeSpec, path: str, st: os.stat_result
    ) -> StatKey:
        """Is the payload still what its commit wrote? A payload is never written again, so a
        file with the stat key recorded at its commit (or at which this process hashed or wrote
        it) is; any other is hashed in full against its checksum. Returns the key it holds."""
        key = stat_key(st)
        if key in (record.meta.get(STAT), self._verified.get(record.path)):
            return key
        try:
            good = spec.verify(path, record.checksum)
        except Exception as err:
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) cannot be read: {err}"
            ) from err
        after = self.payloads.present(record.path, record.size)
        if not good:
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) does not match its "
                "recorded checksum."
            )
        if after is not None and stat_key(after) == key:  # not written while it was hashed
            self._verified[record.path] = key
        return key

    def warm_contents(self) -> list[dict[str, Any]]:
        """Every warm value, most recently used first: its ingredient, bytes and why it is in
        memory (status shows it)."""
        writing = {p.path: p.name for p in self.writer.pending()}
        with self._state:
            current = {r.path: r.name for r in self.ingredients.values()}
            kept = {o.path: o.name for key in self.versions for o in self.versions[key].outputs}
        rows = []
        for entry in reversed(self.warm.entries()):
            name = current.get(entry.key) or kept.get(entry.key) or writing.get(entry.key, "?")
            if entry.state == "writing":
                why = "sent in this run, held until it is on disk"
            elif entry.state == "unwritten":
                why = "its write failed: memory holds the only copy until the run ends"
            elif entry.key in current:
                why = "current value"
            elif entry.key in kept:
                why = "earlier version, kept for an undo until the budget needs its room"
            else:
                why = "no longer used"
            rows.append({"name": name, "bytes": entry.size, "why": why})
        return rows

    def tier(self, record: IngredientRecord) -> str:
        """warm (in memory only) / disk / both / missing, for listings."""
        return tier_name(record.path in self.warm, self.payloads.intact(record.path, record.size))

    # -- lifetime ---------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        return self.writer.flush(timeout)

    def close(self, timeout: float | None = None) -> None:
        try:
            self.writer.close(timeout)
        finally:
            self.close_specs()
            for handle in self._open_h5:
                with contextlib.suppress(Exception):
                    handle.close()
            self._open_h5.clear()
            self.warm.clear()
            self.manifest.close()
            self._lock.close()


UNCACHED = "uncached"  # payload meta of a value sent with use_cache=False
ARRAY = "array"


def tier_name(warm: bool, on_disk: bool) -> str:
    """Where a value is: `warm` (memory only), `disk`, `both`, or `missing`."""
    return {(True, True): "both", (True, False): "warm", (False, True): "disk"}.get(
        (warm, on_disk), "missing"
    )


def own_copy(value: Any) -> Any:
    """A value just read for one consumer is its own: arrays are writable, as np.load's are
    (a map of a payload file is copied: the file must not change)."""
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        if value.base is not None:
            return value.copy()
        value.flags.writeable = True
    return value


def output_record(
    pending: PendingWrite, name: str, producer: str, type_name: str
) -> IngredientRecord:
    """The ingredient record of a durable payload (waits for it; raises its write error)."""
    payload: Payload = pending.wait()
    assert payload.fingerprint is not None
    return IngredientRecord(
        name, producer, type_name, payload.fingerprint, payload.path, payload.size,
        payload.meta, 0.0, payload.checksum,
    )  # fmt: skip
