"""PyPlant's `test` module: unit-test one reactor with given inputs and config, no plant dir.

>>> pipe = PipeworkMock({'factor': 2}, {'data': [1, 2]})             # doctest: +SKIP
>>> run_reactor_to_completion(scale, pipe)                          # doctest: +SKIP
>>> pipe.get_products()                                             # doctest: +SKIP
{'scaled': [2, 4]}

Depends on the pipework's interface only; nothing here touches a plant or the disk beyond
scratch files that `allocate` hands out.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from .compat.names import pyplant_keywords
from .compat.warehouse import spec_name
from .config import ConfigBase
from .errors import AllocationError, IngredientNotFoundError, PlantError
from .ingredient import Ingredient
from .reactor import SubreactorStarted, start_reactor
from .run.pipework import Pipework, Receive, TypeArg
from .store.specs import hdf5

if TYPE_CHECKING:
    import tempfile

__all__ = ["PipeworkMock", "run_reactor_to_completion", "run_subreactor_to_completion"]


class PipeworkMock(Pipework):
    """A pipework that serves `ingredients` and `config` from dicts and collects what the
    reactor sends in `products` (``get_products()``).

    ``allocate`` and ``allocate_temp`` call `callback(method_name, name, type, **options)`
    and return what it returns; without a callback they hand out real scratch storage (a
    file path, or an in-memory HDF5 dataset)."""

    def __init__(
        self,
        configDict: Mapping[str, Any],  # noqa: N803 - PyPlant's names
        ingredientsDict: Mapping[str, Any],  # noqa: N803
        callback: Callable[..., Any] | None = None,
    ) -> None:
        # Not Pipework.__init__: there is no plant and no store behind a mock.
        self.reactor_name = "mock"
        self.configDict = dict(configDict)
        self.config = ConfigBase(self.configDict)._view_for(lambda name: None)  # read-only
        self.ingredients = dict(ingredientsDict)
        self.callback = callback
        self.products: dict[str, Any] = {}
        self._scratch: tempfile.TemporaryDirectory[str] | None = None

    def receive(self, name: str) -> Any:  # type: ignore[override]
        """The given ingredient itself: ``value = yield pipe.receive(name)`` works unchanged."""
        if name not in self.ingredients:
            known = ", ".join(sorted(self.ingredients)) or "none"
            raise IngredientNotFoundError(
                f"The reactor receives '{name}', which this PipeworkMock was not given "
                f"(given: {known}). Add it to the ingredients dict."
            )
        return self.ingredients[name]

    @pyplant_keywords(useCache="use_cache")
    def send(self, name: str, value: Any, type: TypeArg = None, use_cache: bool = True) -> None:
        if name in self.products:
            raise AllocationError(f"The reactor sent ingredient '{name}' twice. Send it once.")
        self.products[name] = value

    def allocate(self, name: str, type: TypeArg, **options: Any) -> Any:
        if self.callback is not None:
            return self.callback("allocate", name, type, **options)
        return self._scratch_storage(name, type, options)

    def allocate_temp(self, name: str, type: TypeArg, **options: Any) -> Any:
        if self.callback is not None:
            return self.callback("allocate_temp", name, type, **options)
        return self._scratch_storage(f"temp-{name}", type, options)

    @pyplant_keywords(paramName="name")
    def read_config(self, name: str) -> Any:
        return self.config.peek(name)

    @pyplant_keywords(paramName="name")
    def read_config_unregistered(self, name: str) -> Any:
        return self.config.peek(name)

    @pyplant_keywords(paramName="name")
    def register_config_param(self, name: str) -> None:
        pass

    def track_file(self, path: str | os.PathLike[str]) -> str:
        return os.fspath(path)

    def get_products(self) -> dict[str, Any]:
        return self.products

    def _scratch_storage(self, name: str, type: TypeArg, options: dict[str, Any]) -> Any:
        kind = type if isinstance(type, str) else spec_name(type)  # Ingredient.Type is a str
        if kind == Ingredient.Type.hdf_array.value:
            shape, dtype = options.pop("shape"), options.pop("dtype", None) or "float32"
            memory = hdf5().File(name, "w", driver="core", backing_store=False)
            return memory.create_dataset("data", shape=shape, dtype=dtype, **options)
        if kind == Ingredient.Type.file.value:
            if self._scratch is None:
                import tempfile  # here: loaded by every `from pyplantd import *`, used by few

                self._scratch = tempfile.TemporaryDirectory(prefix="pyplantd-mock-")
            path = os.path.join(self._scratch.name, name + options.pop("suffix", ""))
            open(path, "wb").close()
            return path
        raise AllocationError(
            f"Ingredient type {kind} cannot be allocated (file and hdf_array can); "
            "or give PipeworkMock a callback that allocates it."
        )


def _drive(generator: Generator[Any, Any, Any]) -> Any:
    """Run a reactor's generator to its end, sending back what it yields (a mock's received
    values); returns its return value."""
    value: Any = None
    while True:
        try:
            command = generator.send(value)
        except StopIteration as stop:
            return stop.value
        if isinstance(command, Receive):
            generator.close()
            raise PlantError(
                f"The reactor waits for ingredient '{command.name}' from a real pipework. "
                "Run it with a PipeworkMock."
            )
        value = None if isinstance(command, SubreactorStarted) else command


@pyplant_keywords(reactorFunc="reactor")
def run_reactor_to_completion(reactor: Callable[..., Any], pipework: Pipework) -> None:
    """Run one reactor to its end against `pipework` (usually a PipeworkMock); a reactor that
    takes ``(pipe, config)`` gets the mock's config."""
    _drive(start_reactor(reactor, pipework, pipework.config))


@pyplant_keywords(subreactorGen="subreactor")
def run_subreactor_to_completion(
    subreactor: Generator[Any, Any, Any], pipework: Pipework | None = None
) -> Any:
    """Run a started subreactor (``sub(pipe, ...)``, called but not iterated) to its end;
    returns what it returns."""
    with contextlib.closing(subreactor):
        return _drive(subreactor)
