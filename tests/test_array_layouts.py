"""Writing an array payload without h5py: the HDF5 header comes from a template of the dtype and
rank (checked here against what h5py lays out), or, for a dtype with none, from a stored payload
of the same dtype and shape, only while that payload is as its commit wrote it. Real processes,
real files, read back through h5py."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from conftest import Project

from pyplantd import Plant
from pyplantd.store import layout_maker, layouts
from pyplantd.store.layout_templates import TEMPLATES
from pyplantd.store.payloads import STAT
from pyplantd.store.specs import ArraySpec

SCRIPT = """
import atexit
import sys

import numpy as np
from pyplantd import Ingredient, Plant, ReactorFunc

SCALE = 1.0
DTYPE = ">f8"  # big-endian: a dtype with no template


@ReactorFunc
def make(pipe):
    pipe.send("grid", (np.arange(12.0).reshape(3, 4) * SCALE).astype(DTYPE), Ingredient.Type.array)


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


@pytest.mark.parametrize("dtype", ["<f4", "<f8", "<i8", "|u1", "|b1", "<c16"])
def test_an_array_of_a_common_dtype_is_written_without_h5py_from_the_first_run(
    project: Project, dtype: str
) -> None:
    project.write("pipeline.py", SCRIPT.replace('DTYPE = ">f8"', f"DTYPE = {dtype!r}"))
    first = project.python()
    assert first.returncode == 0, first.stderr
    assert "h5py imported: False" in first.stdout, first.stdout
    path, _ = stored(project)
    assert np.array_equal(read_back(path), (np.arange(12.0).reshape(3, 4)).astype(dtype))
    assert read_back(path).dtype == np.dtype(dtype)


def test_an_array_sent_again_with_its_stored_dtype_and_shape_is_written_without_h5py(
    project: Project,
) -> None:
    project.write("pipeline.py", SCRIPT)
    first = project.python()
    assert first.returncode == 0, first.stderr
    assert "h5py imported: True" in first.stdout  # no template: the first layout is h5py's
    project.edit("pipeline.py", "SCALE = 1.0", "SCALE = 2.0")
    again = project.python()
    assert again.returncode == 0, again.stderr
    assert "h5py imported: False" in again.stdout, again.stdout
    path, _ = stored(project)
    assert np.array_equal(read_back(path), np.arange(12.0).reshape(3, 4) * 2.0)
    assert read_back(path).dtype == np.dtype(">f8")


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
    project.edit(
        "pipeline.py", "reshape(3, 4) * SCALE).astype(DTYPE)", "reshape(4, 3)).astype('>f4')"
    )
    again = project.python()
    assert again.returncode == 0, again.stderr
    assert "h5py imported: True" in again.stdout, again.stdout
    path, _ = stored(project)
    expected = np.arange(12.0).reshape(4, 3).astype(">f4")
    assert np.array_equal(read_back(path), expected) and read_back(path).dtype == np.dtype(">f4")
    assert os.path.getsize(path) > expected.nbytes


SHAPES = {
    0: [()],
    1: [(1,), (4099,)],
    2: [(1, 1), (16384, 16384)],
    3: [(2, 3, 5)],
    4: [(7, 1, 2, 9)],
}


@pytest.mark.parametrize("code", layout_maker.TEMPLATE_DTYPES)
def test_a_header_made_from_a_template_is_the_one_h5py_lays_out(code: str) -> None:
    """Byte for byte, for every dtype and rank with a template: if the installed h5py lays
    payloads out differently, regenerate the templates (see store/layout_maker.py)."""
    dtype = np.dtype(code)
    for rank in layout_maker.TEMPLATE_RANKS:
        assert f"{code}/{rank}" in TEMPLATES
        for shape in SHAPES[rank]:
            made = layouts._from_template(code, shape)
            assert made == layout_maker.header_of(dtype, shape), (code, shape)


@pytest.mark.parametrize("code", layout_maker.TEMPLATE_DTYPES)
def test_a_payload_written_from_a_template_reads_back_through_h5py(tmp_path, code: str) -> None:
    rng = np.random.default_rng(7)
    for rank in layout_maker.TEMPLATE_RANKS:
        shape = (3, 4, 2, 5)[:rank]
        array = (rng.random(shape) * 100).astype(code)
        path = str(tmp_path / f"{rank}.h5")
        written = ArraySpec().write(array, path)
        with h5py.File(path, "r") as handle:
            dataset = handle["data"]
            assert dataset.dtype == array.dtype and dataset.shape == array.shape
            assert np.array_equal(dataset[()], array)
            assert written.fingerprint == ArraySpec().write(array, path + ".again").fingerprint
