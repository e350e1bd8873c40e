"""The plant dir: manifest, payload files, damage detection, locking and foreign directories."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pyplantd import Plant, ReactorFunc
from pyplantd.errors import PlantDirError
from pyplantd.store.manifest import DB_NAME


def chain(ran: list[str]):
    @ReactorFunc
    def load(pipe):
        ran.append("load")
        pipe.send("data", np.arange(1000, dtype=np.int32))
        pipe.send("meta", {"rows": 1000})

    @ReactorFunc
    def total(pipe):
        ran.append("total")
        data = yield pipe.receive("data")
        meta = yield pipe.receive("meta")
        pipe.send("total", (int(data.sum()), meta["rows"]))

    return load, total


def run_total(plant_dir, ran):
    ran.clear()
    with Plant(plant_dir) as plant:
        plant.add_reactors(*chain(ran))
        plant.run_reactor("total")
        return plant.fetch_ingredient("total")


def payload_of(plant_dir, name):
    with Plant(plant_dir) as plant:
        return plant_dir / plant.store.ingredients[name].path


@pytest.mark.parametrize("damage", ["delete", "truncate", "flip"])
@pytest.mark.parametrize("name", ["data", "meta"])
def test_damaged_payload_is_detected_and_its_producer_reruns(plant_dir, caplog, damage, name):
    ran: list[str] = []
    expected = run_total(plant_dir, ran)
    path = payload_of(plant_dir, name)
    raw = bytearray(path.read_bytes())
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    else:  # same size, altered content
        raw[-20] ^= 0xFF
        path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING):
        assert run_total(plant_dir, ran) == expected
    assert sorted(ran) == ["load", "total"]


def test_flipped_byte_found_on_load_gives_a_warning(plant_dir, caplog):
    ran: list[str] = []
    run_total(plant_dir, ran)
    path = payload_of(plant_dir, "meta")
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x01
    path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING):
        run_total(plant_dir, ran)
    assert "meta" in caplog.text and "producer will run again" in caplog.text


def test_orphan_and_temporary_payloads_are_removed_at_start(plant_dir):
    ran: list[str] = []
    run_total(plant_dir, ran)
    payloads = plant_dir / "payloads"
    (payloads / ".tmp-0123456789ab-data.h5").write_bytes(b"half written")
    (payloads / "data-0123456789ab.h5").write_bytes(b"never committed")
    with Plant(plant_dir):
        pass
    names = sorted(p.name for p in payloads.iterdir())
    assert not any(n.startswith(".tmp") or n == "data-0123456789ab.h5" for n in names)
    assert len(names) == 3  # data, meta, total


@pytest.mark.parametrize(
    "array",
    [
        np.array(["a", "bc", "déjà"]),  # numpy unicode: HDF5 has no such type
        np.array(["2024-01-01", "2024-06-30"], dtype="datetime64[D]"),
        np.array([1, "x", None], dtype=object),
    ],
    ids=["unicode", "datetime64", "object"],
)
def test_arrays_hdf5_cannot_hold_are_stored_inside_the_file_pickled(plant_dir, array):
    @ReactorFunc
    def make(pipe):
        pipe.send("a", array)

    with Plant(plant_dir) as plant:
        plant.run_reactor(make)
    with Plant(plant_dir) as plant:  # from disk, verified against its checksum
        loaded = plant.fetch_ingredient("a")
    assert loaded.dtype == array.dtype and loaded.tolist() == array.tolist()
    assert not loaded.flags.writeable


def test_undoing_a_param_edit_restores_the_earlier_result_without_running(plant_dir):
    ran: list[int] = []

    @ReactorFunc
    def make(pipe, config):
        ran.append(config.n)
        pipe.send("v", config.n * 100)

    @ReactorFunc
    def show(pipe):
        pipe.send("shown", (yield pipe.receive("v")))

    def go(n):
        with Plant(plant_dir) as plant:
            plant.set_config({"n": n})
            decisions = {d.reactor: d for d in plant.run_reactor(show)}
            return decisions["make"], plant.fetch_ingredient("shown")

    go(10)
    go(20)
    decision, shown = go(10)
    assert ran == [10, 20] and shown == 1000
    assert decision.status == "cached"
    assert decision.reasons == ["restored an earlier result (param 'n' changed 20 -> 10)"]
    assert len(list((plant_dir / "payloads").iterdir())) == 4  # v and shown, two versions each


def test_metadata_lives_in_sqlite_with_wal(plant_dir):
    ran: list[str] = []
    run_total(plant_dir, ran)
    db = sqlite3.connect(plant_dir / DB_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "reactors", "ingredients", "runs", "history"} <= tables
    assert db.execute("SELECT count(*) FROM ingredients").fetchone()[0] == 3


def test_foreign_directory_is_refused_and_untouched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(PlantDirError, match=r"not a pyplantd plant dir.*nothing was deleted"):
        Plant(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_pyplant_directory_gets_a_hint(tmp_path):
    (tmp_path / "plant.pcl").write_bytes(b"x")
    with pytest.raises(PlantDirError, match=r"PyPlant 0\.6\.0 plant dir \(plant\.pcl\)"):
        Plant(tmp_path)


def test_incompatible_format_version_is_refused(plant_dir):
    with Plant(plant_dir):
        pass
    db = sqlite3.connect(plant_dir / DB_NAME)
    db.execute("UPDATE meta SET value='999' WHERE key='format_version'")
    db.commit()
    db.close()
    with pytest.raises(PlantDirError, match="version 999"):
        Plant(plant_dir)
    assert (plant_dir / DB_NAME).exists()


def test_a_file_is_not_a_plant_dir(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(PlantDirError, match="is a file"):
        Plant(tmp_path / "f")


def test_plant_dir_in_use_by_another_process_is_refused(plant_dir):
    holder = textwrap.dedent(
        f"""
        import sys, time
        from pyplantd import Plant
        with Plant({str(plant_dir)!r}):
            print('ready', flush=True)
            sys.stdin.readline()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with pytest.raises(PlantDirError, match=r"in use by another process \(pid \d+"):
            Plant(plant_dir)
    finally:
        proc.communicate("\n", timeout=30)
    with Plant(plant_dir):  # released when the holder exits
        pass


