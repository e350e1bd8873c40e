"""Ingredient type specs: how each type of value is written to, read from and fingerprinted on disk.

Custom types subclass IngredientTypeSpec and are registered on the plant. Writes always go to a
temporary path that the payload layer renames into place, so a spec never has to be atomic itself.
h5py is only imported here and in the payload layer.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import h5py
import numpy as np

from ..fingerprint import PICKLE_PROTOCOL, array_fingerprint, file_fingerprint
from ..ingredient import Ingredient

DATASET = "data"


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

    @abstractmethod
    def is_instance(self, value: Any) -> bool:
        """True if values like this one should be stored with this spec."""

    @abstractmethod
    def store(self, value: Any, path: str) -> None:
        """Write `value` to the file at `path`."""

    @abstractmethod
    def fetch(self, path: str) -> Any:
        """Read back the value written by `store`."""

    def fingerprint(self, value: Any, path: str) -> str | None:
        """Content fingerprint; None means 'use the producing reactor's signature'."""
        return file_fingerprint(path)

    def describe(self, value: Any) -> dict[str, Any]:
        """Small metadata shown by listings: shape, dtype, length..."""
        return {"python_type": type(value).__qualname__}

    def check(self, value: Any, meta: dict[str, Any]) -> bool:
        """Cheap structural check of a fetched value against what was recorded."""
        return True


class PickleSpec(IngredientTypeSpec):
    """simple, list and object values: pickled, so a tuple stays a tuple."""

    name = Ingredient.Type.object.value
    suffix = ".pkl"

    def is_instance(self, value: Any) -> bool:
        return True

    def store(self, value: Any, path: str) -> None:
        with open(path, "wb") as handle:
            pickle.dump(value, handle, protocol=PICKLE_PROTOCOL)

    def fetch(self, path: str) -> Any:
        with open(path, "rb") as handle:
            return pickle.load(handle)  # only ever a file of this plant dir (see payloads)

    def describe(self, value: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {"python_type": type(value).__qualname__}
        if hasattr(value, "__len__"):
            meta["length"] = len(value)
        return meta


class ArraySpec(IngredientTypeSpec):
    """numpy arrays in HDF5 (dtype and shape exact); object arrays fall back to pickle."""

    name = Ingredient.Type.array.value
    suffix = ".h5"

    def is_instance(self, value: Any) -> bool:
        return isinstance(value, np.ndarray)

    def store(self, value: Any, path: str) -> None:
        array = np.asarray(value)
        with h5py.File(path, "w") as handle:
            if array.dtype.hasobject:
                handle.attrs["pickled"] = np.void(pickle.dumps(array, protocol=PICKLE_PROTOCOL))
            else:
                handle.create_dataset(DATASET, data=array)

    def fetch(self, path: str) -> Any:
        with h5py.File(path, "r") as handle:
            if "pickled" in handle.attrs:
                array = pickle.loads(handle.attrs["pickled"].tobytes())
            else:
                array = handle[DATASET][()]
        array = np.asarray(array)
        array.flags.writeable = False
        return array

    def fingerprint(self, value: Any, path: str) -> str | None:
        return array_fingerprint(np.asarray(value))

    def describe(self, value: Any) -> dict[str, Any]:
        return {"shape": list(value.shape), "dtype": str(value.dtype)}

    def check(self, value: Any, meta: dict[str, Any]) -> bool:
        return list(value.shape) == meta.get("shape") and str(value.dtype) == meta.get("dtype")


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


class HdfArraySpec(IngredientTypeSpec):
    """An HDF5 dataset written block by block by the reactor; consumers read it lazily."""

    name = Ingredient.Type.hdf_array.value
    suffix = ".h5"
    allocatable = True

    def is_instance(self, value: Any) -> bool:
        return isinstance(value, h5py.Dataset)

    def store(self, value: Any, path: str) -> None:
        raise NotImplementedError("hdf_array ingredients are written by the reactor itself")

    def fetch(self, path: str) -> Any:
        return h5py.File(path, "r")[DATASET]

    def fingerprint(self, value: Any, path: str) -> str | None:
        return None  # hashing data larger than memory on every send would defeat the point

    def describe(self, value: Any) -> dict[str, Any]:
        return {"shape": list(value.shape), "dtype": str(value.dtype)}

    def check(self, value: Any, meta: dict[str, Any]) -> bool:
        return list(value.shape) == meta.get("shape") and str(value.dtype) == meta.get("dtype")


class SimpleSpec(PickleSpec):
    name = Ingredient.Type.simple.value


class ListSpec(PickleSpec):
    name = Ingredient.Type.list.value


def builtin_specs() -> dict[str, IngredientTypeSpec]:
    specs = (SimpleSpec(), ListSpec(), PickleSpec(), ArraySpec(), FileSpec(), HdfArraySpec())
    return {spec.name: spec for spec in specs}


_SIMPLE_TYPES = (int, float, complex, str, bool, bytes, type(None))


def infer_type(value: Any, custom: list[IngredientTypeSpec]) -> str:
    """The type name a value is stored as when `send` is given no type."""
    for spec in custom:
        if spec.is_instance(value):
            return spec.name
    if isinstance(value, np.ndarray):
        return Ingredient.Type.array.value
    if isinstance(value, h5py.Dataset):
        return Ingredient.Type.hdf_array.value
    if isinstance(value, _SIMPLE_TYPES):
        return Ingredient.Type.simple.value
    if type(value) is list:
        return Ingredient.Type.list.value
    return Ingredient.Type.object.value
