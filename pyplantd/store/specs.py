"""Ingredient type specs: how each type of value is written to, read from and checked on disk.

Custom types subclass IngredientTypeSpec and are registered on the plant. Writes always go to a
temporary path that the payload layer renames into place, so a spec never has to be atomic itself.
h5py is only imported in store/, and only when HDF5 is first used (it costs ~30 ms at start).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import xxhash

from ..fingerprint import (
    PICKLE_PROTOCOL,
    array_fingerprint,
    array_hasher,
    file_fingerprint,
    hash_block,
)
from ..ingredient import Ingredient
from . import layouts
from .frozen import (
    Pickled,
    freeze_array,
    is_immutable,
    pickle_at_send,
    pickle_object_array,
    pickled,
)
from .mapped import contiguous_layout
from .rawio import Background, start_writeback, write_all

if TYPE_CHECKING:
    import h5py

DATASET = layouts.DATASET


def hdf5() -> Any:
    """The h5py module, imported on first use."""
    import h5py

    return h5py


def is_dataset(value: Any) -> bool:
    """An h5py Dataset? (If h5py was never imported, nothing can be one.)"""
    # getattr: another thread may be importing h5py right now (partly initialized)
    dataset_type = getattr(sys.modules.get("h5py"), "Dataset", None)
    return dataset_type is not None and isinstance(value, dataset_type)


NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_BINARY", 0)


def new_file(path: str) -> int:
    """Create `path` for writing, owner-only; never a file or link that was there (O_EXCL)."""
    return os.open(path, NEW_FILE, 0o600)


def new_hdf5(path: str) -> Any:
    """A new HDF5 file at `path`: created exclusively ("x": O_EXCL), then made owner-only
    (HDF5 creates it by the umask alone)."""
    handle = hdf5().File(path, "x")
    os.chmod(path, 0o600)
    return handle


_SLICE_BYTES = 64 * 2**20  # arrays are written and hashed in slices: no copy of the whole array


@dataclass(frozen=True)
class Written:
    """What writing a value produced: its content fingerprint and the file's checksum."""

    fingerprint: str
    checksum: str
    layout: dict[str, Any] = field(default_factory=dict)  # where in the file (see store.mapped)


class IngredientTypeSpec(ABC):
    """How to store one kind of value. Subclass it for custom types and register it with
    ``plant.register_ingredient_specs([MySpec()])``; reactors then send with
    ``pipe.send(name, value, type=MySpec)`` (or let it be inferred through ``is_instance``).

    >>> class TextSpec(IngredientTypeSpec):
    ...     name = 'text'
    ...     suffix = '.txt'
    ...     def is_instance(self, value): return isinstance(value, str) and len(value) > 1000
    ...     def store(self, value, path):
    ...         with open(path, 'w') as f: f.write(value)
    ...     def fetch(self, path):
    ...         with open(path) as f: return f.read()
    """

    name: ClassVar[str]
    suffix: ClassVar[str] = ".bin"
    allocatable: ClassVar[bool] = False
    # write() creates its file itself, exclusively (new_file, new_hdf5); otherwise the store
    # creates an empty one first and store() writes over it
    creates_file: ClassVar[bool] = False
    # True for the built-in types, which can hold a value as it was at `send` in memory
    # (`freeze`); a custom type is written to disk at `send` and read back by each consumer.
    freezes_in_memory: ClassVar[bool] = False

    def is_instance(self, value: Any) -> bool:
        """True if values like this one should be stored with this spec (when `send` is given
        no type); by default never."""
        return False

    @abstractmethod
    def store(self, value: Any, path: str) -> None:
        """Write `value` to the file at `path`."""

    @abstractmethod
    def fetch(self, path: str) -> Any:
        """Read back the value written by `store`."""

    def fingerprint(self, value: Any, path: str) -> str:
        """Content fingerprint: equal for equal values. By default the file's bytes."""
        return file_fingerprint(path)

    def describe(self, value: Any) -> dict[str, Any]:
        """Small metadata shown by listings: shape, dtype, length..."""
        return {"python_type": type(value).__qualname__}

    @classmethod
    def get_name(cls) -> str:
        """The type name (PyPlant's spelling of `name`)."""
        return cls.name

    def close(self) -> None:  # noqa: B027 - optional, a no-op by default
        """Release what the spec holds open (files, handles); called when the plant closes."""

    # -- used by the store; the defaults suit most custom types ----------------------------
    def write_named(self, name: str, value: Any, path: str) -> Written:
        """`write`, for specs that need the ingredient's name (PyPlant-interface specs do)."""
        return self.write(value, path)

    def write(self, value: Any, path: str) -> Written:
        self.store(value, path)
        checksum = file_fingerprint(path)
        return Written(self.fingerprint(value, path), checksum)

    def verify(self, path: str, checksum: str) -> bool:
        """Is the file at `path` the one written with `checksum`? Reads it in blocks."""
        return file_fingerprint(path) == checksum

    def load(self, path: str, out_of_core: bool) -> Any:
        """The value; `out_of_core` asks for a lazily read one when the type allows it."""
        return self.fetch(path)

    def nbytes(self, value: Any) -> int | None:
        """Bytes the value takes in memory, if known without serializing it."""
        return None

    def value_fingerprint(self, value: Any) -> str | None:
        """The fingerprint `write` will record, computed from the value alone; None if only
        the written file can tell (then whoever needs it waits for the writer)."""
        return None

    def freeze(self, name: str, value: Any, is_stored_file: Callable[[str], bool]) -> Any:
        """The value as it is at `send`, in a form nobody can change any more (see
        store.frozen); `write`, `nbytes` and `value_fingerprint` accept it. Only called when
        `freezes_in_memory`."""
        raise NotImplementedError(f"{type(self).__name__} does not freeze values in memory")

    def load_frozen(self, path: str, out_of_core: bool) -> Any:
        """The stored value in the form the warm tier may share (see `freeze`)."""
        return self.load(path, out_of_core)


