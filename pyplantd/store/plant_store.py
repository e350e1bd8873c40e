"""PlantStore: one plant dir, owned by one process — the lock, the manifest, the warm tier in
memory and the background writer that makes payloads durable; the payload files themselves are a
PayloadStore it composes (which other processes may use too, without the lock).

The plant decides *what* to store and when; this class knows *how*. It never imports the plant,
the daemon or the CLI.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import PayloadDamagedError, PlantError, StoreError
from ..sizes import disk_budget, format_size, memory_budget
from ..suggest import unknown
from . import layouts
from .failures import explain_os_error
from .frozen import thaw
from .index_cache import ManifestIndexCache
from .locking import acquire_lock, check_plant_dir
from .manifest import Manifest, ingredient_path
from .mapped import OFFSET, mappable
from .payload_store import ARRAY, CodeOf, PayloadStore
from .payloads import STAT, Payload, stat_key
from .records import HistoryEntry, IngredientRecord, ReactorRecord, Version
from .specs import IngredientTypeSpec
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
            self.payload_store = PayloadStore(self.plant_dir)
        except BaseException as err:
            if hasattr(self, "manifest"):
                self.manifest.close()
            self._lock.close()
            if isinstance(err, OSError):
                raise self._open_error(err) from err
            raise
        self.payloads = self.payload_store.files
        self.reactors = self.manifest.reactors()
        self.ingredients = self.manifest.ingredients()
        self.versions = VersionIndex.from_rows(self.manifest.versions(), self.manifest.version_body)
        self.warm = WarmTier(memory_budget(memory))
        self.disk_budget = disk_budget(disk, self.plant_dir)
        self.writer = Writer(self._written)
        self._state = threading.Lock()  # the writer thread commits while the engine reads
        # Jobs that other processes run and that may still write payloads here: while there
        # are any, a payload the manifest does not name may be one of theirs, not garbage.
        self._jobs_in_flight = 0
        self._jobs_lock = threading.Lock()
        removed = self.sweep()
        if removed:
            logger.info("Removed %d unfinished or orphan payload files.", len(removed))

    def _open_error(self, err: OSError) -> StoreError:
        path = Path(err.filename) if err.filename else self.plant_dir
        reason = explain_os_error(err, self.plant_dir, path) or err.strerror or str(err)
        return StoreError(f"Could not open plant dir {self.plant_dir}: {reason}.")

    # -- budgets ----------------------------------------------------------------------------
    @property
    def memory_budget(self) -> int:
        return self.warm.budget

    def set_memory_budget(self, memory: int | None) -> int:
        """A new warm-tier budget (None: the default, as at open); what it now is."""
        self.warm.set_budget(memory_budget(memory))
        return self.warm.budget

    def set_disk_budget(self, disk: int | None) -> int:
        """A new budget for kept versions (None: the default, as at open); what it now is."""
        self.disk_budget = disk_budget(disk, self.plant_dir)
        return self.disk_budget

    # -- specs ------------------------------------------------------------------------------
    @property
    def specs(self) -> dict[str, IngredientTypeSpec]:
        return self.payload_store.specs

    @property
    def custom_specs(self) -> list[IngredientTypeSpec]:
        return self.payload_store.custom_specs

    def register_specs(self, specs: list[IngredientTypeSpec]) -> None:
        self.payload_store.register_specs(specs)

    def drop_specs(self) -> None:
        """Close the custom specs and forget them (a reload of the script registers its own)."""
        self.payload_store.drop_specs()

    def close_specs(self) -> None:
        self.payload_store.close_specs()

    def spec(self, type_name: str) -> IngredientTypeSpec:
        return self.payload_store.spec(type_name)

    # The daemon's script runs in a namespace that is `__main__` only during its runs: what it
    # defines is unpickled from there (see frozen.thaw).
    @property
    def script_namespace(self) -> dict[str, Any] | None:
        return self.payload_store.script_namespace

    @script_namespace.setter
    def script_namespace(self, namespace: dict[str, Any] | None) -> None:
        self.payload_store.script_namespace = namespace

    # Set by the engine for a run: the code digests of the classes and functions a pickled value
    # names, which its fingerprint covers (see frozen.Pickled.with_code).
    @property
    def code_of(self) -> CodeOf | None:
        return self.payload_store.code_of

    @code_of.setter
    def code_of(self, code_of: CodeOf | None) -> None:
        self.payload_store.code_of = code_of

    # -- writing ----------------------------------------------------------------------------
    def write(self, name: str, type_name: str, value: Any) -> PendingWrite:
        """Freeze `value` as it is now (see store.frozen), keep it warm and queue it for the
        disk. Returns at once, unless values still being written fill the memory budget: then
        it waits for the writer, so that write-behind never holds more than the budget."""
        spec = self.spec(type_name)
        final = self.payloads.final_path(name, spec.suffix)
        if not spec.freezes_in_memory:
            return self._write_through(name, spec, value, final)
        frozen = self.payload_store.freeze(name, spec, value)
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
        return PendingWrite.completed(
            name, self.payload_store.write_through(name, spec, value, final)
        )

    def write_allocated(
        self, name: str, type_name: str, allocation: Any, sent: Any
    ) -> PendingWrite:
        """Storage a spec allocated (see compat.allocation), written now that its reactor
        ended; fingerprinted by content and the code of the value the reactor sent."""
        payload = self.payload_store.write_allocated(name, type_name, allocation, sent)
        return PendingWrite.completed(name, payload)

    def write_uncached(self, name: str, type_name: str, value: Any) -> PendingWrite:
        """Write `value` now and keep nothing of it in memory (PyPlant's useCache=False)."""
        return PendingWrite.completed(
            name, self.payload_store.write_uncached(name, type_name, value)
        )

    def load_uncached(self, payload: Payload, type_name: str) -> Any:
        """A fresh copy of a payload written by write_uncached, read from its file."""
        return self.payload_store.load_uncached(payload, type_name, self.warm.budget)

    def _written(self, pending: PendingWrite) -> None:
        """Writer thread: a payload is durable (or failed)."""
        if pending.failed():
            self.warm.mark_unwritten(pending.path)  # usable for the rest of the run
            return
        payload: Payload = pending.wait()
        self.payload_store.known_good(payload)
        objects = payload.meta.get("python_type") is not None and "shape" not in payload.meta
        self.warm.mark_durable(payload.path, payload.size if objects else None)

    def allocate_file(self, name: str, suffix: str = "") -> Path:
        return self.payload_store.allocate_file(name, suffix)

    def allocate_hdf(self, name: str, shape: Any, dtype: Any, **options: Any) -> h5py.Dataset:
        return self.payload_store.allocate_hdf(name, shape, dtype, **options)

    def commit_file(self, name: str, temp: Path) -> tuple[PendingWrite, str]:
        payload, path = self.payload_store.commit_file(name, temp)
        return PendingWrite.completed(name, payload), path

    def commit_hdf(self, name: str, dataset: h5py.Dataset) -> tuple[PendingWrite, h5py.Dataset]:
        payload, handle = self.payload_store.commit_hdf(name, dataset)
        return PendingWrite.completed(name, payload), handle

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
            self._remove_unreferenced(replaced)
        self.enforce_disk_budget()

    def enforce_disk_budget(self) -> list[Version]:
        """Forget least recently used versions that are not current until under budget."""
        if self.versions.stored_bytes <= self.disk_budget:  # the common case costs nothing
            return []
        with self._state:
            evicted = self.versions.over_budget(self._current_paths(), self.disk_budget)
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

    def _make_current(self, version: Version) -> list[str] | None:
        """Returns the payload paths of the kept version this one replaces, if any."""
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
        if self.jobs_in_flight():
            raise StoreError(
                f"Cannot clean {self.plant_dir} now: {self.jobs_in_flight()} reactor job(s) "
                "of a run are still writing to it from worker processes. Clean when the run "
                "has ended."
            )
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
            old = self.versions.not_current(self._current_paths())
        self._forget_versions(old)
        self.sweep()
        return before - self._payload_bytes()

    # -- payloads written elsewhere ---------------------------------------------------------
    def job_started(self) -> None:
        """A job that writes payloads from another process is in flight (see `sweep`)."""
        with self._jobs_lock:
            self._jobs_in_flight += 1

    def job_ended(self) -> None:
        """That job will write nothing more: it ended, failed, or its process is gone."""
        with self._jobs_lock:
            self._jobs_in_flight = max(0, self._jobs_in_flight - 1)

    def jobs_in_flight(self) -> int:
        with self._jobs_lock:
            return self._jobs_in_flight

    def sweep(self) -> list[str]:
        """Delete temporary files and payloads the manifest does not name; return their names.
        Nothing is deleted while jobs of a run may still write (their payloads are named only
        when the run commits them): the next sweep, after they end, takes what they left."""
        with self._jobs_lock:
            if self._jobs_in_flight:
                return []
            return self.payloads.remove_unreferenced(self.referenced_paths())

    def _payload_bytes(self) -> int:
        return self.payloads.stored_bytes()

    def referenced_paths(self) -> set[str]:
        with self._state:
            return self._current_paths() | self.versions.paths()

    def _current_paths(self) -> set[str]:
        """The payloads of the current ingredients (none decoded for it)."""
        return set(self.ingredients.each(lambda record: record.path, ingredient_path))

    # -- what the plant dir holds (the store's face: callers ask, they do not reach in) -----
    def reactor(self, reactor_id: str) -> ReactorRecord | None:
        """The current record of a reactor that ran, if any."""
        return self.reactors.get(reactor_id)

    def ingredient(self, name: str) -> IngredientRecord | None:
        """The current record of an ingredient, if one is stored."""
        return self.ingredients.get(name)

    def producer_of(self, name: str) -> str | None:
        """The id of the reactor that made the current version of `name`, if stored."""
        record = self.ingredients.get(name)
        return record.producer if record is not None else None

    def has_ingredient(self, name: str) -> bool:
        return name in self.ingredients

    def ingredient_names(self) -> list[str]:
        return sorted(self.ingredients)

    def reactor_records(self) -> dict[str, ReactorRecord]:
        """A copy of every reactor's current record (safe while the writer commits)."""
        with self._state:
            return dict(self.reactors)

    def ingredient_records(self) -> dict[str, IngredientRecord]:
        """A copy of every ingredient's current record (safe while the writer commits)."""
        with self._state:
            return dict(self.ingredients)

    def version(self, reactor_id: str, key: str) -> Version:
        """A kept version of a reactor's results (KeyError if there is none with that key)."""
        return self.versions[(reactor_id, key)]

    def version_counts(self) -> dict[str, int]:
        """How many versions of each reactor's results are kept."""
        with self._state:
            keys = list(self.versions)
        counts: dict[str, int] = {}
        for reactor_id, _ in keys:
            counts[reactor_id] = counts.get(reactor_id, 0) + 1
        return counts

    def payload_path(self, record: IngredientRecord) -> Path:
        """The payload file of a stored ingredient (which may not be written yet)."""
        return self.payloads.resolve(record.path)

    def checked_payload_path(self, record: IngredientRecord) -> Path:
        """The payload file of a stored ingredient, for a reader that opens it apart from the
        store: refused if it is not a plain file of yours (PlantDirError), or is missing or
        of another size (PayloadDamagedError)."""
        if not self.payloads.intact(record.path, record.size):
            raise PayloadDamagedError(
                f"Payload of ingredient '{record.name}' ({record.path}) is missing or has the "
                "wrong size. Run the pipeline again: its producer re-runs."
            )
        return self.payloads.resolve(record.path)

    def on_disk(self, record: IngredientRecord) -> bool:
        """Whether its payload file is written, whole (by size)."""
        return self.payloads.intact(record.path, record.size)

    def memory_use(self) -> dict[str, int]:
        """The warm tier's bytes, its budget, what was spilled and what is still being written."""
        return {
            "warm_bytes": self.warm.warm_bytes,
            "budget": self.warm.budget,
            "spilled_bytes": self.warm.spilled_bytes,
            "writing_bytes": self.writer.pending_bytes(),
        }

    def pending_writes(self) -> list[PendingWrite]:
        """Writes not durable yet, oldest first."""
        return self.writer.pending()

    def drop_unwritten(self) -> None:
        """Forget warm values whose write failed (the run that made them is over)."""
        self.warm.drop_unwritten()

    # -- the run history (in the manifest) ---------------------------------------------------
    def index_cache(self) -> ManifestIndexCache:
        """The code index cache kept in this plant dir's manifest."""
        return ManifestIndexCache(self.manifest)

    def start_run(self, targets: list[str]) -> int:
        return self.manifest.start_run(targets)

    def finish_run(self, run_id: int, status: str, entries: list[HistoryEntry]) -> None:
        self.manifest.finish_run(run_id, status, entries)

    def last_durations(self) -> dict[str, float]:
        return self.manifest.last_durations()

    def last_outcomes(self) -> dict[str, HistoryEntry]:
        return self.manifest.last_outcomes()

    def put_reactor(self, record: ReactorRecord) -> None:
        """Record a reactor's record as current (e.g. one marked to run again)."""
        self.reactors[record.id] = record
        self.manifest.put_reactor(record)

    # -- reading ----------------------------------------------------------------------------
    def remove_foreign_payloads(self, paths: list[str]) -> None:
        """Delete payload files another process wrote and this one never held (a lost or
        cancelled remote job's): nothing of theirs is in the warm tier or the writer's queue,
        so any thread may call this."""
        for path in paths:
            self.payloads.remove(path)

    def intact(self, record: IngredientRecord) -> bool:
        return record.path in self.warm or self.payloads.intact(record.path, record.size)

    def load(self, record: IngredientRecord) -> Any:
        """The value of a stored ingredient: warm if it is, else from disk, checked first (see
        PayloadStore.load); what is read is kept warm when it fits the memory budget."""
        held = self.warm.get(record.path, MISSING)
        if held is not MISSING:
            return thaw(held, self.script_namespace)
        return self.payload_store.load(record, self.warm.budget, self._keep)

    def _keep(self, path: str, held: Any, size: int) -> None:
        self.warm.put(path, held, size, durable=True)

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

    def warm_contents(self) -> list[dict[str, Any]]:
        """Every warm value, most recently used first: its ingredient, bytes and why it is in
        memory (status shows it)."""
        writing = {p.path: p.name for p in self.writer.pending()}
        warm = {entry.key for entry in self.warm.entries()}
        with self._state:
            current = {r.path: r.name for r in self.ingredients.values()}
            # the names of warm values only earlier versions hold (those versions decoded)
            kept = {
                o.path: o.name
                for key in self.versions.using(warm - set(current))
                for o in self.versions[key].outputs
            }
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
            self.payload_store.close()
            self.warm.clear()
            self.manifest.close()
            self._lock.close()


def tier_name(warm: bool, on_disk: bool) -> str:
    """Where a value is: `warm` (memory only), `disk`, `both`, or `missing`."""
    return {(True, True): "both", (True, False): "warm", (False, True): "disk"}.get(
        (warm, on_disk), "missing"
    )


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
