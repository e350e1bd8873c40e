"""The plant dir when the disk fails it: a real full disk (a small tmpfs mounted for the test),
a read-only file system, a directory the process may not write, a value pickle cannot store.
Every failure is a StoreError that names the thing and the fix, the daemon keeps serving,
nothing stored before is lost, and the next run after the fix succeeds.

Mounting needs root (as CI runs); elsewhere these tests are skipped, saying so.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from conftest import LOG_HELPER, REPO, Project
from test_daemon import Daemon, take_ran

from pyplantd import Plant, ReactorFunc
from pyplantd.errors import StoreError

COMMAND_TIMEOUT = 60
DISK = 4 * 2**20


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real file system of 4 MiB (tmpfs): writes past it fail with ENOSPC, as on a full disk."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system to fill needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0755", "pyplantd-test", str(mount)],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=COMMAND_TIMEOUT)
        if os.path.ismount(mount):  # still busy: detach it, it goes when the last user does
            subprocess.run(["umount", "-l", str(mount)], timeout=COMMAND_TIMEOUT)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk`; returns the file to remove to free it again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    block = b"\0" * 2**16
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError as err:
                assert err.errno == errno.ENOSPC
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    finally:
        os.close(fd)
    return filler


PIPELINE = """
import numpy as np
from sidefx import log_run

from pyplantd import Plant, ReactorFunc

SIZE = 1000


@ReactorFunc
def load(pipe):
    log_run('load')
    pipe.send('data', np.arange(SIZE, dtype=np.float64))


@ReactorFunc
def total(pipe):
    data = yield pipe.receive('data')
    log_run('total')
    print('total', float(data.sum()))
    pipe.send('total', float(data.sum()))


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(total)
"""


def expected_total(size: int) -> str:
    return f"total {float(np.arange(size, dtype=np.float64).sum())}"


def set_size(project: Project, old: int, new: int) -> None:
    project.edit("pipeline.py", f"SIZE = {old}\n", f"SIZE = {new}\n")


def make_project(project: Project) -> None:
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", PIPELINE)


def flat(text: str) -> str:
    """The text with line wraps undone (the CLI wraps long messages to the terminal)."""
    return " ".join(text.split())


def assert_full_disk_message(text: str, plant_dir: Path) -> None:
    text = flat(text)
    assert f"the disk holding {plant_dir} is full (" in text and " free)" in text, text
    assert "Free some space on it and run again" in text, text
    assert "not a readable" not in text and "Move it away" not in text, text
    assert "Traceback" not in text and "OperationalError" not in text, text


# -- C2: a full disk, one-shot -----------------------------------------------------------------
def test_a_full_disk_fails_the_one_shot_run_with_the_free_space_and_loses_nothing(
    project, small_disk
):
    make_project(project)
    plant_dir = small_disk / "plant"
    run = lambda: project.cli("run", "pipeline.py", "--plant-dir", str(plant_dir))  # noqa: E731
    first = run()
    assert first.returncode == 0 and expected_total(1000) in first.stdout, first.stderr

    set_size(project, 1000, 1_000_000)  # 7.6 MiB: larger than the disk
    too_big = run()
    assert too_big.returncode != 0, too_big.stdout + too_big.stderr
    assert "Could not write ingredient 'data' (ndarray, 7.6 MiB)" in flat(too_big.stderr)
    assert_full_disk_message(too_big.stderr, plant_dir)
    assert not [p for p in (plant_dir / "payloads").iterdir() if p.name.startswith(".tmp")]

    set_size(project, 1_000_000, 2000)
    filler = fill(small_disk)  # now even the manifest cannot grow
    full = run()
    assert full.returncode != 0, full.stdout + full.stderr
    assert f"the manifest {plant_dir / 'pyplantd.db'}" in flat(full.stderr)
    assert_full_disk_message(full.stderr, plant_dir)

    filler.unlink()
    fixed = run()
    assert fixed.returncode == 0 and expected_total(2000) in fixed.stdout, fixed.stderr
    set_size(project, 2000, 1000)
    undone = run()  # the result stored before the failures was kept
    assert undone.returncode == 0 and expected_total(1000) in undone.stdout
    assert undone.ran == ["total"], undone.stdout


def test_a_value_the_full_disk_refused_is_not_pinned_in_memory_and_its_consumer_got_it(
    small_disk,
):
    got = []

    @ReactorFunc
    def load(pipe):
        pipe.send("data", np.ones(2**20))  # 8 MiB: more than the disk

    @ReactorFunc
    def total(pipe):
        got.append(float((yield pipe.receive("data")).sum()))

    with Plant(small_disk / "plant") as plant:
        with pytest.raises(StoreError, match="Could not write ingredient 'data'"):
            plant.run_reactor(total)
        assert got == [2.0**20]  # the value stayed usable for the rest of that run
        # never durable, so never evictable: kept, it would hold 8 MiB for the plant's life
        assert plant.store.warm.warm_bytes < 2**20, plant.store.warm.keys()


def test_a_manifest_that_cannot_be_opened_for_lack_of_space_is_not_called_unreadable(
    small_disk,
):
    plant_dir = small_disk / "plant"

    @ReactorFunc
    def load(pipe):
        pipe.send("data", [1, 2, 3])

    with Plant(plant_dir) as plant:
        plant.run_reactor(load)
    filler = fill(small_disk)
    with pytest.raises(StoreError) as refused:
        Plant(plant_dir)
    assert f"Could not open the manifest {plant_dir / 'pyplantd.db'}" in str(refused.value)
    assert_full_disk_message(str(refused.value), plant_dir)
    filler.unlink()
    with Plant(plant_dir) as plant:
        assert plant.fetch_ingredient("data") == [1, 2, 3]


FILLING = """
import os