class PickleSpec(IngredientTypeSpec):
    """object values (and simple, list): pickled, so a tuple stays a tuple."""

    name = Ingredient.Type.object.value
    suffix = ".pkl"
    creates_file = True
    freezes_in_memory = True

    def is_instance(self, value: Any) -> bool:
        return True

    def freeze(self, name: str, value: Any, is_stored_file: Callable[[str], bool]) -> Any:
        if is_immutable(value):
            return value  # shared as it is; pickled by the writer
        return pickle_at_send(name, value, self.describe(value))

    def load_frozen(self, path: str, out_of_core: bool) -> Any:
        with open(path, "rb") as handle:
            data = handle.read()
        return Pickled(data, xxhash.xxh3_128_hexdigest(data))

    def store(self, value: Any, path: str) -> None:
        with open(path, "wb") as handle:
            pickle.dump(value, handle, protocol=PICKLE_PROTOCOL)

    def fetch(self, path: str) -> Any:
        with open(path, "rb") as handle:
            return pickle.load(handle)  # only ever a file of this plant dir (see payloads)

    def write(self, value: Any, path: str) -> Written:
        if not isinstance(value, Pickled):  # an immutable value: it names no code
            data = pickled(value)
            value = Pickled(data, xxhash.xxh3_128_hexdigest(data))
        with os.fdopen(new_file(path), "wb") as handle:
            handle.write(value.data)
        return Written(value.fingerprint, value.content)

    def value_fingerprint(self, value: Any) -> str | None:
        if isinstance(value, Pickled):
            return value.fingerprint
        return xxhash.xxh3_128_hexdigest(pickled(value))

    def nbytes(self, value: Any) -> int | None:
        return value.nbytes if isinstance(value, Pickled) else None

    def describe(self, value: Any) -> dict[str, Any]:
        if isinstance(value, Pickled):
            return value.meta
        meta: dict[str, Any] = {"python_type": type(value).__qualname__}
        with contextlib.suppress(Exception):  # a 0-d or sparse array has __len__ and no length
            meta["length"] = len(value)
        return meta


class SimpleSpec(PickleSpec):
    name = Ingredient.Type.simple.value


class ListSpec(PickleSpec):
    name = Ingredient.Type.list.value


