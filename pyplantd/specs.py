"""PyPlant's `specs` module: ingredient types beyond the built-in ones, and PyPlant's interface
for writing new ones.

``HdfArraySpec``, ``ScipySparseSpec`` and ``KerasModelSpec`` are pyplantd specs (atomic payloads,
content fingerprints); scipy and keras are imported only when such a value is stored or read.
``IngredientTypeSpec`` here is PyPlant's interface (``store(warehouse, name, value)``...): a spec
written against it is adapted when registered (see compat.spec_adapter). Register either kind
with ``plant.register_ingredient_specs([...])`` or ``plant.warehouse.register_ingredient_specs``.
"""

from __future__ import annotations

import importlib
import sys
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from .compat.names import pyplant_keywords
from .compat.warehouse import Warehouse
from .errors import InvalidOperationException, MissingDependencyError
from .fingerprint import array_fingerprint, hash_bytes
from .store import specs as native

__all__ = [
    "HdfArraySpec",
    "IngredientTypeSpec",
    "InvalidOperationException",
    "KerasModelSpec",
    "MissingDependencyError",
    "ScipySparseSpec",
    "Warehouse",
]


class IngredientTypeSpec(ABC):
    """PyPlant's interface for a custom ingredient type: the spec writes its files itself under
    ``warehouse.baseDir`` (named after the ingredient) and returns metadata for ``fetch``.

    >>> class TextSpec(IngredientTypeSpec):
    ...     @classmethod
    ...     def get_name(cls): return 'text'
    ...     def store(self, warehouse, name, value):
    ...         with open(f'{warehouse.baseDir}/{name}.txt', 'w') as f: f.write(value)
    ...         return {'length': len(value)}
    ...     def fetch(self, warehouse, name, meta):
    ...         with open(f'{warehouse.baseDir}/{name}.txt') as f: return f.read()
    """

    def __init__(self) -> None:
        self.isAllocatable = False

    @classmethod
    @abstractmethod
    def get_name(cls) -> str:
        """The type name reactors use: ``pipe.send(name, value, 'text')``."""

    @abstractmethod
    def store(self, warehouse: Warehouse, name: str, value: Any) -> dict[str, Any] | None:
        """Write `value` under ``warehouse.baseDir``; the returned metadata goes to `fetch`."""

    @abstractmethod
    def fetch(self, warehouse: Warehouse, name: str, meta: dict[str, Any] | None) -> Any:
        """Read back what `store` wrote."""

    def allocate(self, warehouse: Warehouse, name: str, **kwargs: Any) -> Any:
        raise InvalidOperationException(f"Ingredient type {self.get_name()} cannot be allocated.")

    def deallocate(self, warehouse: Warehouse, name: str) -> None:
        raise InvalidOperationException(f"Ingredient type {self.get_name()} cannot be deallocated.")

    def close(self) -> None:  # noqa: B027 - optional, a no-op by default
        """Release files and handles; called when the plant closes."""

    def is_instance(self, value: Any) -> bool:
        """True if `send` without a type should store values like this one with this spec."""
        return False


def _optional(module: str, spec: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingDependencyError(
            f"{spec} needs the '{package}' package, which is not installed "
            f"({err}). Install it with: pip install {package}"
        ) from err


class HdfArraySpec(native.HdfArraySpec):
    """HDF5 datasets written block by block: ``pipe.allocate(name, HdfArraySpec, shape=...,
    dtype=...)``, then ``pipe.send(name, dataset)``; consumers get a read-only h5py Dataset.
    (pyplantd has this type built in as ``Ingredient.Type.hdf_array``.)"""

    isAllocatable = True  # noqa: N815 - PyPlant's name


_NPZ_FORMATS = frozenset({"csr", "csc", "bsr", "dia", "coo"})


class ScipySparseSpec(native.IngredientTypeSpec):
    """scipy.sparse matrices and arrays, in scipy's .npz format; fingerprinted by content, so an
    identical matrix from a re-run stops there."""

    name = "scipy_sparse"
    suffix = ".npz"

    def is_instance(self, value: Any) -> bool:
        sparse = sys.modules.get("scipy.sparse")  # no scipy loaded: no sparse value exists
        if sparse is None or not sparse.issparse(value):
            return False
        # Only what .npz gives back as it was: scipy's own classes in the formats it holds
        # (lil, dok and subclasses are pickled, which keeps them).
        return type(value).__module__.startswith("scipy.") and value.format in _NPZ_FORMATS

    def store(self, value: Any, path: str) -> None:
        _optional("scipy.sparse", "ScipySparseSpec", "scipy").save_npz(path, value)

    def fetch(self, path: str) -> Any:
        return _optional("scipy.sparse", "ScipySparseSpec", "scipy").load_npz(path)

    def fingerprint(self, value: Any, path: str) -> str:
        return self.value_fingerprint(value)

    def value_fingerprint(self, value: Any) -> str:
        canonical = value.tocsr(copy=True)  # one form for every format, duplicates summed
        canonical.sum_duplicates()
        canonical.sort_indices()
        parts = (canonical.data, canonical.indices, canonical.indptr)
        return hash_bytes(
            type(value).__name__, value.format, str(value.shape),
            *(array_fingerprint(np.asarray(part)) for part in parts),
        )  # fmt: skip

    def describe(self, value: Any) -> dict[str, Any]:
        return {"shape": list(value.shape), "dtype": str(value.dtype), "nnz": int(value.nnz)}


class KerasModelSpec(native.IngredientTypeSpec):
    """Keras models, saved in the .keras format and loaded with their custom layers
    (``KerasModelSpec(customLayers={'MyLayer': MyLayer})``)."""

    name = "keras_model"
    suffix = ".keras"

    @pyplant_keywords(customLayers="custom_layers")
    def __init__(self, custom_layers: dict[str, Any] | None = None) -> None:
        self.custom_layers = custom_layers or {}

    def is_instance(self, value: Any) -> bool:
        keras = sys.modules.get("keras")  # no keras loaded: no model exists
        model = getattr(getattr(keras, "models", None), "Model", None)
        return model is not None and isinstance(value, model)

    def store(self, value: Any, path: str) -> None:
        _optional("keras", "KerasModelSpec", "keras")
        value.save(path)

    def fetch(self, path: str) -> Any:
        keras = _optional("keras", "KerasModelSpec", "keras")
        return keras.models.load_model(path, custom_objects=self.custom_layers)
