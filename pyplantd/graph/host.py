"""The host behind `pyplantd graph PIPELINE`: executes the script as `pyplantd run --dry-run`
does, runs no reactor, and builds the graph model of the plant the script makes (the last one).

It creates nothing on disk: a plant dir that does not exist yet (or is empty) is stood in for by
a scratch store, removed afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PlantDirError
from ..reactor import visible_subreactors
from ..settings import Settings, given
from ..store.locking import LOCK_NAME
from ..store.plant_store import PlantStore
from .model import Node, build
from .scan import SourceScan, source_files
from .states import planned_states

if TYPE_CHECKING:
    from ..plant import Plant


class GraphHost:
    def __init__(self, pipeline: Path, settings: Settings | None = None) -> None:
        self.pipeline = pipeline
        self.settings = settings if settings is not None else given()
        self.plants: list[Plant] = []
        self.model: dict[str, Any] | None = None
        self._shown: dict[int, Path] = {}  # id(plant) -> the plant dir the script named
        self._scratch: list[Path] = []

    # -- Host protocol ----------------------------------------------------------------------
    def open_store(self, plant: Plant, plant_dir: str | os.PathLike[str]) -> PlantStore:
        self.plants.append(plant)
        options = self.settings.for_plant(plant_dir, 0, plant.disk, plant.track_versions)
        plant.track_versions = options.track_versions
        wanted = options.plant_dir
        self._shown[id(plant)] = wanted
        if not wanted.is_dir() or not any(wanted.iterdir()):
            self._scratch.append(Path(tempfile.mkdtemp(prefix="pyplantd-graph-")))
            return PlantStore(self._scratch[-1], memory=0)
        try:
            return PlantStore(wanted, memory=0, disk=options.disk)
        except PlantDirError as error:
            if _locked(wanted):
                raise PlantDirError(
                    f"{error} If `pyplantd watch` serves it, `pyplant graph` draws it live."
                ) from error
            raise

    def owns_store(self, store: PlantStore) -> bool:
        return False

    def on_run_reactor(self, plant: Plant, target: str) -> bool:
        return True  # nothing runs

    def on_close(self, plant: Plant) -> None:
        self.model = graph_of(plant, self.pipeline, self._shown[id(plant)])

    # -- after the script -------------------------------------------------------------------
    def close_all(self) -> None:
        """Close plants the script left open (no `with`): each gives its graph as it closes."""
        for plant in self.plants:
            plant.shutdown()

    def remove_scratch(self) -> None:
        for scratch in self._scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def graph_of(plant: Plant, pipeline: Path, plant_dir: Path) -> dict[str, Any]:
    """The model of `plant`: states from a plan with nothing forced, edges from its records."""
    if not plant.registered():
        plant.add_all_visible_reactors()  # as its first run would
    reactors = plant.registered()
    steps = plant.plan([r.id for r in reactors], targets_always_run=False) if reactors else []
    store = plant.store
    records, ingredients = store.reactor_records(), store.ingredient_records()
    states = planned_states(steps, records, store.last_outcomes())
    scan = SourceScan(source_files([*(r.func for r in reactors), *visible_subreactors()]))
    nodes = [Node(r.id, r.name) for r in reactors]
    return build(pipeline.name, str(plant_dir), nodes, states, records, ingredients, scan)


def _locked(plant_dir: Path) -> bool:
    """Does another process hold the plant dir's lock?"""
    try:
        handle = open(plant_dir / LOCK_NAME)  # noqa: SIM115 - closed below, after the probe
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        with contextlib.suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_UN)
        return False
