"""Which plant dir a pipeline script uses, found by executing the script up to its first
`Plant(...)`: nothing after it runs, nothing is created, and the reactors it defined are
forgotten again. For `pyplantd ls` / `clean` and `open_plant` given a pipeline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PlantError
from ..reactor import forget_visible
from ..settings import Settings
from .host import hosting
from .script import run_script

if TYPE_CHECKING:
    from ..plant import Plant
    from ..store.plant_store import PlantStore


class _Found(BaseException):
    """Unwinds the script from its first Plant(...); a BaseException, so that the script's own
    `except Exception` does not catch it."""

    def __init__(self, plant_dir: Path) -> None:
        super().__init__(str(plant_dir))
        self.plant_dir = plant_dir


class _ProbeHost:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open_store(self, plant: Plant, plant_dir: str | os.PathLike[str]) -> PlantStore:
        options = self.settings.for_plant(plant_dir, None, None, True)
        raise _Found(options.plant_dir)

    def owns_store(self, store: PlantStore) -> bool:  # pragma: no cover - never reached
        return True

    def on_run_reactor(self, plant: Plant, target: str) -> bool:  # pragma: no cover
        return True

    def on_close(self, plant: Plant) -> None:  # pragma: no cover
        pass


def plant_dir_of(settings: Settings) -> Path:
    """The plant dir the settings name, else the one the pipeline's first Plant(...) names."""
    if settings.plant_dir is not None:
        return settings.plant_dir.absolute()
    pipeline = settings.pipeline.absolute()
    try:
        with hosting(_ProbeHost(settings)):
            run_script(pipeline)
    except _Found as found:
        return found.plant_dir
    finally:
        forget_visible(lambda func: _defined_in(func, pipeline))
    raise PlantError(
        f"{pipeline} made no Plant(...), so it names no plant dir. Name one with --plant-dir "
        "DIR, or plant-dir in [tool.pyplantd] of pyproject.toml."
    )


def _defined_in(func: object, path: Path) -> bool:
    code = getattr(func, "__code__", None)
    return code is not None and code.co_filename == str(path)
