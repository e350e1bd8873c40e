"""The daemon's graph (`pyplant graph`), built on the server thread from what the engine
publishes: its state snapshot, copies of the store's records, the registered reactors, plus a
static scan of their files. It only reads: no signatures, nothing of the engine's plant changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..reactor import visible_subreactors
from ..run.scheduler import Reactor
from .model import Node, build
from .scan import SourceScan, source_files
from .states import live_notes, live_states

if TYPE_CHECKING:
    from ..daemon.engine import Engine


class LiveGraph:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # While a save reloads the script, its new Plant has no reactors yet for a moment: the
        # graph keeps showing the last ones known.
        self._last: list[Reactor] = []

    def model(self) -> dict[str, Any]:
        engine = self.engine
        snapshot = engine.state.snapshot()
        plant, store = engine.session.plant, engine.session.store
        reactors = plant.registered() if plant is not None else []
        self._last = reactors = reactors or self._last
        records = store.reactors.copy() if store is not None else {}
        ingredients = store.ingredients.copy() if store is not None else {}
        nodes = [Node(r.id, r.name) for r in reactors]
        notes = live_notes(snapshot)
        if not reactors:
            notes.append("The pipeline has not loaded yet: see the daemon's output.")
        scan = SourceScan(source_files([*(r.func for r in reactors), *visible_subreactors()]))
        states = live_states(snapshot, nodes, records)
        plant_dir = str(store.plant_dir) if store is not None else ""
        return build(
            engine.pipeline.name, plant_dir, nodes, states, records, ingredients, scan, notes
        )
