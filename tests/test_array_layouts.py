"""Writing an array payload without h5py: the HDF5 header of a stored payload of the same dtype
and shape is reused, only while that payload is as its commit wrote it. Real processes, real
files, read back through h5py."""

from __future__ import annotations

import os

import h5py
import numpy as np
from conftest import Project

from pyplantd import Plant
from pyplantd.store.payloads import STAT

SCRIPT = """
import atexit
import sys

import numpy as np
from pyplantd import Ingredient, Plant, ReactorFunc

SCALE = 1.0


@ReactorFunc
def make(pipe):
    pipe.send("grid", np.arange(12.0).reshape(3, 4) * SCALE, Ingredient.Type.array)


atexit.register(lambda: print("h5py imported:", "h5py" in sys.modules))

if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.run_reactor(make)
"""


def stored(project: Project) -> tuple[str, list[int]]:
    with Plant(project.plant_dir) as plant:
        record = plant.store.ingredients["grid"]
        return str(project.plant_dir / record.path), record.meta[STAT]


def read_back(path: str) -> np.ndarray:
    with h5py.File(path, "r") as handle:
        return np.asarray(handle["data"][()])


def test_an_array_sent_again_with_its_stored_dtype_and_shape_is_written_without_h5py(
    project: Project,
) -> None:
    project.write("pipeline.py", SCRIPT)
    first = project.python()
    assert first.returncode == 0, first.stderr
    assert "h5py imported: True" in first.stdout  # the first layout comes from h5py
    project.edit("pipeline.py", "SCALE = 1.0", "SCALE = 2.0")
    again = project.python()
    assert again.returncode == 0, again.stderr
    assert "h5py imported: False" in again.stdout, again.stdout
    path, _ = stored(project)
    assert np.array_equal(read_back(path), np.arange(12.0).reshape(3, 4) * 2.0)


def test_a_stored_payload_changed_since_its_commit_lends_no_header(project: Project) -> None:
    project.write("pipeline.py", SCRIPT)
    assert project.python().returncode == 0
    path, _ = stored(project)
    with open(path, "r+b") as handle:  # the superblock's addresses: a header no reader takes
        handle.seek(24)
        handle.write(b"\xff" * 16)
    project.edit("pipeline.py", "SCALE = 1.0", "SCALE = 3.0")
    again = project.python()
    assert again.returncode == 0, again.stderr
    assert "h5py imported: True" in again.stdout, again.stdout
    path, _ = stored(project)
    assert np.array_equal(read_back(path), np.arange(12.0).reshape(3, 4) * 3.0)


def test_another_shape_or_dtype_is_laid_out_by_h5py(project: Project) -> None:
    project.write("pipeline.py", SCRIPT)
    assert project.python().returncode == 0
    project.edit("pipeline.py", "reshape(3, 4) * SCALE", "reshape(4, 3).astype(np.float32)")
    again = project.python()
    assert again.returncode == 0, again.stderr
    assert "h5py imported: True" in again.stdout, again.stdout
    path, _ = stored(project)
    expected = np.arange(12.0).reshape(4, 3).astype(np.float32)
    assert np.array_equal(read_back(path), expected) and read_back(path).dtype == np.float32
    assert os.path.getsize(path) > expected.nbytes
