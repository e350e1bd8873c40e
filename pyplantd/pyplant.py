"""PyPlant's `pyplant.pyplant` module: ``from pyplantd.pyplant import Plant, ReactorFunc`` and
``import pyplantd.pyplant as pp`` work as they did with `pyplant`.

Only names: each loads its module on first use, as `pyplantd` does (importing this module costs
nothing more). A star import gives the names in PyPlant's ``__all__``; its other public classes
(Warehouse, IngredientTypeSpec with PyPlant's interface, InvalidOperationException) are
importable by name.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compat.warehouse import Warehouse as Warehouse
    from .config import ConfigBase, ConfigValue
    from .errors import InvalidOperationException as InvalidOperationException
    from .ingredient import Ingredient
    from .plant import Plant
    from .reactor import ReactorFunc, SubreactorFunc
    from .run.pipework import Pipework
    from .specs import IngredientTypeSpec as IngredientTypeSpec

__all__ = [
    "ConfigBase",
    "ConfigValue",
    "Ingredient",
    "Pipework",
    "Plant",
    "ReactorFunc",
    "SubreactorFunc",
]

# name -> (module, attribute)
_LAZY = {
    "ConfigBase": ("pyplantd.config", "ConfigBase"),
    "ConfigValue": ("pyplantd.config", "ConfigValue"),
    "Ingredient": ("pyplantd.ingredient", "Ingredient"),
    "IngredientTypeSpec": ("pyplantd.specs", "IngredientTypeSpec"),
    "InvalidOperationException": ("pyplantd.errors", "InvalidOperationException"),
    "Pipework": ("pyplantd.run.pipework", "Pipework"),
    "Plant": ("pyplantd.plant", "Plant"),
    "ReactorFunc": ("pyplantd.reactor", "ReactorFunc"),
    "SubreactorFunc": ("pyplantd.reactor", "SubreactorFunc"),
    "Warehouse": ("pyplantd.compat.warehouse", "Warehouse"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'pyplantd.pyplant' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    value = getattr(import_module(module_name), attribute)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
