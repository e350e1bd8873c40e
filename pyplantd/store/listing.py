"""What a plant dir holds, for `pyplantd ls`: read from the manifest without taking the lock."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .locking import check_plant_dir
from .manifest import Manifest
from .payloads import PayloadFiles
from .plant_store import tier_name


@dataclass(frozen=True)
class IngredientRow:
    name: str
    producer: str
    type: str
    shape: str  # "(1000, 3) float32", "dict", ...
    size: int
    tier: str  # warm (memory only) / disk / both / missing
    age: float  # seconds since it was made
    versions: int  # results kept for its producer, the current one included


def describe_shape(meta: dict[str, object]) -> str:
    if "shape" in meta:
        dims = meta["shape"]
        shape = tuple(dims) if isinstance(dims, list | tuple) else dims
        return f"{shape} {meta.get('dtype', '')}".strip()
    kind = str(meta.get("python_type", ""))
    return f"{kind} of {meta['length']}" if "length" in meta else kind


def list_ingredients(plant_dir: Path, warm: set[str] | None = None) -> list[IngredientRow]:
    """Every current ingredient; `warm` names payload paths held in memory by the caller."""
    check_plant_dir(plant_dir, create=False)  # nothing another user could change is read
    manifest = Manifest.read_only(plant_dir)
    try:
        ingredients = manifest.ingredients()
        reactors = manifest.reactors()
        kept = manifest.version_counts()
    finally:
        manifest.close()
    files = PayloadFiles(plant_dir, create=False)
    now, rows = time.time(), []
    for record in sorted(ingredients.values(), key=lambda r: r.name):
        on_disk = files.intact(record.path, record.size)
        in_memory = warm is not None and record.path in warm
        tier = tier_name(in_memory, on_disk)
        producer = reactors[record.producer].name if record.producer in reactors else "?"
        shape = describe_shape(record.meta)
        age = now - record.created_at
        row = IngredientRow(
            record.name, producer, record.type, shape, record.size, tier, age,
            kept.get(record.producer, 0),
        )  # fmt: skip
        rows.append(row)
    return rows