from pyplantd import Ingredient, Plant, ReactorFunc


@ReactorFunc
def report(pipe):
    path = pipe.allocate('report', Ingredient.Type.file, suffix='.txt')
    with open(path, 'w') as handle:
        handle.write('made by report')
    pipe.send('report', path)  # durable now: the manifest commit comes when the reactor ends
    fd = os.open(os.path.join(os.environ['DISK'], 'filler'), os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b'x' * 4096)
    except OSError:
        pass
    os.close(fd)


if __name__ == '__main__':
    with Plant(os.environ['PLANT']) as plant:
        plant.run_reactor(report)
"""


def test_a_manifest_commit_that_finds_the_disk_full_fails_the_run_and_the_next_succeeds(
    project, small_disk
):
    project.write("pipeline.py", FILLING)
    plant_dir = small_disk / "plant"
    env = {"DISK": str(small_disk), "PLANT": str(plant_dir)}
    failed = project.cli("run", "pipeline.py", env=env)
    assert failed.returncode != 0, failed.stdout + failed.stderr
    assert f"Could not update the manifest {plant_dir / 'pyplantd.db'}" in flat(failed.stderr)
    assert_full_disk_message(failed.stderr, plant_dir)
    (small_disk / "filler").unlink()
    payloads = plant_dir / "payloads"
    assert [p.name for p in payloads.iterdir()] == [], "a payload nobody records takes space"

    project.edit("pipeline.py", "            os.write(fd, b'x' * 4096)", "            break")
    fixed = project.cli("run", "pipeline.py", env=env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    with Plant(plant_dir) as plant:
        assert Path(plant.fetch_ingredient("report")).read_text() == "made by report"


# -- C2: a full disk under a real daemon -------------------------------------------------------
def test_a_full_disk_fails_the_daemon_run_keeps_it_serving_and_the_save_after_space_is_freed_works(
    project, small_disk
):
    make_project(project)
    plant_dir = small_disk / "plant"
    daemon = Daemon(project.root, "--plant-dir", str(plant_dir))
    try:
        start = daemon.next_run()
        assert start.states == {"load": "ran", "total": "ran"}, start
        assert expected_total(1000) in str(start)

        set_size(project, 1000, 1_000_000)  # the payload does not fit
        too_big = daemon.next_run()
        assert "Could not write ingredient 'data' (ndarray, 7.6 MiB)" in flat(str(too_big))
        assert_full_disk_message(str(too_big), plant_dir)

        filler = fill(small_disk)  # the disk fills up between two saves
        set_size(project, 1_000_000, 2000)
        full = daemon.next_run()
        assert_full_disk_message(str(full), plant_dir)
        assert daemon.proc.poll() is None, daemon.transcript()

        filler.unlink()
        take_ran(project)
        set_size(project, 2000, 3000)
        fixed = daemon.next_run()
        assert fixed.states == {"load": "ran", "total": "ran"}, fixed
        assert expected_total(3000) in str(fixed)
        set_size(project, 3000, 1000)
        undone = daemon.next_run()  # the result stored before the failures was kept
        # (the target runs again on an undo, so that its side effects show the present)
        assert undone.states == {"load": "warm", "total": "ran"}, undone
        assert "restored an earlier result" in str(undone)
    finally:
        code = daemon.stop()
        print(f"--- daemon (exit {code}) printed:\n{daemon.transcript()}")
    assert code == 0
    with Plant(plant_dir) as plant:  # what a fresh run computes
        assert plant.fetch_ingredient("total") == float(np.arange(1000).sum())


# -- C7: read-only, not writable, unpicklable --------------------------------------------------
def test_a_plant_dir_on_a_read_only_file_system_says_so(small_disk):
    plant_dir = small_disk / "plant"

    @ReactorFunc
    def load(pipe):
        pipe.send("data", [1, 2, 3])

    with Plant(plant_dir) as plant:
        plant.run_reactor(load)
    remount = ["mount", "-o", "remount,ro", str(small_disk)]
    subprocess.run(remount, check=True, timeout=COMMAND_TIMEOUT)
    try:
        with pytest.raises(StoreError) as refused:
            Plant(plant_dir)
    finally:
        remount[2] = "remount,rw"
        subprocess.run(remount, check=True, timeout=COMMAND_TIMEOUT)
    message = str(refused.value)
    assert str(plant_dir) in message and "read-only file system" in message, message
    assert "Use a plant dir on a writable one" in message
    assert "free" not in message and "not a readable" not in message, message


WITHOUT_PERMISSION = """
import sys

