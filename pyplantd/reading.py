"""`open_plant`: read a plant's ingredients (objects included) from a notebook or any script,
even while `pyplantd watch` or another run holds the plant: nothing is locked or written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .store.specs import IngredientTypeSpec

if TYPE_CHECKING:
    from .store.reader import PlantReader  # imported when a plant is opened


def open_plant(
    path_or_pipeline: str | os.PathLike[str],
    readonly: bool = True,
    *,
    specs: Iterable[IngredientTypeSpec] = (),
) -> PlantReader:
    """A plant dir, or the one the pipeline script `path_or_pipeline` uses, opened to list
    (`.names()`, `.ingredients()`) and read (`.fetch(name)`, `plant[name]`) its ingredients.

    Read-only (the default) it takes no lock, so it works while a daemon or another process
    holds the plant; each read sees the latest committed results. `readonly=False` holds the
    plant's lock while open instead, so nothing changes it meanwhile (refused while someone
    else holds it). A pipeline's plant dir is `plant-dir` of `[tool.pyplantd]`, else the
    running daemon's for that pipeline, else the one its first `Plant(...)` names (the script
    is executed up to there). Custom ingredient types need their spec: `specs=[MySpec()]`.

    >>> with open_plant("pipeline.py") as plant:                    # doctest: +SKIP
    ...     model = plant["model"]
    """
    from .store.reader import PlantReader

    path = Path(path_or_pipeline).expanduser()
    plant_dir = _plant_dir_of(path) if path.suffix == ".py" or path.is_file() else path
    return PlantReader(plant_dir, exclusive=not readonly, specs=specs)


def _plant_dir_of(pipeline: Path) -> Path:
    from .hosting.daemon_link import daemon_holding
    from .hosting.probe import plant_dir_of
    from .settings import resolve

    settings = resolve({"pipeline": pipeline})
    if settings.plant_dir is None:
        client = daemon_holding(settings.pipeline, None)
        if client is not None:
            with client:
                held = client.status().get("plant_dir")
            if isinstance(held, str) and held:
                return Path(held)
    return plant_dir_of(settings)