class ArraySpec(IngredientTypeSpec):
    """numpy arrays in HDF5 (dtype and shape exact). The content hash is computed while
    writing, slice by slice, and is both the fingerprint and the checksum. Object arrays are
    pickled inside the file."""

    name = Ingredient.Type.array.value
    suffix = ".h5"
    creates_file = True
    freezes_in_memory = True

    def is_instance(self, value: Any) -> bool:
        return is_plain_array(value)

    def store(self, value: Any, path: str) -> None:
        self.write(value, path)

    def freeze(self, name: str, value: Any, is_stored_file: Callable[[str], bool]) -> Any:
        array = np.asarray(value)  # what consumers get is what a later run loads: an array
        if array.dtype.hasobject:
            return pickle_object_array(name, array, self.describe(array))
        return freeze_array(array, is_stored_file)

    def load_frozen(self, path: str, out_of_core: bool) -> Any:
        with hdf5().File(path, "r") as handle:
            if "pickled" in handle.attrs:
                data = handle.attrs["pickled"].tobytes()
                array = pickle.loads(data)  # a payload of this plant dir (see payloads)
                hasher = array_hasher(array.dtype, array.shape)
                hasher.update(data)  # as `write` computed it from the same bytes
                return Pickled(data, hasher.hexdigest(), self.describe(array), array=True)
        return self.load(path, out_of_core)

    def write(self, value: Any, path: str) -> Written:
        if isinstance(value, Pickled):
            with hdf5().File(path, "w") as handle:
                handle.attrs["pickled"] = np.void(value.data)
            return Written(value.fingerprint, value.content)
        array = np.asarray(value)
        if array.dtype.hasobject:
            with new_hdf5(path) as handle:
                handle.attrs["pickled"] = np.void(pickled(array))
            digest = array_fingerprint(array)
        elif array.dtype.kind in "biufc" and array.size and array.dtype.fields is None:
            digest, offset = _write_contiguous(array, path)
            return Written(digest, digest, contiguous_layout(offset))
        else:  # strings, records, empty arrays: h5py converts them itself, if HDF5 can
            with new_hdf5(path) as handle:
                if _hdf5_holds(array.dtype):
                    handle.create_dataset(DATASET, data=array)
                else:  # unicode strings, dates: pickled inside the file, as object arrays
                    handle.attrs["pickled"] = np.void(pickled(array))
            digest = array_fingerprint(array)
        return Written(digest, digest)

    def fetch(self, path: str) -> Any:
        return self.load(path, out_of_core=False)

    def load(self, path: str, out_of_core: bool) -> Any:
        with hdf5().File(path, "r") as handle:
            if "pickled" in handle.attrs:
                array = np.asarray(pickle.loads(handle.attrs["pickled"].tobytes()))
            else:
                dataset = handle[DATASET]
                offset = dataset.id.get_offset()
                if out_of_core and offset is not None and dataset.chunks is None:
                    return _readonly_memmap(path, dataset.dtype, dataset.shape, offset)
                array = dataset[()]
        array = np.asarray(array)
        array.flags.writeable = False
        return array

    def fingerprint(self, value: Any, path: str) -> str:
        return self.value_fingerprint(value) or ""

    def value_fingerprint(self, value: Any) -> str | None:
        if isinstance(value, Pickled):
            return value.fingerprint
        return array_fingerprint(np.asarray(value))

    def verify(self, path: str, checksum: str) -> bool:
        with hdf5().File(path, "r") as handle:
            if "pickled" in handle.attrs:
                data = handle.attrs["pickled"].tobytes()
                array = pickle.loads(data)  # a payload of this plant dir (see payloads)
                if not array.dtype.hasobject:  # strings, dates: their values were hashed
                    return array_fingerprint(array) == checksum
                # Objects: the stored bytes were hashed. A new pickle of what they hold could
                # differ (a set pickles in an order that depends on the process's hash seed).
                hasher = array_hasher(array.dtype, array.shape)
                hasher.update(data)
                return hasher.hexdigest() == checksum
            return _digest(handle[DATASET]) == checksum

    def describe(self, value: Any) -> dict[str, Any]:
        if isinstance(value, Pickled):
            return value.meta
        return {"shape": list(value.shape), "dtype": str(value.dtype)}

    def nbytes(self, value: Any) -> int | None:
        return int(value.nbytes)


class FileSpec(IngredientTypeSpec):
    """A file the reactor wrote at the path `pipe.allocate` gave it; consumers get a path."""

    name = Ingredient.Type.file.value
    allocatable = True

    def is_instance(self, value: Any) -> bool:
        return False  # a str path is a simple value unless allocated

    def store(self, value: Any, path: str) -> None:
        raise NotImplementedError("file ingredients are written by the reactor itself")

    def fetch(self, path: str) -> Any:
        return path

    def nbytes(self, value: Any) -> int | None:
        return len(value)


class HdfArraySpec(IngredientTypeSpec):
    """An HDF5 dataset written block by block by the reactor; consumers read it lazily."""

    name = Ingredient.Type.hdf_array.value
    suffix = ".h5"
    allocatable = True

    def is_instance(self, value: Any) -> bool:
        return is_dataset(value)

    def store(self, value: Any, path: str) -> None:
        raise NotImplementedError("hdf_array ingredients are written by the reactor itself")

    def fetch(self, path: str) -> Any:
        return hdf5().File(path, "r")[DATASET]

    def verify(self, path: str, checksum: str) -> bool:
        # Hashing data larger than memory on every first load would defeat the point: an
        # hdf_array is checked by size (always) and by opening its dataset.
        with hdf5().File(path, "r") as handle:
            return DATASET in handle

    def describe(self, value: Any) -> dict[str, Any]:
        return {"shape": list(value.shape), "dtype": str(value.dtype)}

    def nbytes(self, value: Any) -> int | None:
        return 0  # lives on disk; nothing of it is held in memory


