"""The warm session: the one PlantStore the daemon keeps open across runs, handed to every
`Plant(...)` the pipeline script creates, and the targets its `run_reactor` calls name.

It is the Host (see pyplantd.host) installed while the daemon runs the script: nothing runs
during the script itself; the engine runs the collected targets afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..store.plant_store import PlantStore

if TYPE_CHECKING:
    from ..plant import Plant


class Session:
    def __init__(
        self, plant_dir: Path | None = None, memory: int | None = None, disk: int | None = None
    ) -> None:
        self.plant_dir_override = plant_dir
        self.memory, self.disk = memory, disk
        self.store: PlantStore | None = None
        self.plants: list[Plant] = []
        self.requested: list[str] = []  # reactor ids the script's run_reactor calls named

    def begin_load(self) -> None:
        """A new execution of the script: forget the previous one's plants and targets."""
        self.plants, self.requested = [], []

    # -- Host protocol ----------------------------------------------------------------------
    def open_store(self, plant: Plant, plant_dir: str | os.PathLike[str]) -> PlantStore:
        self.plants.append(plant)
        wanted = Path(self.plant_dir_override or plant_dir).expanduser().absolute()
        if self.store is not None and self.store.plant_dir != wanted:
            self.store.close()  # the script now names another plant dir
            self.store = None
        if self.store is None:
            memory = self.memory if self.memory is not None else plant.memory
            disk = self.disk if self.disk is not None else plant.disk
            self.store = PlantStore(wanted, memory, disk)
        return self.store

    def owns_store(self, store: PlantStore) -> bool:
        return True

    def on_run_reactor(self, plant: Plant, target: str) -> bool:
        if target not in self.requested:
            self.requested.append(target)
        return True  # the engine runs them after the script, as one run

    def on_close(self, plant: Plant) -> None:
        pass

    # -- after the script -------------------------------------------------------------------
    @property
    def plant(self) -> Plant | None:
        """The plant the script made last: its config and reactors are the current ones."""
        return self.plants[-1] if self.plants else None

    def close(self, timeout: float | None = None) -> None:
        if self.store is not None:
            self.store.close(timeout)
            self.store = None