class Text:
    """A custom value type with its own storage format."""

    def __init__(self, body: str) -> None:
        self.body = body


def test_custom_ingredient_spec_stores_infers_and_fetches(plant_dir):
    from pyplantd import IngredientTypeSpec

    class TextSpec(IngredientTypeSpec):
        name = "text"
        suffix = ".txt"

        def is_instance(self, value):
            return isinstance(value, Text)

        def store(self, value, path):
            with open(path, "w") as handle:
                handle.write(value.body)

        def fetch(self, path):
            with open(path) as handle:
                return Text(handle.read())

    @ReactorFunc
    def write(pipe):
        pipe.send("inferred", Text("hello"))
        pipe.send("explicit", Text("there"), type=TextSpec)

    for _ in range(2):  # written, then read back in a new plant
        with Plant(plant_dir) as plant:
            plant.register_ingredient_specs([TextSpec()])
            plant.run_reactor(write)
    with Plant(plant_dir) as plant:
        plant.register_ingredient_specs([TextSpec()])
        assert plant.fetch_ingredient("inferred").body == "hello"
        assert plant.store.ingredients["explicit"].type == "text"
        assert plant.store.ingredients["explicit"].path.endswith(".txt")


def test_unregistered_custom_type_is_a_clear_error(plant_dir):
    @ReactorFunc
    def write(pipe):
        pipe.send("x", 1, type="nonexistent")

    with Plant(plant_dir) as plant, pytest.raises(Exception, match="register_ingredient_specs"):
        plant.run_reactor(write)


def test_a_manifest_path_outside_the_plant_dir_is_never_loaded(plant_dir, tmp_path):
    ran: list[str] = []
    run_total(plant_dir, ran)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"not loaded")
    db = sqlite3.connect(plant_dir / DB_NAME)
    db.execute("UPDATE ingredients SET path = ? WHERE name = 'meta'", ("payloads/../../evil.pkl",))
    db.commit()
    db.close()
    assert run_total(plant_dir, ran) == (499500, 1000)
    assert sorted(ran) == ["load", "total"]  # treated as missing: its producer ran again


def test_disk_budget_removes_least_recently_used_old_versions(plant_dir):
    @ReactorFunc
    def make(pipe, config):
        pipe.send("v", np.full(100_000, config.n, dtype=np.int64))  # 800 kB each

    def go(n):
        with Plant(plant_dir, disk="2MB") as plant:
            plant.set_config({"n": n})
            plant.run_reactor(make)
            return {key[1] for key in plant.store.versions}, plant.store.ingredients["v"]

    for n in (1, 2, 3, 4):
        keys, current = go(n)
    assert len(keys) == 2  # 4 versions of 800 kB do not fit in 2 MB: the oldest went
    files = list((plant_dir / "payloads").iterdir())
    assert len(files) == 2 and (plant_dir / current.path).exists()


def test_the_payload_folder_is_fsynced_before_a_commit_only_after_a_rename(plant_dir, monkeypatch):
    """A commit makes the renames of its payloads durable first (an fsync of the folder); a
    reactor that stored nothing new (a sink) costs no such fsync."""
    from pyplantd.store import payloads, plant_store

    synced: list[str] = []
    fsync_path = payloads.fsync_path
    monkeypatch.setattr(
        payloads, "fsync_path", lambda path: synced.append(str(path)) or fsync_path(path)
    )
    committed: list[str] = []
    commit = plant_store.PlantStore.commit

    def recording_commit(self, version):
        committed.append(version.record.name)
        synced.append(f"commit {version.record.name}")
        return commit(self, version)

    monkeypatch.setattr(plant_store.PlantStore, "commit", recording_commit)

    @ReactorFunc
    def make(pipe):
        pipe.send("values", np.arange(6.0))

    @ReactorFunc
    def show(pipe):
        values = yield pipe.receive("values")
        print(float(values.sum()))

    folder = str(plant_dir / payloads.PAYLOAD_DIR)
    with Plant(plant_dir) as plant:
        plant.add_reactors(make, show)
        plant.run_reactor("show")
    assert synced.index(folder) < synced.index("commit make")  # renamed, synced, recorded
    synced.clear()
    with Plant(plant_dir) as plant:
        plant.add_reactors(make, show)
        plant.run_reactor("show")  # show runs again (a target); make is served
    assert committed[-1] == "show" and "commit show" in synced
    assert folder not in synced, synced
