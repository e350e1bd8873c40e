"""The warm tier and the disk tier: budget, write-behind, out-of-core reads, faults."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import mapped_file

from pyplantd import Ingredient, Plant, ReactorFunc
from pyplantd.sizes import format_size, parse_size
from pyplantd.store.warm import WarmTier

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1024", 1024),
        ("512MB", 512 * 10**6),
        ("4GiB", 4 * 2**30),
        ("1.5 kib", 1536),
        ("2g", 2 * 2**30),
    ],
)
def test_sizes_parse_decimal_and_binary_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "lots", "12 parsecs", "-5MB"])
def test_bad_sizes_say_how_to_write_one(bad):
    with pytest.raises(ValueError, match="512MB"):
        parse_size(bad)


def test_format_size():
    assert format_size(1536) == "1.5 KiB" and format_size(3 * 2**30) == "3.0 GiB"


def test_warm_tier_drops_least_recently_used_durable_values_only():
    warm = WarmTier(budget=100)
    warm.put("a", "A", 60, durable=False)
    warm.put("b", "B", 60, durable=False)  # over budget, but nothing is on disk yet
    assert warm.get("a") == "A" and warm.get("b") == "B"
    warm.mark_durable("a")  # now "a" may go: it is the least recently used durable one
    assert "a" not in warm and warm.get("b") == "B" and warm.warm_bytes == 60
    warm.put("c", "C", 30, durable=True)
    warm.get("b")
    warm.mark_durable("b")
    assert warm.warm_bytes == 90 and "b" in warm and "c" in warm


def test_send_returns_before_the_disk_and_the_run_ends_durable(plant_dir):
    seen = {}

    @ReactorFunc
    def make(pipe):
        seen["sent"] = np.ones(4 * 2**20, dtype=np.float32)
        pipe.send("big", seen["sent"])

    @ReactorFunc
    def use(pipe):
        big = yield pipe.receive("big")
        seen["same_memory"] = np.shares_memory(big, seen["sent"])  # not a copy
        pipe.send("total", float(big.sum()))

    with Plant(plant_dir) as plant:
        plant.run_reactor(use)
        assert plant.store.writer.pending() == []  # the run ended durable
        records = plant.store.ingredients
    assert seen["same_memory"]
    for record in records.values():
        assert (plant_dir / record.path).stat().st_size == record.size


def test_an_array_larger_than_the_budget_is_read_from_disk_lazily(plant_dir, caplog):
    @ReactorFunc
    def make(pipe):
        pipe.send("big", np.arange(2**20, dtype=np.float64))  # 8 MiB

    @ReactorFunc
    def use(pipe):
        big = yield pipe.receive("big")
        pipe.send("total", float(big[::1024].sum()))

    with caplog.at_level(logging.WARNING), Plant(plant_dir, memory="1MiB") as plant:
        plant.run_reactor(use)
    assert "larger than the memory budget" in caplog.text
    with Plant(plant_dir, memory="1MiB") as plant:
        big = plant.fetch_ingredient("big")
        payload = plant_dir / plant.store.ingredients["big"].path
        assert mapped_file(big) == str(payload) and not big.flags.writeable
        assert big[12345] == 12345.0
        assert plant.store.warm.warm_bytes == 0
        with pytest.raises(ValueError, match="read-only"):
            big[0] = 1


def test_allocated_chunked_array_is_written_and_read_block_by_block(plant_dir):
    rows = 64

    @ReactorFunc
    def write(pipe):
        data = pipe.allocate(
            "frames", Ingredient.Type.hdf_array, shape=(rows, 256, 256), dtype="f4",
            chunks=(1, 256, 256), compression="gzip",
        )  # fmt: skip
        for i in range(rows):
            data[i] = i
        pipe.send("frames", data)

    @ReactorFunc
    def reduce(pipe):
        frames = yield pipe.receive("frames")
        assert isinstance(frames, h5py.Dataset)
        pipe.send("means", [float(frames[i].mean()) for i in range(frames.shape[0])])

    with Plant(plant_dir, memory="1MiB") as plant:
        plant.run_reactor(reduce)
        assert plant.fetch_ingredient("means") == [float(i) for i in range(rows)]


def test_a_budget_smaller_than_every_ingredient_still_runs(plant_dir):
    @ReactorFunc
    def make(pipe):
        for i in range(5):
            pipe.send(f"part{i}", np.full(100_000, i, dtype=np.int64))

    @ReactorFunc
    def combine(pipe):
        parts = []
        for i in range(5):
            parts.append((yield pipe.receive(f"part{i}")))
        pipe.send("sum", int(sum(p.sum() for p in parts)))

    with Plant(plant_dir, memory=1000) as plant:
        plant.run_reactor(combine)
        assert plant.fetch_ingredient("sum") == 100_000 * 10
        assert plant.store.warm.warm_bytes <= 1000


def test_received_values_of_an_earlier_run_are_warm(plant_dir):
    @ReactorFunc
    def make(pipe):
        pipe.send("a", np.arange(10))

    @ReactorFunc
    def use(pipe):
        pipe.send("b", int((yield pipe.receive("a")).sum()))

    with Plant(plant_dir) as plant:
        plant.run_reactor(use)
        first = plant.fetch_ingredient("a")
        plant.run_reactor(use)
        assert plant.fetch_ingredient("a") is first  # served by reference, not re-read
        assert plant.store.tier(plant.store.ingredients["a"]) == "both"


WRITER_SCRIPT = """
import resource, signal, sys
import numpy as np
from pyplantd import Plant, ReactorFunc
from pyplantd.errors import StoreError

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a full disk: writes fail with EFBIG

@ReactorFunc
def make(pipe):
    pipe.send('small', 1)
    pipe.send('big', np.ones(2**20))  # 8 MiB: more than the file size limit

@ReactorFunc
def use(pipe):
    big = yield pipe.receive('big')
    print('total is', float(big.sum()))  # the warm value is still usable
    pipe.send('total', float(big.sum()))

with Plant(sys.argv[1]) as plant:
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, resource.RLIM_INFINITY))
    try:
        plant.run_reactor(use)
    except StoreError as err:
        print('STORE ERROR:', err)
        print('ran:', sorted(d.reactor for d in plant.last_run if d.status == 'ran'))
        sys.exit(3)
"""


def test_a_full_disk_fails_the_run_naming_ingredient_and_path(tmp_path):
    plant_dir = tmp_path / "plant"
    script = tmp_path / "full.py"
    script.write_text(WRITER_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(script), str(plant_dir)], capture_output=True, text=True,
        timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "Could not write ingredient 'big'" in proc.stdout
    assert str(plant_dir / "payloads") in proc.stdout
    assert "total is 1048576.0" in proc.stdout and "ran: ['make', 'use']" in proc.stdout
    # Nothing half-written is served later: the producer runs again.
    ran = []

    @ReactorFunc
    def make(pipe):
        ran.append("make")
        pipe.send("small", 1)
        pipe.send("big", np.ones(2**20))

    @ReactorFunc
    def use(pipe):
        ran.append("use")
        pipe.send("total", float((yield pipe.receive("big")).sum()))

    with Plant(plant_dir) as plant:
        plant.add_reactors(make, use)
        plant.run_reactor(use)
        assert plant.fetch_ingredient("total") == 2**20
    assert sorted(ran) == ["make", "use"]
    leftovers = [p.name for p in (plant_dir / "payloads").iterdir() if p.name.startswith(".tmp")]
    assert leftovers == []
