"""Loading stored payloads: checked by what their commit recorded, hashed only when that changed,
arrays mapped read-only so that a consumer reads only what it touches."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from conftest import REPO, SUBPROCESS_TIMEOUT, mapped_file

from pyplantd import Plant, ReactorFunc
from pyplantd.store.payloads import STAT


def pipeline(ran: list[str]):
    @ReactorFunc
    def load(pipe):
        ran.append("load")
        pipe.send("grid", np.arange(2048 * 1024, dtype=np.float64).reshape(2048, 1024))  # 16 MiB
        pipe.send("meta", {"rows": 2048})

    @ReactorFunc
    def corner(pipe):
        ran.append("corner")
        grid = yield pipe.receive("grid")
        meta = yield pipe.receive("meta")
        pipe.send("corner", (float(grid[:2, :2].sum()), meta["rows"]))

    return load, corner


EXPECTED = (float(0 + 1 + 1024 + 1025), 2048)


def run(plant_dir, ran: list[str]):
    ran.clear()
    with Plant(plant_dir) as plant:
        plant.add_reactors(*pipeline(ran))
        plant.run_reactor("corner")
        return plant.fetch_ingredient("corner")


def payload(plant_dir, name):
    with Plant(plant_dir) as plant:
        record = plant.store.ingredients[name]
        return plant_dir / record.path, record.meta[STAT]


def alter_in_place(path, times_too: bool) -> None:
    """Flip a byte without changing the size; with `times_too`, put the times back as they
    were (as `rsync --inplace --times` or `cp --preserve` would)."""
    before = os.stat(path)
    with open(path, "r+b") as handle:
        handle.seek(-8, os.SEEK_END)
        last = handle.read(1)
        handle.seek(-8, os.SEEK_END)
        handle.write(bytes([last[0] ^ 0xFF]))
    if times_too:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("name", ["grid", "meta"])
@pytest.mark.parametrize("times_too", [False, True])
def test_a_payload_altered_in_place_is_caught_even_with_its_times_put_back(
    plant_dir, name, times_too
):
    ran: list[str] = []
    assert run(plant_dir, ran) == EXPECTED
    path, recorded = payload(plant_dir, name)
    alter_in_place(path, times_too)
    st = os.stat(path)
    assert st.st_size == recorded[0] and (st.st_mtime_ns == recorded[1]) == times_too
    assert st.st_ctime_ns != recorded[2]  # what gives the change away once times are put back
    assert run(plant_dir, ran) == EXPECTED
    assert sorted(ran) == ["corner", "load"]


def test_a_payload_replaced_by_an_altered_copy_with_the_same_times_is_caught(plant_dir):
    ran: list[str] = []
    run(plant_dir, ran)
    path, _ = payload(plant_dir, "grid")
    copy = path.with_name(".copy")
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF
    copy.write_bytes(bytes(data))
    st = os.stat(path)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(copy, path)  # same size and times; another inode
    assert run(plant_dir, ran) == EXPECTED
    assert sorted(ran) == ["corner", "load"]


def test_commit_dates_a_payload_in_the_past_so_that_any_write_changes_its_time(plant_dir):
    """Within one tick of the clock files are stamped with, a write right after the commit
    would leave mtime and ctime as they were; the commit's mtime, seconds in the past, cannot
    survive a write."""
    ran: list[str] = []
    run(plant_dir, ran)
    path, recorded = payload(plant_dir, "grid")
    assert recorded[1] <= time.time_ns() - 2 * 10**9 and recorded[1] % (2 * 10**9) == 0
    alter_in_place(path, times_too=False)
    assert os.stat(path).st_mtime_ns > recorded[1]


def test_a_touched_but_intact_payload_is_hashed_and_served(plant_dir):
    ran: list[str] = []
    run(plant_dir, ran)
    path, _ = payload(plant_dir, "grid")
    os.utime(path)  # the stat key changes, the content does not
    assert run(plant_dir, ran) == EXPECTED
    assert ran == ["corner"]


def test_a_stored_array_is_a_read_only_map_of_its_payload(plant_dir):
    ran: list[str] = []
    run(plant_dir, ran)
    with Plant(plant_dir) as plant:
        grid = plant.fetch_ingredient("grid")
        path = plant_dir / plant.store.ingredients["grid"].path
        assert mapped_file(grid) == str(path)
        assert type(grid) is np.ndarray and grid.shape == (2048, 1024)
        with pytest.raises(ValueError, match="read-only"):
            grid[0, 0] = 1.0
        with pytest.raises(ValueError):
            grid.flags.writeable = True
        assert grid[2047, 1023] == 2048 * 1024 - 1


READ_A_CORNER = """
import sys
import numpy as np
from pyplantd import Plant

def read_bytes():
    with open("/proc/self/io") as io:
        return int(next(line for line in io if line.startswith("rchar")).split()[1])

with Plant(sys.argv[1]) as plant:
    before = read_bytes()
    grid = plant.fetch_ingredient("grid")
    corner = float(grid[:2, :2].sum())
    after = read_bytes()
print(after - before, corner, "h5py" in sys.modules)
"""


def test_reading_a_corner_of_a_stored_array_neither_reads_nor_hashes_the_whole(tmp_path):
    plant_dir = tmp_path / "plant"
    ran: list[str] = []
    run(plant_dir, ran)
    script = tmp_path / "corner.py"
    script.write_text(textwrap.dedent(READ_A_CORNER))
    done = subprocess.run(
        [sys.executable, str(script), str(plant_dir)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=SUBPROCESS_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    read, corner, h5py_loaded = done.stdout.split()
    assert float(corner) == EXPECTED[0]
    assert int(read) < 2**20  # of a 16 MiB payload: neither read to memory nor hashed
    assert h5py_loaded == "False"
