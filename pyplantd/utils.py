"""PyPlant's `utils`: export ingredients from a plant to a directory and load them back, e.g. a
reactor's inputs, to debug it in isolation (with `test.PipeworkMock`).

The directory is itself a pyplantd plant dir holding only those ingredients (so `Plant(dir)`
can fetch them too); payload files are copied as they are, nothing is re-serialized.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .compat.names import pyplant_keywords, unknown_ingredient
from .errors import PlantDirError, ReactorNotFoundError, also
from .store.specs import DATASET, hdf5

# The store is imported by the functions that use it: `from pyplantd import *` loads this
# module (PyPlant's star import gives `utils`), and most scripts never call it.
if TYPE_CHECKING:
    import logging

    from .plant import Plant
    from .store.plant_store import PlantStore
    from .store.records import IngredientRecord

__all__ = ["load_ingredients_from_dir", "store_ingredients_to_dir", "store_reactor_inputs_to_dir"]

EXPORTED = "pyplantd.utils:exported"  # the producer recorded for exported ingredients


@pyplant_keywords(ingredientNames="names", dirPath="directory")
def store_ingredients_to_dir(plant: Plant, names: Iterable[str], directory: str | Path) -> None:
    """Copy the named ingredients of `plant` into the plant dir `directory`."""
    from .store.plant_store import PlantStore

    names = list(names)
    missing = [n for n in names if not plant.is_ingredient_known(n)]
    if missing:
        raise unknown_ingredient(missing[0], plant.store.ingredient_names())
    plant.store.flush()  # their payloads are complete on disk
    target = PlantStore(directory)
    try:
        for name in names:
            record = plant.store.ingredient(name)
            assert record is not None  # known, checked above
            _copy_ingredient(plant.store, target, record)
    finally:
        target.close()


@pyplant_keywords(reactorName="reactor", dirPath="directory")
def store_reactor_inputs_to_dir(plant: Plant, reactor: str, directory: str | Path) -> None:
    """Copy every ingredient that `reactor` received in its last run into `directory`."""
    try:
        target = plant._resolve(reactor)
    except ReactorNotFoundError as err:  # PyPlant looked it up in a dict: a KeyError
        raise also(KeyError, err) from None
    record = plant.store.reactor(target.id)
    if record is None:
        raise ReactorNotFoundError(
            f"Reactor '{target.name}' never ran in this plant, so its inputs are unknown. "
            "Run it first."
        )
    store_ingredients_to_dir(plant, list(record.inputs), directory)


@pyplant_keywords(
    dirPath="directory", ingredientNames="names", customSpecs="custom_specs"
)  # fmt: skip
def load_ingredients_from_dir(
    directory: str | Path,
    names: Iterable[str] | None = None,
    logger: logging.Logger | None = None,
    custom_specs: Iterable[Any] | None = None,
) -> dict[str, Any]:
    """The ingredients stored in `directory` (all, or the named ones), by name. Arrays are
    writable copies; an hdf_array is an h5py Dataset that stays open after this returns."""
    from .store.manifest import DB_NAME
    from .store.plant_store import PlantStore

    if not (Path(directory) / DB_NAME).is_file():
        raise PlantDirError(
            f"{directory} holds no stored ingredients (no {DB_NAME}). Export some first with "
            "utils.store_ingredients_to_dir(plant, names, directory)."
        )
    store = PlantStore(directory)
    try:
        if custom_specs:
            from .compat.spec_adapter import as_native

            store.register_specs([as_native(spec) for spec in custom_specs])
        records = store.ingredient_records()
        wanted = list(names) if names else sorted(records)
        unknown = [n for n in wanted if n not in records]
        if unknown:
            raise unknown_ingredient(unknown[0], records)
        return {name: _loaded(store, records[name]) for name in wanted}
    finally:
        store.close()


def _copy_ingredient(source: PlantStore, target: PlantStore, record: IngredientRecord) -> None:
    import shutil

    from .run.judge import version_key
    from .store.records import ReactorRecord, Version

    origin = source.checked_payload_path(record)  # never another user's file, nor a link
    temp = target.payloads.temp_path(record.name, origin.suffix)

    shutil.copyfile(origin, temp)
    final = target.payloads.commit(temp, record.name)
    producer = f"{EXPORTED}:{record.name}"
    output = replace(record, producer=producer, path=target.payloads.rel(final))
    reactor = ReactorRecord(producer, record.name, "", {}, {}, {}, [record.name])
    target.payloads.sync_names()
    target.commit(Version(version_key(reactor), reactor, [output], time.time()))


def _loaded(store: PlantStore, record: IngredientRecord) -> Any:
    from .store.payload_store import own_copy

    if record.type == "hdf_array":  # opened apart from the store, which closes its own files
        path = store.checked_payload_path(record)
        return hdf5().File(path, "r")[DATASET]
    return own_copy(store.load(record))
