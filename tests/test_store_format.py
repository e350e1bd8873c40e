"""The manifest's format: a plant dir of the previous format (1) is upgraded once and keeps
serving its results and kept versions; kept versions are decoded only when used, and their
bookkeeping (bytes, payloads still referenced) stays right without decoding them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pyplantd import Plant, ReactorFunc
from pyplantd.store.listing import list_ingredients
from pyplantd.store.manifest import DB_NAME, FORMAT_VERSION
from pyplantd.store.reader import PlantReader

# The versions table as format 1 made it (no payloads column, no covering index).
_FORMAT_1_VERSIONS = """
CREATE TABLE versions_1 (
    reactor TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, used_at REAL NOT NULL,
    PRIMARY KEY (reactor, key));
INSERT INTO versions_1 SELECT reactor, key, body, used_at FROM versions;
DROP INDEX versions_kept;
DROP TABLE versions;
ALTER TABLE versions_1 RENAME TO versions;
UPDATE meta SET value = '1' WHERE key = 'format_version';
"""


def pipeline(ran: list[str]):
    @ReactorFunc
    def load(pipe):
        n = pipe.read_config("n")
        ran.append(f"load {n}")
        pipe.send("data", list(range(n)))

    @ReactorFunc
    def total(pipe):
        data = yield pipe.receive("data")
        ran.append("total")
        pipe.send("total", sum(data))

    return load, total


def run(plant_dir: Path, n: int, ran: list[str]) -> int:
    ran.clear()
    with Plant(plant_dir) as plant:
        plant.add_reactors(*pipeline(ran))
        plant.set_config({"n": n})
        plant.run_reactor("total")
        return plant.fetch_ingredient("total")


def as_format_1(plant_dir: Path) -> None:
    db = sqlite3.connect(plant_dir / DB_NAME)
    db.executescript(_FORMAT_1_VERSIONS)
    db.close()


def format_of(plant_dir: Path) -> str:
    db = sqlite3.connect(plant_dir / DB_NAME)
    try:
        return db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()[0]
    finally:
        db.close()


def payload_files(plant_dir: Path) -> set[str]:
    return {p.name for p in (plant_dir / "payloads").iterdir()}


def test_a_plant_dir_of_format_1_is_upgraded_once_and_serves_its_results_and_versions(plant_dir):
    ran: list[str] = []
    assert run(plant_dir, 3, ran) == 3 and run(plant_dir, 4, ran) == 6  # n=3 is kept
    as_format_1(plant_dir)

    assert [row.versions for row in list_ingredients(plant_dir)] == [2, 2]  # read-only: as is
    with PlantReader(plant_dir) as reader:
        assert reader.fetch("total") == 6
    assert format_of(plant_dir) == "1"

    assert run(plant_dir, 4, ran) == 6 and ran == ["total"]  # served: only the target ran
    files = payload_files(plant_dir)
    assert format_of(plant_dir) == FORMAT_VERSION
    assert run(plant_dir, 3, ran) == 3 and ran == ["total"]  # the undo restored load's n=3
    # nothing lost: the target ran with n=3's inputs again, replacing its kept copy of them
    assert {f for f in payload_files(plant_dir) if not f.startswith("total-")} == {
        f for f in files if not f.startswith("total-")
    }
    assert run(plant_dir, 5, ran) == 10 and ran == ["load 5", "total"]


@pytest.mark.parametrize("body", ["{not json", '{"broken": 1}'])
def test_a_kept_version_whose_body_cannot_be_read_is_forgotten_by_the_upgrade(plant_dir, body):
    ran: list[str] = []
    run(plant_dir, 3, ran)
    run(plant_dir, 4, ran)
    as_format_1(plant_dir)
    db = sqlite3.connect(plant_dir / DB_NAME)
    db.execute(  # load's n=3, kept for an undo
        "UPDATE versions SET body = ? WHERE reactor LIKE '%load' AND "
        "used_at = (SELECT min(used_at) FROM versions WHERE reactor LIKE '%load')",
        (body,),
    )
    db.commit()
    db.close()

    assert run(plant_dir, 4, ran) == 6 and ran == ["total"]  # the current one is intact
    assert run(plant_dir, 3, ran) == 3 and ran == ["load 3", "total"]  # n=3 was forgotten


def test_versions_read_at_open_are_decoded_only_when_used(plant_dir):
    ran: list[str] = []
    for n in (1, 2, 3):
        run(plant_dir, n, ran)
    with Plant(plant_dir) as plant:
        store = plant.store
        assert len(store.versions) == 6  # three of each reactor
        decoded = [k for k in store.versions._kept.values() if k._version is not None]
        assert decoded == []
        assert store.versions.stored_bytes == sum(
            (plant_dir / path).stat().st_size for path in store.versions.paths()
        )


def test_a_target_that_reruns_with_the_same_inputs_replaces_its_kept_copy_on_disk(plant_dir):
    """The version a commit replaces (same key) is known by the payloads stored beside it,
    not by its body, which the commit has just overwritten: its payload goes at once."""
    ran: list[str] = []
    run(plant_dir, 2, ran)
    with Plant(plant_dir) as plant:
        plant.add_reactors(*pipeline(ran))
        plant.set_config({"n": 2})
        old = plant.store.ingredients["total"].path
        plant.run_reactor("total")  # the target runs again, with the same inputs
        plant.store.flush()
        new = plant.store.ingredients["total"].path
        assert new != old
        assert not (plant_dir / old).exists()
        assert (plant_dir / new).exists()
        assert plant.store.versions.paths() >= {new}
        assert old not in plant.store.versions.paths()


def test_a_damaged_payloads_column_is_read_from_the_body_instead(plant_dir):
    ran: list[str] = []
    run(plant_dir, 1, ran)
    run(plant_dir, 2, ran)
    db = sqlite3.connect(plant_dir / DB_NAME)
    bodies = dict(db.execute("SELECT key, body FROM versions").fetchall())
    db.execute("UPDATE versions SET payloads = 'not json' WHERE reactor LIKE '%load'")
    db.commit()
    db.close()
    with Plant(plant_dir) as plant:
        expected = {o["path"] for body in bodies.values() for o in json.loads(body)["outputs"]}
        assert plant.store.versions.paths() == expected
    assert run(plant_dir, 1, ran) == 0 and ran == ["total"]


def test_status_names_warm_values_of_kept_versions_decoding_only_those(plant_dir):
    ran: list[str] = []
    for n in (1, 2, 3):
        run(plant_dir, n, ran)  # kept: load's and total's results for n=1 and n=2
    with Plant(plant_dir) as plant:
        plant.add_reactors(*pipeline(ran))
        for n in (2, 4):  # n=2 is restored, then n=4 runs: n=2's values stay warm
            plant.set_config({"n": n})
            plant.run_reactor("total")
        plant.store.flush()
        kept = plant.store.versions._kept
        decoded = {key for key, k in kept.items() if k._version is not None}
        rows = {(row["name"], row["why"]) for row in plant.store.warm_contents()}
        decoded_for_it = {key for key, k in kept.items() if k._version is not None} - decoded
    assert ("data", "current value") in rows and ("total", "current value") in rows
    assert ("data", "earlier version, kept for an undo until the budget needs its room") in rows
    assert len(kept) == 8 and len(decoded_for_it) <= 2  # at most n=2's two, which are warm


def test_status_decodes_no_kept_version_when_no_warm_value_is_only_theirs(plant_dir):
    ran: list[str] = []
    for n in (1, 2, 3):
        run(plant_dir, n, ran)
    with Plant(plant_dir) as plant:
        plant.add_reactors(*pipeline(ran))
        plant.set_config({"n": 3})
        plant.run_reactor("total")  # load is served, the target runs
        plant.store.flush()
        rows = plant.store.warm_contents()
        decoded = [k for k in plant.store.versions._kept.values() if k._version is not None]
    assert {row["why"] for row in rows} == {"current value"}
    assert len(decoded) <= 1  # at most the target's own new version, made in this run


def test_a_kept_version_whose_payloads_and_body_are_both_damaged_is_left_out(plant_dir):
    ran: list[str] = []
    run(plant_dir, 1, ran)
    run(plant_dir, 2, ran)  # n=1 is kept
    db = sqlite3.connect(plant_dir / DB_NAME)
    db.execute(
        "UPDATE versions SET payloads = 'not json', body = 'not json either' "
        "WHERE reactor LIKE '%load' AND "
        "used_at = (SELECT min(used_at) FROM versions WHERE reactor LIKE '%load')"
    )
    db.commit()
    db.close()
    assert run(plant_dir, 2, ran) == 1 and ran == ["total"]
    assert run(plant_dir, 1, ran) == 0 and ran == ["load 1", "total"]  # not restored: re-run
