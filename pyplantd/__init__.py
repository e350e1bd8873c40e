"""pyplantd: PyPlant-compatible function pipelines that re-run only what a change affected."""

from importlib import import_module
from typing import Any

from .compat.warehouse import Warehouse
from .config import ConfigBase, ConfigValue
from .errors import (
    IngredientNotFoundError,
    PlantError,
    ReactorFailedError,
    ReactorNotFoundError,
)
from .ingredient import Ingredient
from .pipework import Pipework
from .plant import Plant
from .reactor import ReactorFunc, SubreactorFunc
from .reading import open_plant
from .store.specs import IngredientTypeSpec

__version__ = "0.1.0"

__all__ = [
    "ConfigBase",
    "ConfigValue",
    "Ingredient",
    "IngredientNotFoundError",
    "IngredientTypeSpec",
    "InvalidOperationException",
    "Pipework",
    "Plant",
    "PlantError",
    "ReactorFailedError",
    "ReactorFunc",
    "ReactorNotFoundError",
    "SubreactorFunc",
    "Warehouse",
    "open_plant",
    "specs",
    "test",
    "utils",
]

# PyPlant's modules, imported on first use (`from pyplantd import *` imports them).
_LAZY = {
    "specs": ("pyplantd.specs", None),
    "test": ("pyplantd.test", None),
    "utils": ("pyplantd.utils", None),
    "InvalidOperationException": ("pyplantd.specs", "InvalidOperationException"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'pyplantd' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
