"""pyplantd: PyPlant-compatible function pipelines that re-run only what a change affected."""

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
from .store.specs import IngredientTypeSpec

__version__ = "0.1.0"

__all__ = [
    "ConfigBase",
    "ConfigValue",
    "Ingredient",
    "IngredientNotFoundError",
    "IngredientTypeSpec",
    "Pipework",
    "Plant",
    "PlantError",
    "ReactorFailedError",
    "ReactorFunc",
    "ReactorNotFoundError",
    "SubreactorFunc",
]
