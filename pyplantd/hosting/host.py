"""Hosting: lets `pyplantd run` (and later the daemon) redirect what a script's Plant(...) does.

A host is installed around the execution of a pipeline script. The script's `Plant(...)` asks it
for the store (so the daemon can hand out its warm one, and `--plant-dir` can override the dir)
and whether `run_reactor` should run now or be deferred (`--target`, `--dry-run`).
Depends only on the store.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..plant import Plant
    from ..store.plant_store import PlantStore


class Host(Protocol):
    def open_store(self, plant: Plant, plant_dir: str | os.PathLike[str]) -> PlantStore:
        """The store the plant uses; the host owns it when it returns a shared one."""

    def owns_store(self, store: PlantStore) -> bool:
        """True if the plant must not close `store` itself."""

    def on_run_reactor(self, plant: Plant, target: str) -> bool:
        """Called for each `run_reactor`; True means the host took it (nothing runs now)."""

    def on_close(self, plant: Plant) -> None:
        """Called once when the plant is closed (before its store is)."""


_current: list[Host] = []


def current_host() -> Host | None:
    return _current[-1] if _current else None


@contextlib.contextmanager
def hosting(host: Host) -> Iterator[Host]:
    _current.append(host)
    try:
        yield host
    finally:
        _current.remove(host)
