"""Arrays on disk: the raw write path gives an HDF5 file h5py reads back exactly, with a checksum
that equals the in-memory fingerprint and catches damage; write and fsync errors surface."""

from __future__ import annotations

import errno
import os
import threading

import h5py
import numpy as np
import pytest

from pyplantd.errors import StoreError
from pyplantd.fingerprint import array_fingerprint
from pyplantd.store import rawio, specs
from pyplantd.store.payloads import TEMP_PREFIX, PayloadFiles
from pyplantd.store.specs import DATASET, ArraySpec

rng = np.random.default_rng(7)

ARRAYS = {
    "float32 1-d": rng.random(10_000, dtype=np.float32),
    "int16 3-d": rng.integers(-(2**15), 2**15, (7, 11, 13), dtype=np.int16),
    "0-d": np.array(3.25),
    "one element": np.array([42], dtype=np.uint64),
    "empty": np.zeros((0, 3)),
    "bool": rng.random(333) > 0.5,
    "complex": (rng.random(50) + 1j * rng.random(50)).astype(np.complex64),
    "big-endian": np.arange(100, dtype=">f8"),
    "transposed": np.arange(600, dtype=np.int32).reshape(20, 30).T,
    "strided": np.arange(2400, dtype=np.float64).reshape(40, 60)[::3, 1::2],
    "fortran": np.asfortranarray(rng.random((64, 9))),
}


@pytest.fixture
def small_slices(monkeypatch):
    """Slices of 1 KiB, so that small arrays go through the multi-slice path."""
    monkeypatch.setattr(specs, "_SLICE_BYTES", 1024)


def write(array: np.ndarray, path) -> str:
    written = ArraySpec().write(array, str(path))
    assert written.fingerprint == written.checksum
    return written.checksum


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_written_array_reads_back_exactly_in_h5py_and_out_of_core(tmp_path, small_slices, name):
    array = ARRAYS[name]
    path = tmp_path / "a.h5"
    checksum = write(array, path)
    with h5py.File(path, "r") as handle:
        stored = handle[DATASET][()]
    assert stored.dtype == array.dtype and stored.shape == array.shape
    assert np.array_equal(stored, array)
    for out_of_core in (False, True):
        loaded = ArraySpec().load(str(path), out_of_core)
        assert loaded.dtype == array.dtype and loaded.shape == array.shape
        assert np.array_equal(loaded, array) and not loaded.flags.writeable
    assert checksum == array_fingerprint(array) == ArraySpec().value_fingerprint(array)
    assert ArraySpec().verify(str(path), checksum)


def test_non_contiguous_arrays_store_like_their_contiguous_copy(tmp_path, small_slices):
    array = ARRAYS["strided"]
    assert not array.flags.c_contiguous
    assert write(array, tmp_path / "a.h5") == write(array.copy(), tmp_path / "b.h5")


def test_verify_catches_a_flipped_byte_in_the_data(tmp_path, small_slices):
    array = ARRAYS["float32 1-d"]
    path = tmp_path / "a.h5"
    checksum = write(array, path)
    with h5py.File(path, "r") as handle:
        offset = handle[DATASET].id.get_offset()
    raw = bytearray(path.read_bytes())
    raw[offset + array.nbytes // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    assert not ArraySpec().verify(str(path), checksum)


def test_partial_writes_are_completed(tmp_path, small_slices, monkeypatch):
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, data[:100]))
    array = ARRAYS["int16 3-d"]
    path = tmp_path / "a.h5"
    checksum = write(array, path)
    assert np.array_equal(ArraySpec().load(str(path), False), array)
    assert ArraySpec().verify(str(path), checksum)


def test_without_writeback_hints_the_file_is_the_same(tmp_path, small_slices, monkeypatch):
    array = ARRAYS["float32 1-d"]
    with_hints = write(array, tmp_path / "a.h5")
    monkeypatch.setattr(rawio, "_sync_file_range", None)
    assert write(array, tmp_path / "b.h5") == with_hints
    assert np.array_equal(ArraySpec().load(str(tmp_path / "b.h5"), False), array)


def full_disk(*args):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("failing", ["write", "fsync"])
def test_a_failed_write_or_fsync_names_the_ingredient_and_leaves_no_file(
    tmp_path, monkeypatch, failing
):
    monkeypatch.setattr(os, failing, full_disk)  # as a full disk would
    files = PayloadFiles(tmp_path)
    final = files.final_path("big", ArraySpec.suffix)
    with pytest.raises(StoreError) as caught:
        files.write_to(final, "big", ArraySpec(), ARRAYS["float32 1-d"])
    message = str(caught.value)
    assert "Could not write ingredient 'big'" in message and str(final) in message
    assert "No space left on device" in message
    assert not [p for p in files.root.iterdir() if p.name.startswith(TEMP_PREFIX)]
    assert not final.exists()


def test_background_work_returns_its_result_and_raises_its_error():
    assert rawio.Background(lambda: 7, "test").result() == 7

    def fail() -> None:
        raise ValueError("hash failed")

    with pytest.raises(ValueError, match="hash failed"):
        rawio.Background(fail, "test").result()


def test_only_arrays_of_several_slices_are_hashed_while_they_are_written(
    tmp_path, small_slices, monkeypatch
):
    hashed_on: list[str] = []
    digest = specs._digest

    def recording(source):  # type: ignore[no-untyped-def]
        hashed_on.append(threading.current_thread().name)
        return digest(source)

    monkeypatch.setattr(specs, "_digest", recording)
    ArraySpec().write(ARRAYS["bool"], str(tmp_path / "small.h5"))  # 333 bytes: one slice
    assert hashed_on == [threading.current_thread().name]  # no thread for it
    written = ArraySpec().write(ARRAYS["float32 1-d"], str(tmp_path / "big.h5"))
    assert hashed_on[1:] == ["pyplantd-hash"]
    assert written.checksum == array_fingerprint(ARRAYS["float32 1-d"])
