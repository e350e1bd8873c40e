"""The host behind `pyplantd run`: runs a pipeline script once, with command-line overrides.

The command's settings (see settings.py) may replace the script's plant dir, budgets and the
reactors it runs; `--dry-run` plans instead of running (against a plant dir that does not exist
yet, in a scratch one: it creates nothing), `accept` records reactors' code as unchanged. It
collects every decision for the final table.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..run.judge import Decision
from ..run.planner import PlannedStep
from ..settings import PlantOptions, Settings, given
from ..store.plant_store import PlantStore

if TYPE_CHECKING:
    from ..plant import Plant


@dataclass
class OneShotOptions:
    settings: Settings = field(default_factory=given)  # plant dir, budgets, targets
    mode: str = "run"  # run / plan / accept
    accept: list[str] = field(default_factory=list)
    on_open: Callable[[PlantStore, PlantOptions], None] | None = None  # e.g. print the budget
    on_plant: Callable[[Plant], None] | None = None  # before its first run: follow its events

    @property
    def targets(self) -> list[str]:
        return self.settings.targets


class OneShotHost:
    def __init__(self, options: OneShotOptions) -> None:
        self.options = options
        self.plants: list[Plant] = []
        self.requested: dict[int, list[str]] = {}  # id(plant) -> targets the script asked for
        self.plans: list[PlannedStep] = []
        self.accepted: list[str] = []
        self._scratch: list[Path] = []
        self._announced: set[int] = set()  # ids of the plants given to on_plant

    # -- Host protocol ----------------------------------------------------------------------
    def open_store(self, plant: Plant, plant_dir: str | os.PathLike[str]) -> PlantStore:
        self.plants.append(plant)
        settings = self.options.settings
        wanted = settings.for_plant(plant_dir, plant.memory, plant.disk, plant.track_versions)
        plant.track_versions = wanted.track_versions
        if self.options.mode == "plan" and _new(wanted.plant_dir):
            store = self._scratch_store()  # a dry run creates nothing on disk
        else:
            store = PlantStore(wanted.plant_dir, wanted.memory, wanted.disk)
        if self.options.on_open is not None:
            self.options.on_open(store, wanted)
        return store

    def _scratch_store(self) -> PlantStore:
        """An empty store in a temporary dir, removed when the run ends: planning against a
        plant dir that does not exist yet (or is empty) must not create it."""
        scratch = Path(tempfile.mkdtemp(prefix="pyplantd-plan-"))
        self._scratch.append(scratch)
        return PlantStore(scratch, memory=0)

    def owns_store(self, store: PlantStore) -> bool:
        return False

    def on_run_reactor(self, plant: Plant, target: str) -> bool:
        self._before_runs(plant)
        self.requested.setdefault(id(plant), []).append(target)
        return self.options.mode != "run" or bool(self.options.targets)

    def on_close(self, plant: Plant) -> None:
        self._before_runs(plant)
        mode = self.options.mode
        targets = self.options.targets or self.requested.get(id(plant), [])
        if mode == "run" and self.options.targets:
            plant.run_reactors(targets)
        elif mode == "plan" and targets:
            self.plans += plant.plan(targets)
        elif mode == "accept":
            for name in self.options.accept:
                plant.accept(name)
                self.accepted.append(name)

    def _before_runs(self, plant: Plant) -> None:
        if self.options.on_plant is not None and id(plant) not in self._announced:
            self._announced.add(id(plant))
            self.options.on_plant(plant)

    # -- after the script -------------------------------------------------------------------
    def close_all(self) -> None:
        """Close plants the script left open (no `with`), running deferred targets."""
        for plant in self.plants:
            plant.shutdown()

    def remove_scratch(self) -> None:
        """Remove the scratch plant dirs of a dry run (once its plants are closed)."""
        for scratch in self._scratch:
            shutil.rmtree(scratch, ignore_errors=True)

    def decisions(self) -> list[Decision]:
        return [d for plant in self.plants for run in plant.runs for d in run]

    def ran_anything(self) -> bool:
        return any(plant.runs for plant in self.plants) or bool(self.plans)


def _new(plant_dir: Path) -> bool:
    """Not there yet, or empty: a run would create it."""
    try:
        return not any(plant_dir.iterdir())
    except FileNotFoundError:
        return True
    except OSError:
        return False  # the store says what is wrong with it
