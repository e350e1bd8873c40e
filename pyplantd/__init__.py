"""pyplantd: PyPlant-compatible function pipelines that re-run only what a change affected.

`import pyplantd` installs the import hook that records what user modules are compiled from (see
sources) and nothing else; each public name imports its module on first use. Those modules
import the engine (store, scheduler, signatures) only where they use it, so even
`from pyplantd import *` does not load it: the first `Plant(...)` does.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .signatures import sources as _sources  # noqa: F401 - user modules imported from now on are recorded

if TYPE_CHECKING:
    from . import pyplant, specs, test, utils
    from .compat.warehouse import Warehouse
    from .config import ConfigBase, ConfigValue
    from .errors import (
        IngredientNotFoundError,
        InvalidOperationException,
        PlantError,
        ReactorFailedError,
        ReactorNotFoundError,
    )
    from .ingredient import Ingredient
    from .plant import Plant
    from .reactor import ReactorFunc, SubreactorFunc
    from .reading import open_plant
    from .run.pipework import Pipework
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
    "pyplant",
    "specs",
    "test",
    "utils",
]

# name -> (module, attribute; None for the module itself)
_LAZY = {
    "ConfigBase": ("pyplantd.config", "ConfigBase"),
    "ConfigValue": ("pyplantd.config", "ConfigValue"),
    "Ingredient": ("pyplantd.ingredient", "Ingredient"),
    "IngredientNotFoundError": ("pyplantd.errors", "IngredientNotFoundError"),
    "IngredientTypeSpec": ("pyplantd.store.specs", "IngredientTypeSpec"),
    "InvalidOperationException": ("pyplantd.errors", "InvalidOperationException"),
    "Pipework": ("pyplantd.run.pipework", "Pipework"),
    "Plant": ("pyplantd.plant", "Plant"),
    "PlantError": ("pyplantd.errors", "PlantError"),
    "ReactorFailedError": ("pyplantd.errors", "ReactorFailedError"),
    "ReactorFunc": ("pyplantd.reactor", "ReactorFunc"),
    "ReactorNotFoundError": ("pyplantd.errors", "ReactorNotFoundError"),
    "SubreactorFunc": ("pyplantd.reactor", "SubreactorFunc"),
    "Warehouse": ("pyplantd.compat.warehouse", "Warehouse"),
    "open_plant": ("pyplantd.reading", "open_plant"),
    "pyplant": ("pyplantd.pyplant", None),  # PyPlant's star import gives its submodule too
    "specs": ("pyplantd.specs", None),
    "test": ("pyplantd.test", None),
    "utils": ("pyplantd.utils", None),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'pyplantd' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
