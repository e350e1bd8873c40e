"""Ingredient types: the names reactors use to say how a value is stored.

Depends on nothing else in pyplantd.
"""

from __future__ import annotations

from enum import Enum


class Ingredient:
    """Namespace of the built-in ingredient types, as in PyPlant: ``Ingredient.Type.array``."""

    class Type(str, Enum):
        simple = "simple"  # int, float, str, bool, bytes, None, complex
        list = "list"  # a list (stored exactly, nested values included)
        object = "object"  # anything picklable; tuples, dicts and sets keep their type
        array = "array"  # a numpy array, stored in HDF5
        file = "file"  # a file in the plant dir, allocated first, passed as a path
        hdf_array = "hdf_array"  # an HDF5 dataset larger than memory, allocated first

        def __str__(self) -> str:
            return self.value

    def __init__(
        self,
        name: str,
        type: Ingredient.Type | str = "object",
        producer: str | None = None,
        fingerprint: str | None = None,
    ) -> None:
        """What the plant knows of one stored ingredient (``plant.get_ingredient_object``)."""
        self.name = name
        self.type = Ingredient.Type(type) if type in _BUILTIN else type
        self.producer = producer  # the producing reactor's name
        self.fingerprint = fingerprint  # of the content

    def __repr__(self) -> str:
        return f"Ingredient({self.name!r}, {str(self.type)!r}, producer={self.producer!r})"

    # -- PyPlant's names --------------------------------------------------------------------
    @property
    def producerName(self) -> str | None:  # noqa: N802
        return self.producer

    @property
    def signature(self) -> str | None:
        return self.fingerprint


_BUILTIN = frozenset(t.value for t in Ingredient.Type)