from pyplantd import Plant, ReactorFunc
from pyplantd.errors import StoreError


@ReactorFunc
def load(pipe):
    pipe.send('data', [1, 2, 3])


try:
    with Plant(sys.argv[1]) as plant:
        plant.run_reactor(load)
except StoreError as err:
    print('STORE ERROR:', err)
    sys.exit(3)
"""


@pytest.mark.parametrize("read_only", ["parent", "plant dir", "payload dir"])
def test_a_plant_dir_this_process_may_not_write_names_it_and_the_fix(tmp_path, read_only):
    """Root may write anywhere, so the script runs as root without that power
    (CAP_DAC_OVERRIDE), as an ordinary user would."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run without the power to write anywhere")
    parent = tmp_path / "parent"
    plant_dir = parent / "plant"
    if read_only != "parent":

        @ReactorFunc
        def load(pipe):
            pipe.send("data", [0])

        with Plant(plant_dir) as plant:
            plant.run_reactor(load)
    target = {"parent": parent, "plant dir": plant_dir, "payload dir": plant_dir / "payloads"}
    target[read_only].mkdir(exist_ok=True)
    target[read_only].chmod(0o500)
    script = tmp_path / "write.py"
    script.write_text(WITHOUT_PERMISSION)
    done = subprocess.run(
        ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--",
         sys.executable, str(script), str(plant_dir)],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    message = done.stdout
    where = target[read_only]
    assert f"{where} is not writable by this process (owned by root, mode 0500)" in message
    assert f"`chmod u+w {where}`" in message
    assert "PermissionError" not in message and "free" not in message, message
    if read_only == "payload dir":
        assert "Could not write ingredient 'data' (list" in message


def test_a_value_pickle_cannot_store_names_the_ingredient_and_type_not_the_disk(plant_dir):
    class Holder:  # a local class holding a lock: pickle can store neither
        def __init__(self) -> None:
            self.lock = threading.Lock()

    @ReactorFunc
    def load(pipe):
        pipe.send("state", Holder())

    with Plant(plant_dir) as plant, pytest.raises(StoreError) as failed:
        plant.run_reactor(load)
    message = str(failed.value)
    assert "Could not store ingredient 'state' (" in message and "Holder" in message, message
    assert "pickle cannot store a " in message and "register an IngredientTypeSpec" in message
    assert "space" not in message and "permission" not in message.lower(), message


def test_a_value_its_type_cannot_hold_names_the_type_and_the_fix_not_the_disk(plant_dir):
    from pyplantd import IngredientTypeSpec

    class CsvSpec(IngredientTypeSpec):
        name = "csv"
        suffix = ".csv"

        def is_instance(self, value):
            return False

        def store(self, value, path):
            rows = [",".join(map(str, row)) for row in value]  # a flat list has no rows
            with open(path, "w") as handle:
                handle.write("\n".join(rows))

        def fetch(self, path):
            with open(path) as handle:
                return [line.split(",") for line in handle.read().splitlines()]

    @ReactorFunc
    def load(pipe):
        pipe.send("table", [1, 2, 3], type=CsvSpec)

    with Plant(plant_dir) as plant, pytest.raises(StoreError) as failed:
        plant.register_ingredient_specs([CsvSpec()])
        plant.run_reactor(load)
    message = str(failed.value)
    assert "Could not store ingredient 'table' (list): type csv cannot hold this list" in message
    assert "type=Ingredient.Type.object pickles it" in message
    assert "space" not in message and "writable" not in message, message