def builtin_specs() -> dict[str, IngredientTypeSpec]:
    specs = (SimpleSpec(), ListSpec(), PickleSpec(), ArraySpec(), FileSpec(), HdfArraySpec())
    return {spec.name: spec for spec in specs}


_SIMPLE_TYPES = (int, float, complex, str, bool, bytes, type(None))


def is_plain_array(value: Any) -> bool:
    """An array HDF5 gives back as it was sent: an ndarray, or a memory map (its content).
    Subclasses (masked arrays, recarrays, matrices, the user's own) are pickled, which keeps
    their type, mask and attributes."""
    return type(value) is np.ndarray or isinstance(value, np.memmap)


def infer_type(value: Any, custom: list[IngredientTypeSpec]) -> str:
    """The type name a value is stored as when `send` is given no type: by a spec only if it
    gives the value back exactly as sent (type, state), else pickled."""
    for spec in custom:
        if spec.is_instance(value):
            return spec.name
    if is_plain_array(value):
        return Ingredient.Type.array.value
    if is_dataset(value):
        return Ingredient.Type.hdf_array.value
    if isinstance(value, _SIMPLE_TYPES):
        return Ingredient.Type.simple.value
    if type(value) is list:
        return Ingredient.Type.list.value
    return Ingredient.Type.object.value


# -- arrays in slices ----------------------------------------------------------------------
def _slices(array: Any) -> Any:
    """(index, block) pairs covering the array along its first axis, in order."""
    if array.ndim == 0:
        yield (), array[()]
        return
    row_bytes = max(1, int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize)
    step = max(1, _SLICE_BYTES // row_bytes)
    for start in range(0, array.shape[0], step):
        index = slice(start, min(start + step, array.shape[0]))
        yield index, array[index]


def _write_contiguous(array: np.ndarray, path: str) -> tuple[str, int]:
    """Numbers straight into an HDF5 file: the header (see _create_layout) and a contiguous
    dataset's bytes at its offset, with plain writes, the disk starting on each slice as soon as
    it is written. An array of several slices is fsynced here, its content hash computed on a
    helper thread meanwhile (from memory: the file was written from it, and sent values are
    never changed); a smaller one is left to the payload layer's fsync, as there is no hashing
    time to hide. Several times faster than h5py's own write path, same file."""
    hashing = Background(lambda: _digest(array), "pyplantd-hash") if _sliced(array) else None
    start = offset = _create_layout(array, path)
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | getattr(os, "O_BINARY", 0))
    try:
        os.lseek(fd, offset, os.SEEK_SET)
        for _index, block in _slices(array):
            data = _raw_bytes(block)
            write_all(fd, data.data)
            start_writeback(fd, offset, data.nbytes)
            offset += data.nbytes
        if hashing is None:
            return _digest(array), start
        os.fsync(fd)
    finally:
        os.close(fd)
    return hashing.result(), start


def _sliced(array: np.ndarray) -> bool:
    return array.nbytes > _SLICE_BYTES


def _create_layout(array: np.ndarray, path: str) -> int:
    """Create the HDF5 file with an allocated, unfilled contiguous dataset; its byte offset.
    A header known for this dtype and shape (see store.layouts) is written as is."""
    known = layouts.header(array.dtype, array.shape)
    if known is not None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        try:
            write_all(fd, memoryview(known))
        finally:
            os.close(fd)
        return len(known)
    from .layout_maker import lay_out  # imports h5py: only for dtypes with no template

    laid_out = lay_out(path, array.dtype, array.shape)
    layouts.remember(array.dtype, array.shape, laid_out)
    return len(laid_out)


def _hdf5_holds(dtype: np.dtype[Any]) -> bool:
    """Can HDF5 hold this dtype? (Not numpy's unicode strings or dates, for one.)"""
    try:
        hdf5().h5t.py_create(dtype, logical=True)
    except TypeError:
        return False
    return True


def _raw_bytes(block: Any) -> np.ndarray:
    """A block's bytes in C order as a flat uint8 array (a copy only if it is not contiguous)."""
    return np.ascontiguousarray(block).reshape(-1).view(np.uint8)


def _digest(source: np.ndarray | h5py.Dataset) -> str:
    """Content hash of an array or dataset, slice by slice (equal to array_fingerprint)."""
    hasher = array_hasher(source.dtype, source.shape)
    for _index, block in _slices(source):
        hash_block(hasher, block)
    return hasher.hexdigest()


def _readonly_memmap(path: str, dtype: Any, shape: tuple[int, ...], offset: int) -> np.ndarray:
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
