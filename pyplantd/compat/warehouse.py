"""PyPlant's Warehouse, as its specs and scripts use it.

A PyPlant-interface spec is handed a `Warehouse` whose ``baseDir`` is a private directory for
its files; ``plant.warehouse`` is a `PlantWarehouse`, a facade over the plant. Neither stores
anything itself: the plant's store does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

    from ..plant import Plant


def spec_name(spec: Any) -> str:
    """The type name of a spec or spec class, of either interface."""
    name = getattr(spec, "name", None)
    return name if isinstance(name, str) else str(spec.get_name())


class Warehouse:
    """Where PyPlant's specs write: ``baseDir`` and ``logger``; its specs by name in
    ``ingredientSpecs``; ``close()`` (or ``with``) closes them."""

    def __init__(self, baseDir: str | os.PathLike[str], logger: logging.Logger | None = None):  # noqa: N803
        self.baseDir = os.fspath(baseDir)
        if logger is None:
            import logging  # here: `from pyplantd import *` names this class

            logger = logging.getLogger("pyplantd")
        self.logger = logger
        self.ingredientSpecs: dict[str, Any] = {}

    def register_ingredient_specs(self, specs: Iterable[Any]) -> None:
        for spec in specs:
            self.ingredientSpecs[spec_name(spec)] = spec

    def close(self) -> None:
        for spec in self.ingredientSpecs.values():
            spec.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PlantWarehouse(Warehouse):
    """``plant.warehouse``: what PyPlant scripts use of it, done by the plant."""

    def __init__(self, plant: Plant) -> None:
        super().__init__(plant.plant_dir, plant._logger)
        self._plant = plant

    def register_ingredient_specs(self, specs: Iterable[Any]) -> None:
        specs = list(specs)
        super().register_ingredient_specs(specs)
        self._plant.register_ingredient_specs(specs)

    def fetch(self, name: str, signature: str | None = None) -> Any:
        """The stored value of an ingredient; None if the plant has none, or has one with
        another fingerprint than `signature` (as PyPlant)."""
        record = self._plant.store.ingredient(name)
        if record is None or signature not in (None, record.fingerprint):
            return None
        return self._plant.fetch_ingredient(name)

    def close(self) -> None:
        """The plant closes its specs when it shuts down; this is PyPlant's early close."""
        self._plant.store.close_specs()
