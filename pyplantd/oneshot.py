"""The host behind `pyplantd run`: runs a pipeline script once, with command-line overrides.

`--plant-dir` replaces the script's plant dir, `--target` replaces the reactors the script runs,
`--dry-run` plans instead of running, `accept` records reactors' code as unchanged. It collects
every decision for the final table.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .decisions import Decision
from .planner import PlannedStep
from .store.plant_store import PlantStore

if TYPE_CHECKING:
    from .plant import Plant


@dataclass
class OneShotOptions:
    plant_dir: Path | None = None
    targets: list[str] = field(default_factory=list)
    mode: str = "run"  # run / plan / accept
    accept: list[str] = field(default_factory=list)
    track_versions: bool = True
    memory: int | None = None
    disk: int | None = None
    on_open: Callable[[PlantStore], None] | None = None  # e.g. print the budget
    on_plant: Callable[[Plant], None] | None = None  # before its first run: follow its events


class OneShotHost:
    def __init__(self, options: OneShotOptions) -> None:
        self.options = options
        self.plants: list[Plant] = []
        self.requested: dict[int, list[str]] = {}  # id(plant) -> targets the script asked for
        self.plans: list[PlannedStep] = []
        self.accepted: list[str] = []
        self._announced: set[int] = set()  # ids of the plants given to on_plant

    # -- Host protocol ----------------------------------------------------------------------
    def open_store(self, plant: Plant, plant_dir: str | os.PathLike[str]) -> PlantStore:
        self.plants.append(plant)
        plant.track_versions = self.options.track_versions and plant.track_versions
        memory = self.options.memory if self.options.memory is not None else plant.memory
        disk = self.options.disk if self.options.disk is not None else plant.disk
        store = PlantStore(self.options.plant_dir or plant_dir, memory, disk)
        if self.options.on_open is not None:
            self.options.on_open(store)
        return store

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

    def decisions(self) -> list[Decision]:
        return [d for plant in self.plants for run in plant.runs for d in run]

    def ran_anything(self) -> bool:
        return any(plant.runs for plant in self.plants) or bool(self.plans)
