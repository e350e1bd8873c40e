"""The graph model: reactors as nodes with their state, ingredients as edges with their size, as
plain JSON (it crosses the wire to `pyplant graph`; pyplant_client.graph_render draws it).

Edges come from the records of reactors' last runs; a reactor that never ran (or a name its code
now uses that its last run did not) contributes the edges of a static scan, marked `static`.
Pure: the callers gather records, states and the scan; this module only assembles them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..store.records import IngredientRecord, ReactorRecord
from .scan import Found, SourceScan

MODEL_VERSION = 1
STATES = ("fresh", "stale", "failed", "never ran", "running")
ALL_STATIC = (
    "Nothing has run yet: the edges come from a static scan of the code's receive/send names."
)
SOME_STATIC = (
    "Edges marked static come from a static scan of the code: their reactors have not run "
    "with them yet."
)


@dataclass(frozen=True)
class Node:
    """A registered reactor: its id (`module:qualname`) and short name."""

    id: str
    name: str


@dataclass
class NodeState:
    state: str  # one of STATES
    why: list[str] = field(default_factory=list)
    duration: float | None = None  # seconds, of its last real run
    elapsed: float | None = None  # seconds, while running


def build(
    title: str,
    plant_dir: str,
    nodes: list[Node],
    states: Mapping[str, NodeState],
    records: Mapping[str, ReactorRecord],
    ingredients: Mapping[str, IngredientRecord],
    scan: SourceScan,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The model of `nodes` (reactor id -> state in `states`), as JSON-ready data."""
    recorded = {n.id: records[n.id] for n in nodes if n.id in records}
    found = {n.id: scan.reactor(n.name) for n in nodes}
    edges = _edges(nodes, recorded, ingredients, found)
    notes = list(notes or [])
    if edges and all(e["static"] for e in edges) and not recorded:
        notes.insert(0, ALL_STATIC)
    elif any(e["static"] for e in edges):
        notes.insert(0, SOME_STATIC)
    notes += [f"Could not scan {problem}." for problem in scan.problems]
    names = Counter(n.name for n in nodes)
    reactors = [
        _reactor(n, names[n.name] > 1, states.get(n.id) or NodeState("never ran"), found[n.id],
                 n.id in recorded)
        for n in nodes
    ]  # fmt: skip
    return {
        "v": MODEL_VERSION, "pipeline": title, "plant_dir": plant_dir,
        "static": bool(edges) and not recorded, "notes": notes, "reactors": reactors,
        "edges": edges,
    }  # fmt: skip


def _reactor(
    node: Node, ambiguous: bool, state: NodeState, found: Found | None, recorded: bool
) -> dict[str, Any]:
    hidden = list(found.hidden) if found is not None else []
    if found is None and not recorded:
        hidden.append("its source was not found: its ingredients are known once it runs")
    return {
        "id": node.id, "name": node.id if ambiguous else node.name, "state": state.state,
        "why": list(state.why), "duration": state.duration, "elapsed": state.elapsed,
        "hidden": hidden,
    }  # fmt: skip


def _edges(
    nodes: list[Node],
    recorded: Mapping[str, ReactorRecord],
    ingredients: Mapping[str, IngredientRecord],
    found: Mapping[str, Found | None],
) -> list[dict[str, Any]]:
    producers = _producers(nodes, recorded, ingredients, found)
    edges: list[dict[str, Any]] = []

    def add(name: str, source: str | None, target: str | None, static: bool) -> None:
        stored = ingredients.get(name)
        edges.append({
            "ingredient": name, "source": source, "target": target, "static": static,
            "size": stored.size if stored is not None else None,
        })  # fmt: skip

    for node in nodes:
        record, scanned = recorded.get(node.id), found.get(node.id)
        inputs = [(name, False) for name in record.inputs] if record else []
        own = set(record.outputs) if record else set()
        if scanned is not None:
            own.update(scanned.sends)
            inputs += [(name, True) for name in scanned.receives if not record or
                       name not in record.inputs]  # fmt: skip
        for name, static in inputs:
            if name in own:  # what it sends itself (through a subreactor) links no two reactors
                continue
            source, source_static = producers.get(name, (None, static))
            add(name, source, node.id, static or source_static)
    received = {(e["source"], e["ingredient"]) for e in edges}
    for name, (source, static) in producers.items():
        if (source, name) not in received:  # an output nobody receives (yet)
            add(name, source, None, static)
    return edges


def _producers(
    nodes: list[Node],
    recorded: Mapping[str, ReactorRecord],
    ingredients: Mapping[str, IngredientRecord],
    found: Mapping[str, Found | None],
) -> dict[str, tuple[str, bool]]:
    """Ingredient -> (the reactor that sends it, known only from the scan)."""
    producers: dict[str, tuple[str, bool]] = {}
    for node in nodes:  # in order: the registered reactors' recorded outputs first
        for name in recorded[node.id].outputs if node.id in recorded else ():
            producers.setdefault(name, (node.id, False))
    for name, stored in ingredients.items():  # the current version's producer wins
        if stored.producer in recorded and name in producers:
            producers[name] = (stored.producer, False)
    for node in nodes:
        scanned = found.get(node.id)
        for name in scanned.sends if scanned is not None else ():
            producers.setdefault(name, (node.id, True))
    return producers
