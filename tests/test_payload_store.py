"""The payload store without the plant lock: another process writes and reads payloads of a
plant dir that a PlantStore holds open, and garbage collection spares them while jobs run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import mapped_file

from pyplantd.errors import StoreError
from pyplantd.store.payload_store import PayloadStore
from pyplantd.store.plant_store import PlantStore, output_record
from pyplantd.store.records import IngredientRecord

# Run in a second process while the test's PlantStore holds the plant lock.
_WRITER = textwrap.dedent(
    """
    import json, sys
    from dataclasses import asdict
    from pathlib import Path
    import numpy as np
    from pyplantd.store.payload_store import PayloadStore

    store = PayloadStore(Path(sys.argv[1]), create=False)
    out = {}
    for name, value in [("grid", np.arange(12.0).reshape(3, 4)), ("meta", {"rows": 3})]:
        out[name] = asdict(store.write(name, "array" if name == "grid" else "object", value))
    print(json.dumps(out))
    """
)


def _record(name: str, type_name: str, payload: dict) -> IngredientRecord:
    return IngredientRecord(
        name, "elsewhere", type_name, payload["fingerprint"], payload["path"], payload["size"],
        payload["meta"], 0.0, payload["checksum"],
    )  # fmt: skip


def test_another_process_writes_durable_payloads_the_plant_reads_with_the_same_fingerprints(
    plant_dir: Path,
) -> None:
    store = PlantStore(plant_dir)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _WRITER, str(plant_dir)],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        written = json.loads(done.stdout)
        grid = _record("grid", "array", written["grid"])
        meta = _record("meta", "object", written["meta"])
        # the same values written by the plant itself: the same content fingerprints
        local = {
            name: output_record(store.write(name, kind, value), name, "here", kind)
            for name, kind, value in [
                ("grid", "array", np.arange(12.0).reshape(3, 4)), ("meta", "object", {"rows": 3}),
            ]
        }  # fmt: skip
        assert grid.fingerprint == local["grid"].fingerprint
        assert meta.fingerprint == local["meta"].fingerprint
        assert grid.checksum and meta.checksum
        loaded = store.load(grid)
        assert mapped_file(loaded) == str(plant_dir / grid.path)  # a map, not a copy
        assert not loaded.flags.writeable
        assert loaded.tolist() == np.arange(12.0).reshape(3, 4).tolist()
        assert store.load(meta) == {"rows": 3}
        # no temporary file left, names are final
        names = [p.name for p in (plant_dir / "payloads").iterdir()]
        assert not [n for n in names if n.startswith(".tmp-")]
    finally:
        store.close()


def test_a_payload_changed_after_another_process_wrote_it_fails_its_checksum(
    plant_dir: Path,
) -> None:
    store = PlantStore(plant_dir)
    try:
        worker = PayloadStore(plant_dir, create=False)
        payload = worker.write("meta", "object", {"rows": 3})
        record = IngredientRecord(
            "meta", "x", "object", str(payload.fingerprint), payload.path, payload.size,
            payload.meta, 0.0, payload.checksum,
        )  # fmt: skip
        path = plant_dir / payload.path
        data = bytearray(path.read_bytes())
        data[-2] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(StoreError, match="does not match its recorded checksum"):
            store.load(record)
    finally:
        store.close()


def test_no_garbage_collection_while_jobs_write_from_other_processes(plant_dir: Path) -> None:
    store = PlantStore(plant_dir)
    try:
        worker = PayloadStore(plant_dir, create=False)
        store.job_started()
        payload = worker.write("result", "object", [1, 2, 3])  # not committed yet
        temp = worker.files.temp_path("half", ".pkl")  # a write still going on
        assert store.sweep() == []
        with pytest.raises(StoreError, match="still writing to it from worker processes"):
            store.clean()
        assert (plant_dir / payload.path).exists() and temp.exists()
        store.job_ended()
        # the job ended without its payload being committed: now it is garbage
        assert sorted(store.sweep()) == sorted([Path(payload.path).name, temp.name])
        store.clean()
    finally:
        store.close()


def test_a_committed_payload_written_elsewhere_survives_garbage_collection(
    plant_dir: Path,
) -> None:
    from pyplantd.store.records import ReactorRecord, Version

    store = PlantStore(plant_dir)
    try:
        worker = PayloadStore(plant_dir, create=False)
        store.job_started()
        payload = worker.write("result", "object", [1, 2, 3])
        store.job_ended()
        out = replace(_record("result", "object", {**payload.__dict__}), producer="r")
        record = ReactorRecord("r", "r", "c", {}, {}, {}, ["result"])
        store.payloads.sync_names()
        store.commit(Version("k", record, [out]))
        assert store.sweep() == []
        store.clean()
        assert store.load(out) == [1, 2, 3]
    finally:
        store.close()
