"""PyPlant's camelCase keyword names (``plantDir=``, ``useCache=``...) as aliases of pyplantd's.

Depends only on errors; costs one dict check per call that passes keywords.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable
from typing import Any, ParamSpec, TypeVar

from ..errors import PlantWarning, UnknownIngredientError

P = ParamSpec("P")
R = TypeVar("R")


def pyplant_keywords(**renames: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Accept PyPlant's keyword names for the decorated function's snake_case ones.

    >>> @pyplant_keywords(paramName="name")
    ... def read_config(name): return name
    >>> read_config(paramName="n")
    'n'
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def renamed(*args: Any, **kwargs: Any) -> Any:
            if kwargs and not renames.keys().isdisjoint(kwargs):
                kwargs = _renamed(func, renames, kwargs)
            return func(*args, **kwargs)

        return renamed

    return decorate


def _renamed(func: Callable[..., Any], renames: dict[str, str], kwargs: dict[str, Any]) -> Any:
    for old, new in renames.items():
        if old in kwargs:
            if new in kwargs:
                raise TypeError(
                    f"{func.__qualname__}() got both {old}= (PyPlant's name) and {new}=. "
                    "Pass one of them."
                )
            kwargs[new] = kwargs.pop(old)
    return kwargs


def unknown_ingredient(name: str, known: Iterable[str]) -> UnknownIngredientError:
    from ..suggest import unknown

    return UnknownIngredientError(
        unknown("Ingredient", name, known, "the plant") + " Run the reactor that sends it first."
    )


def unused_string_hash() -> None:
    warnings.warn(
        "Plant(stringHash=...) is accepted for PyPlant compatibility and not used: pyplantd "
        "compares content fingerprints, not hashes of strings. Remove the argument.",
        PlantWarning,
        stacklevel=4,
    )
