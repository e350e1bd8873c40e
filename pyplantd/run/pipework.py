"""Pipework: what a running reactor sees — receive, send, allocate, read_config.

A pipework belongs to one execution of one reactor. It records everything the reactor touched
(inputs, params, outputs, subreactors) for the plant to commit; it never decides what runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..compat.names import pyplant_keywords
from ..config import ConfigBase
from ..errors import AllocationError, RunCancelled, UnknownTypeError, also
from ..fingerprint import file_fingerprint
from ..ingredient import Ingredient
from ..store.specs import IngredientTypeSpec, infer_type

# Allocations, progress reports and the writer's types are imported where they are used: a
# script's `from pyplantd import *` (which names Pipework) does not load them.
if TYPE_CHECKING:
    import h5py

    from ..compat.allocation import Allocation
    from ..store.plant_store import PlantStore
    from ..store.writer import PendingWrite
    from .progress import ProgressMeter, ProgressReport


@dataclass(frozen=True)
class Receive:
    """Yielded by a reactor to ask the plant for an ingredient."""

    name: str

    def __repr__(self) -> str:
        return (
            f"<pending ingredient {self.name!r}: write `value = yield pipe.receive"
            f"({self.name!r})` to get its value>"
        )


@dataclass
class Sent:
    """An ingredient a reactor sent. Its value is held by the store (frozen at `send`), never
    here: a run must not keep values alive beyond the memory budget."""

    name: str
    type: str
    payload: PendingWrite  # durable later (write-behind); its path is known now
    handle: Any = None  # of an allocated file or hdf_array: the path or dataset consumers get
    uncached: bool = False  # PyPlant's useCache=False: each consumer reads its own copy from disk


class FingerprintSource(Protocol):
    """Where an input's fingerprint comes from (it may still be being written)."""

    def ready(self) -> bool: ...

    def fingerprint(self) -> str: ...


@dataclass
class Touched:
    """Everything one execution of a reactor read and wrote."""

    inputs: dict[str, FingerprintSource] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # tracked file (absolute) -> fingerprint
    params: list[str] = field(default_factory=list)
    subreactors: list[Callable[..., Any]] = field(default_factory=list)
    sent: dict[str, Sent] = field(default_factory=dict)
    allocated: dict[str, tuple[str, Any]] = field(default_factory=dict)  # name -> (type, handle)
    # sent allocations of PyPlant-interface specs, stored when the reactor ends: name -> (type, ...)
    sealing: dict[str, tuple[str, Allocation]] = field(default_factory=dict)
    temporary: list[Any] = field(default_factory=list)  # allocate_temp handles, dropped at the end


T = TypeVar("T")
_monotonic = time.monotonic  # a module global: the cheapest clock read for progress()

TypeArg = Ingredient.Type | str | type[IngredientTypeSpec] | IngredientTypeSpec | None


