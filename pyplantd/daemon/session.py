"""The warm session: the one PlantStore the daemon keeps open across runs, handed to every
`Plant(...)` the pipeline script creates, and the targets its `run_reactor` calls name.

It is the Host (see pyplantd.hosting.host) installed while the daemon runs the script: nothing runs
during the script itself; the engine runs the collected targets afterwards. Each reload's
`Plant(memory=..., disk=...)` is applied to the open store, unless the daemon's own settings
override it, which the user is then told.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..settings import PlantOptions, Settings, given
from ..sizes import default_disk_budget, default_memory_budget, format_size
from ..store.plant_store import PlantStore

if TYPE_CHECKING:
    from ..plant import Plant


class Session:
    def __init__(
        self, settings: Settings | None = None, on_notice: Callable[[str], None] | None = None
    ) -> None:
        self.settings = settings if settings is not None else given()
        self._notice = on_notice or (lambda text: None)
        self._told: set[tuple[str, int]] = set()  # overridden script budgets already reported
        self._asked: dict[str, int | None] = {}  # the budgets the open store was given
        self.store: PlantStore | None = None
        self.plants: list[Plant] = []
        self.requested: list[str] = []  # reactor ids the script's run_reactor calls named

    def begin_load(self) -> None:
        """A new execution of the script: forget the previous one's plants and targets."""
        self.plants, self.requested = [], []

    # -- Host protocol ----------------------------------------------------------------------
    def open_store(self, plant: Plant, plant_dir: str | os.PathLike[str]) -> PlantStore:
        self.plants.append(plant)
        wanted = self.settings.for_plant(plant_dir, plant.memory, plant.disk, plant.track_versions)
        plant.track_versions = wanted.track_versions
        if self.store is not None and self.store.plant_dir != wanted.plant_dir:
            self.store.close()  # the script now names another plant dir
            self.store = None
        if self.store is None:
            self.store = PlantStore(wanted.plant_dir, wanted.memory, wanted.disk)
            self._asked = {"memory": wanted.memory, "disk": wanted.disk}
        else:
            self._apply_budgets(wanted)
        self._tell_overridden(plant)
        return self.store

    def _apply_budgets(self, wanted: PlantOptions) -> None:
        """A reload whose Plant(memory=..., disk=...) changed: the open store follows it."""
        store = self.store
        assert store is not None
        if wanted.memory != self._asked["memory"]:
            memory = wanted.memory if wanted.memory is not None else default_memory_budget()
            self._notice(
                f"memory budget {format_size(store.warm.budget)} -> {format_size(memory)}, "
                f"from {_origin(wanted.sources['memory'], 'memory')}"
            )
            store.warm.set_budget(memory)
        if wanted.disk != self._asked["disk"]:
            disk = wanted.disk if wanted.disk is not None else default_disk_budget(store.plant_dir)
            self._notice(
                f"disk budget {format_size(store.disk_budget)} -> {format_size(disk)}, "
                f"from {_origin(wanted.sources['disk'], 'disk')}"
            )
            store.disk_budget = disk
        self._asked = {"memory": wanted.memory, "disk": wanted.disk}

    def _tell_overridden(self, plant: Plant) -> None:
        """The script asks for a budget the daemon's settings override: say so, once per value."""
        for attribute, own in (("memory", plant.memory), ("disk", plant.disk)):
            setting = self.settings[attribute]
            if own is None or not setting.is_set or own == setting.value:
                continue
            if (attribute, own) in self._told:
                continue
            self._told.add((attribute, own))
            self._notice(
                f"the script's Plant({attribute}=...) asks for {format_size(own)}, which is not "
                f"used: the daemon's {attribute} budget is {format_size(setting.value)}, set by "
                f"{self.settings.source(attribute)}. Restart the daemon without that setting to "
                "use the script's."
            )

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


def _origin(source: str, attribute: str) -> str:
    if source == "the script":
        return f"Plant({attribute}=...) in the script"
    return "the default" if source == "default" else source
