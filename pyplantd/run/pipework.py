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
from ..compat.warehouse import spec_name
from ..config import ConfigBase
from ..errors import AllocationError
from ..fingerprint import file_fingerprint
from ..ingredient import Ingredient
from ..store.specs import IngredientTypeSpec, infer_type
from ..store.writer import PendingWrite
from .progress import ProgressMeter, ProgressReport

if TYPE_CHECKING:
    import h5py

    from ..store.plant_store import PlantStore


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
        if name in self.touched.sent:
            raise AllocationError(
                f"Reactor '{self.reactor_name}' sent ingredient '{name}' twice. Send it once."
            )
        if name in self.touched.allocated:
            type_name = self.touched.allocated[name][0]
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
        type_name = self._type_name(type, None)
        if name in self.touched.allocated or name in self.touched.sent:
            raise AllocationError(f"Ingredient '{name}' was already allocated or sent.")
        handle: Any
        if type_name == Ingredient.Type.file.value:
            handle = str(self._store.allocate_file(name, options.pop("suffix", "")))
        elif type_name == Ingredient.Type.hdf_array.value:
            handle = self._allocate_hdf(name, options)
        else:
            raise AllocationError(
                f"Ingredient type {type_name} cannot be allocated (file and hdf_array can). "
                "Use pipe.send(name, value) instead."
            )
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
        return spec_name(type_arg)  # a spec or spec class, of either interface

    def _note_param(self, name: str) -> None:
        if name not in self.touched.params:
            self.touched.params.append(name)

    def _note_input(self, name: str, source: FingerprintSource) -> None:
        self.touched.inputs.setdefault(name, source)

    def _abandon(self) -> list[str]:
        """Close and list what an unfinished execution left behind, for deletion."""
        leftovers = [sent.payload.path for sent in self.touched.sent.values()]
        for _type_name, handle in self.touched.allocated.values():
            _delete_allocation(handle)
        self.touched.allocated.clear()
        self._release_temporary()
        return leftovers

    def _release_temporary(self) -> None:
        """Delete what allocate_temp gave out: the reactor ended."""
        for handle in self.touched.temporary:
            _delete_allocation(handle)
        self.touched.temporary.clear()

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
        type_name = self._type_name(type, None)
        scratch = f"temp-{name}"
        handle: Any
        if type_name == Ingredient.Type.file.value:
            handle = str(self._store.allocate_file(scratch, options.pop("suffix", "")))
        elif type_name == Ingredient.Type.hdf_array.value:
            handle = self._allocate_hdf(scratch, options)
        else:
            raise AllocationError(
                f"Ingredient type {type_name} cannot be allocated (file and hdf_array can)."
            )
        self.touched.temporary.append(handle)
        return handle


def _delete_allocation(handle: Any) -> None:
    """Close and delete an allocated file (a path) or HDF5 dataset."""
    if isinstance(handle, str):
        Path(handle).unlink(missing_ok=True)
        return
    path = handle.file.filename
    handle.file.close()
    Path(path).unlink(missing_ok=True)