class Pipework:
    """The reactor's connection to the plant.

    >>> @ReactorFunc                                                   # doctest: +SKIP
    ... def scale(pipe, config):
    ...     data = yield pipe.receive('data')
    ...     pipe.send('scaled', data * config.factor)
    """

    def __init__(self, reactor_name: str, store: PlantStore, config: ConfigBase) -> None:
        self.reactor_name = reactor_name
        self._store = store
        self.touched = Touched()
        self.config = config._view_for(self._note_param)
        # The scheduler hooks in here to wake consumers.
        self.on_send: Callable[[Sent], Sent] = lambda sent: sent

    def receive(self, name: str) -> Receive:
        """Ask for an ingredient: ``value = yield pipe.receive(name)``."""
        if not isinstance(name, str):
            raise TypeError(f"Ingredient names are strings, not {name!r}.")
        return Receive(name)

    @pyplant_keywords(useCache="use_cache")
    def send(self, name: str, value: Any, type: TypeArg = None, use_cache: bool = True) -> None:
        """Store `value` as ingredient `name`; its type is inferred when not given.

        What is stored and received is the value as it is now: a later change to the object
        is not seen (a sent array becomes read-only; see the README). With ``use_cache=False``
        (PyPlant's ``useCache``) the value is written at once and not kept in memory: every
        consumer gets its own copy, read back from disk.
        """
        if self.stopped:  # its run is over: nothing more reaches the store
            raise RunCancelled()
        if name in self.touched.sent:
            raise AllocationError(
                f"Reactor '{self.reactor_name}' sent ingredient '{name}' twice. Send it once."
            )
        if name in self.touched.allocated:
            from ..compat.allocation import Allocation

            type_name, allocated = self.touched.allocated[name]
            if isinstance(allocated, Allocation):  # stored when the reactor ends (_seal)
                del self.touched.allocated[name]
                allocated.sent = value
                self.touched.sealing[name] = (type_name, allocated)
                # Till then the reactor may receive its own product: what it sent, as PyPlant
                # gave it; nothing else can (no one is told of it yet, and it has no payload).
                own = value if value is not None else allocated.handle
                self.touched.sent[name] = Sent(name, type_name, _stored_at_end(name), own)
                return
            payload, handle = self._send_allocated(name, value)
            self.touched.sent[name] = self.on_send(Sent(name, type_name, payload, handle))
            return
        type_name = self._type_name(type, value)
        if self._store.spec(type_name).allocatable:
            raise AllocationError(
                f"Ingredient '{name}' of type {type_name} must be allocated first: "
                f"handle = pipe.allocate({name!r}, Ingredient.Type.{type_name}, ...)."
            )
        if not use_cache:
            payload = self._store.write_uncached(name, type_name, value)
            self.touched.sent[name] = self.on_send(Sent(name, type_name, payload, uncached=True))
            return
        payload = self._store.write(name, type_name, value)
        self.touched.sent[name] = self.on_send(Sent(name, type_name, payload))

    def allocate(self, name: str, type: TypeArg, **options: Any) -> Any:
        """Storage the reactor fills itself, committed by ``pipe.send(name, handle)``.

        ``Ingredient.Type.file`` gives a path (optional ``suffix='.png'``);
        ``Ingredient.Type.hdf_array`` gives a writable h5py dataset
        (``shape=..., dtype=..., chunks=..., compression=...``).
        """
        if self.stopped:
            raise RunCancelled()
        type_name = self._allocated_type(type)
        if (
            name in self.touched.allocated
            or name in self.touched.sent
            or name in self.touched.sealing
        ):
            raise AllocationError(f"Ingredient '{name}' was already allocated or sent.")
        handle: Any
        if type_name == Ingredient.Type.file.value:
            handle = str(self._store.allocate_file(name, options.pop("suffix", "")))
        elif type_name == Ingredient.Type.hdf_array.value:
            handle = self._allocate_hdf(name, options)
        else:
            allocation = self._allocate_pyplant(type_name, name, options)
            self.touched.allocated[name] = (type_name, allocation)
            return allocation.handle
        self.touched.allocated[name] = (type_name, handle)
        return handle

    @pyplant_keywords(paramName="name")
    def read_config(self, name: str) -> Any:
        """A config parameter by name; the reactor re-runs when its value changes."""
        return self.config._read(name)

    @pyplant_keywords(paramName="name")
    def read_config_unregistered(self, name: str) -> Any:
        """A config parameter that does not make the reactor depend on it."""
        return self.config.peek(name)

    def track_file(self, path: str | os.PathLike[str]) -> str:
        """Declare a data file the reactor reads: when its content changes, the reactor re-runs
        (the daemon also watches it). Returns the path, to open as usual.

        >>> raw = pd.read_csv(pipe.track_file('data/raw.csv'))    # doctest: +SKIP
        """
        absolute = os.path.abspath(path)
        try:
            self.touched.files[absolute] = file_fingerprint(absolute)
        except OSError as err:
            raise FileNotFoundError(
                f"Reactor '{self.reactor_name}' tracks {path}, which cannot be read: "
                f"{err.strerror or err}."
            ) from err
        return os.fspath(path)

    # -- internals --------------------------------------------------------------------------
    def _allocate_pyplant(self, type_name: str, name: str, options: dict[str, Any]) -> Allocation:
        """Storage from a spec of PyPlant's interface (`allocate(warehouse, name, ...)`)."""
        from ..compat.spec_adapter import PyPlantSpec  # PyPlant scripts only

        spec = self._store.spec(type_name)
        if not isinstance(spec, PyPlantSpec):  # PyPlant: a type it cannot allocate, ValueError
            raise also(ValueError, AllocationError(
                f"Ingredient type {type_name} cannot be allocated (file, hdf_array and "
                "PyPlant-interface specs with isAllocatable can). Use pipe.send(name, value)."
            ))  # fmt: skip
        return spec.allocate(name, options)

    def _allocated_type(self, type_arg: TypeArg) -> str:
        """The type name to allocate; an unknown one is also a ValueError, as in PyPlant."""
        try:
            type_name = self._type_name(type_arg, None)
            self._store.spec(type_name)
        except UnknownTypeError as err:
            raise also(ValueError, err) from None
        return type_name

    def _seal(self) -> None:
        """The reactor ended: store the PyPlant-spec allocations it sent, as they are now
        (content-fingerprinted), and release the spec's own copy. Consumers get them from now."""
        while self.touched.sealing:
            name = next(iter(self.touched.sealing))
            type_name, allocation = self.touched.sealing[name]
            payload = self._store.write_allocated(name, type_name, allocation, allocation.sent)
            del self.touched.sealing[name]
            allocation.discard()
            self.touched.sent[name] = self.on_send(Sent(name, type_name, payload))

    def _allocate_hdf(self, name: str, options: dict[str, Any]) -> h5py.Dataset:
        if "shape" not in options:
            raise AllocationError(f"Allocating hdf_array '{name}' needs shape=(...).")
        shape = options.pop("shape")
        dtype = options.pop("dtype", None) or "float32"
        return self._store.allocate_hdf(name, shape, dtype, **options)

    def _send_allocated(self, name: str, value: Any) -> tuple[PendingWrite, Any]:
        allocated_type, handle = self.touched.allocated.pop(name)
        if allocated_type == Ingredient.Type.file.value:
            if str(value) != handle:
                raise AllocationError(
                    f"File ingredient '{name}' must be sent with the path allocate() returned "
                    f"({handle}), not {value!r}."
                )
            return self._store.commit_file(name, Path(handle))
        if value is not handle:
            raise AllocationError(
                f"hdf_array '{name}' must be sent with the dataset allocate() returned."
            )
        return self._store.commit_hdf(name, handle)

    def _type_name(self, type_arg: TypeArg, value: Any) -> str:
        if type_arg is None:
            return infer_type(value, self._store.custom_specs)
        if isinstance(type_arg, Ingredient.Type):
            return type_arg.value
        if isinstance(type_arg, str):
            return self._store.spec(type_arg).name
        from ..compat.warehouse import spec_name

        return spec_name(type_arg)  # a spec or spec class, of either interface

    def _note_param(self, name: str) -> None:
        if name not in self.touched.params:
            self.touched.params.append(name)

    def _note_input(self, name: str, source: FingerprintSource) -> None:
        self.touched.inputs.setdefault(name, source)

    def _abandon(self) -> list[str]:
        """Close and list what an unfinished execution left behind, for deletion."""
        leftovers = [s.payload.path for s in self.touched.sent.values() if s.payload.path]
        for _type_name, handle in [
            *self.touched.allocated.values(),
            *self.touched.sealing.values(),
        ]:
            _delete_allocation(handle)
        self.touched.allocated.clear()
        self.touched.sealing.clear()
        self._release_temporary()
        return leftovers

    def _release_temporary(self) -> None:
        """Delete what allocate_temp gave out: the reactor ended."""
        for handle in self.touched.temporary:
            _delete_allocation(handle)
        self.touched.temporary.clear()

    # Set when the run abandons this execution while its code still runs (on another thread):
    # its next send or allocate raises RunCancelled instead of writing. (Class-level: see below.)
    stopped = False

    # -- progress ---------------------------------------------------------------------------
    # Class-level defaults: PipeworkMock does not call __init__, and progress works there too.
    _progress_due = 0.0  # monotonic time before which a report is not wanted (throttling)
    _progress_meter: ProgressMeter | None = None
    on_progress: Callable[[ProgressReport], None] = staticmethod(lambda report: None)

    def progress(self, done: float, total: float | None = None, note: str = "") -> None:
        """Say how far the reactor is: the live views show a bar with the rate and the time
        left, and the daemon publishes it. Cheap enough for a tight loop (a few reports a
        second go out; the other calls cost a clock read).

        >>> for i, row in enumerate(rows):                           # doctest: +SKIP
        ...     pipe.progress(i + 1, len(rows), note=row.name)
        """
        if done != total and _monotonic() < self._progress_due:
            return
        if self._progress_meter is None:
            from .progress import ProgressMeter

            self._progress_meter = ProgressMeter(lambda report: self.on_progress(report))
        self._progress_due = self._progress_meter.report(done, total, note)

    def track(self, iterable: Iterable[T], total: float | None = None) -> Iterator[T]:
        """Iterate `iterable`, reporting progress after each item (`total` defaults to its
        length, when it has one).

        >>> for frame in pipe.track(frames):                         # doctest: +SKIP
        ...     process(frame)
        """
        if total is None and isinstance(iterable, Sized):
            total = len(iterable)
        return self._tracked(iterable, total)

    def _tracked(self, iterable: Iterable[T], total: float | None) -> Iterator[T]:
        self.progress(0, total)
        for done, item in enumerate(iterable, 1):
            yield item
            self.progress(done, total)

    # -- PyPlant's names --------------------------------------------------------------------
    @pyplant_keywords(paramName="name")
    def register_config_param(self, name: str) -> None:
        """Make the reactor depend on a parameter without reading it."""
        if not self.config.is_auxiliary(name):
            self._note_param(name)

    def allocate_temp(self, name: str, type: TypeArg, **options: Any) -> Any:
        """Scratch storage like `allocate` gives (a file path or an h5py dataset), deleted when
        the reactor ends; it is not an ingredient and is never sent."""
        type_name = self._allocated_type(type)
        scratch = f"temp-{name}"
        handle: Any
        if type_name == Ingredient.Type.file.value:
            handle = str(self._store.allocate_file(scratch, options.pop("suffix", "")))
        elif type_name == Ingredient.Type.hdf_array.value:
            handle = self._allocate_hdf(scratch, options)
        else:  # PyPlant's name for it, and its deallocate when the reactor ends
            allocation = self._allocate_pyplant(type_name, f"temp_{name}", options)
            self.touched.temporary.append(allocation)
            return allocation.handle
        self.touched.temporary.append(handle)
        return handle


def _stored_at_end(name: str) -> PendingWrite:
    """The payload of a sent allocation before its reactor ends: none yet (waiting for it
    would wait for ever, so it is an error)."""
    from ..store.writer import PendingWrite

    pending = PendingWrite(name, "", 0)
    pending._finish(None, AllocationError(f"Ingredient '{name}' is stored when its reactor ends."))
    return pending


def _delete_allocation(handle: Any) -> None:
    """Close and delete an allocated file (a path), HDF5 dataset or PyPlant-spec allocation."""
    from ..compat.allocation import Allocation

    if isinstance(handle, Allocation):
        handle.discard()
        return
    if isinstance(handle, str):
        Path(handle).unlink(missing_ok=True)
        return
    path = handle.file.filename
    handle.file.close()
    Path(path).unlink(missing_ok=True)
