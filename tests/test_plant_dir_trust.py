"""Trust boundaries of the plant dir: pyplantd uses only what no other user can change, never
follows a link it did not make, and deletes only files it made.

Tests about other users create a real second Unix user (`pyplantd-test-other`) and act as that
user through `runuser`, so they need root (as CI runs); elsewhere they are skipped, saying so.
"""

from __future__ import annotations

import grp
import os
import pickle
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pyplantd import Plant, ReactorFunc
from pyplantd.errors import PlantDirError
from pyplantd.store.listing import list_ingredients

OTHER = "pyplantd-test-other"
COMMAND_TIMEOUT = 60


# -- another user ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def other_user() -> pwd.struct_passwd:
    """A second Unix user, created once (idempotent, also when two test runs race)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second Unix user and act as it (CI runs as root)")
    if shutil.which("useradd") is None or shutil.which("runuser") is None:
        pytest.skip("needs useradd and runuser to act as a second Unix user")
    try:
        return pwd.getpwnam(OTHER)
    except KeyError:
        pass
    made = subprocess.run(
        ["useradd", "-M", "-r", "-U", "-s", "/usr/sbin/nologin", OTHER],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    try:
        return pwd.getpwnam(OTHER)
    except KeyError:
        pytest.fail(f"could not create user {OTHER}: {made.stderr}")


def as_other(*command: str | Path) -> None:
    """Run a command as the other user."""
    done = subprocess.run(
        ["runuser", "-u", OTHER, "--", *map(str, command)],
        capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


@pytest.fixture
def shared(other_user: pwd.struct_passwd) -> Iterator[Path]:
    """A directory every user can write to, sticky like /tmp (the tmp_path of pytest is
    private to root, so the other user could not reach anything under it)."""
    path = Path(tempfile.mkdtemp(prefix="pyplantd-shared-", dir="/tmp"))
    path.chmod(0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def snapshot(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """Every entry under root: mode, owner, size, mtime (links not followed)."""
    found = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        found[str(path.relative_to(root))] = (st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns)
    return found


class Evil:
    """Unpickling it creates a directory: proof that a planted pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def stage_evil_plant(staging: Path, marker: Path) -> None:
    """A real plant dir whose ingredient 'data' runs code when it is loaded."""

    @ReactorFunc
    def load(pipe):
        pipe.send("data", Evil(marker))

    with Plant(staging) as plant:
        plant.add_reactors(load)
        plant.run_reactor(load)
    for path in [staging, *staging.rglob("*")]:  # readable by the other user, who copies it
        path.chmod(0o755 if path.is_dir() else 0o644)


# -- B1: a plant dir another user owns or can write ----------------------------------------------
def test_a_plant_dir_made_by_another_user_is_refused_before_anything_in_it_is_read(shared):
    staging, marker = shared / "staging", shared / "code-ran"
    stage_evil_plant(staging, marker)
    plant_dir = shared / "my-plant"  # the README's old example: a plant dir in /tmp
    as_other("cp", "-r", staging, plant_dir)
    before = snapshot(plant_dir)

    with pytest.raises(PlantDirError) as refused, Plant(plant_dir) as plant:
        plant.fetch_ingredient("data")

    message = str(refused.value)
    assert str(plant_dir) in message and f"owned by {OTHER}, mode 0755" in message
    assert "Use a plant dir of your own" in message and "nothing in it was read" in message
    assert not marker.exists(), "the other user's pickle was executed"
    assert snapshot(plant_dir) == before  # nothing created, truncated or deleted


@pytest.mark.parametrize("writable_by", ["others", "group"])
def test_a_plant_dir_writable_by_others_is_refused_with_its_mode_and_the_fix(
    shared, other_user, writable_by
):
    plant_dir = shared / "plant"
    with Plant(plant_dir):
        pass
    if writable_by == "others":
        plant_dir.chmod(0o777)
        expected = "writable by others (owned by root, mode 0777)"
    else:  # a group the other user belongs to
        os.chown(plant_dir, -1, other_user.pw_gid)
        plant_dir.chmod(0o770)
        expected = f"writable by group {grp.getgrgid(other_user.pw_gid).gr_name} (owned by root"
    before = snapshot(plant_dir)

    with pytest.raises(PlantDirError) as refused:
        Plant(plant_dir)

    message = str(refused.value)
    assert f"Plant dir {plant_dir} is {expected}" in message
    assert f"chmod -R go-w {plant_dir}" in message
    assert snapshot(plant_dir) == before
    plant_dir.chmod(0o700)  # the fix the message gives
    with Plant(plant_dir):
        pass


def test_new_plant_dirs_and_their_files_are_private_whatever_the_umask(tmp_path):
    plant_dir = tmp_path / "deep" / "plant"

    @ReactorFunc
    def load(pipe):
        pipe.send("data", np.arange(10))
        pipe.send("meta", {"n": 10})

    old = os.umask(0)
    try:
        with Plant(plant_dir) as plant:
            plant.run_reactor(load)
    finally:
        os.umask(old)

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.lstat().st_mode)

    assert mode(plant_dir) == 0o700 and mode(plant_dir / "payloads") == 0o700
    files = [p for p in plant_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {".lock", "pyplantd.db"}
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_a_directory_above_the_plant_dir_that_others_could_rename_it_in_is_refused(
    shared, other_user, tmp_path
):
    open_dir = shared / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)  # not sticky: anyone may rename what is in it
    with pytest.raises(PlantDirError) as refused:
        Plant(open_dir / "plant")
    message = str(refused.value)
    assert f"Directory {open_dir} above plant dir" in message
    assert "writable by others" in message and "not sticky" in message and "mode 0777" in message
    assert not (open_dir / "plant").exists()  # refused before anything was made

    open_dir.chmod(0o1777)  # sticky, as /tmp: only the owner may rename the plant dir
    with Plant(open_dir / "plant"):
        pass

    theirs = shared / "theirs"
    as_other("mkdir", "-m", "0755", theirs)  # the other user could rename what root puts there
    with pytest.raises(PlantDirError, match=rf"Directory {theirs} .* owned by {OTHER}"):
        Plant(theirs / "plant")


def test_a_link_to_the_plant_dir_counts_only_if_its_owner_is_trusted(shared, tmp_path):
    real = tmp_path / "real-plant"
    with Plant(real):
        pass
    mine = tmp_path / "link"
    mine.symlink_to(real)
    with Plant(mine):  # a link of your own, e.g. to a larger disk
        pass
    theirs = shared / "link"
    as_other("ln", "-s", real, theirs)  # they could point it at a plant dir of theirs later
    with pytest.raises(PlantDirError, match=rf"Symbolic link {theirs} .* owned by {OTHER}"):
        Plant(theirs)


def stored_payload(plant_dir: Path) -> Path:
    """Run a reactor that stores one small ingredient, `data`; the path of its payload."""

    @ReactorFunc
    def load(pipe):
        pipe.send("data", {"rows": 3})

    with Plant(plant_dir) as plant:
        plant.run_reactor(load)
        return plant_dir / plant.store.ingredients["data"].path


@pytest.mark.parametrize("planted", ["manifest", "payload", "payload dir"])
def test_a_file_of_another_user_inside_your_plant_dir_is_refused(plant_dir, other_user, planted):
    payload = stored_payload(plant_dir)
    target = {
        "manifest": plant_dir / "pyplantd.db",
        "payload": payload,
        "payload dir": plant_dir / "payloads",
    }[planted]
    os.chown(target, other_user.pw_uid, -1)  # as if swapped in while the dir was open
    before = snapshot(plant_dir)

    with pytest.raises(PlantDirError) as refused, Plant(plant_dir) as plant:
        plant.fetch_ingredient("data")

    assert f"{target} is owned by {OTHER}" in str(refused.value)
    after = snapshot(plant_dir)
    if planted == "payload":  # refused where it is used: the plant opened, its lock has our pid
        before.pop(".lock"), after.pop(".lock")
    assert after == before


def stage_evil_payload(path: Path, marker: Path, other_user: pwd.struct_passwd) -> None:
    """Put a pickle that runs code when loaded in place of a payload, as the other user's."""
    path.write_bytes(pickle.dumps(Evil(marker)))
    os.chown(path, other_user.pw_uid, other_user.pw_gid)


def test_another_users_payload_is_refused_where_a_run_would_check_it(
    plant_dir, other_user, tmp_path
):
    """Payloads are checked where they are used (not all at open): the input check of a
    consumer refuses a payload of another user before anything loads it."""
    marker, ran = tmp_path / "code-ran", tmp_path / "count-ran"

    @ReactorFunc
    def load(pipe):
        pipe.send("data", {"rows": 3})

    @ReactorFunc
    def count(pipe):
        data = yield pipe.receive("data")
        ran.write_text("ran")
        pipe.send("count", len(data))

    with Plant(plant_dir) as plant:
        plant.run_reactor(count)
        payload = plant_dir / plant.store.ingredients["data"].path
    ran.unlink()
    stage_evil_payload(payload, marker, other_user)

    with pytest.raises(PlantDirError) as refused, Plant(plant_dir) as plant:
        plant.run_reactor(count)

    assert f"Payload file {payload} is owned by {OTHER}" in str(refused.value)
    assert not marker.exists(), "the other user's pickle was executed"
    assert not ran.exists() and payload.stat().st_uid == other_user.pw_uid


def test_another_users_payload_in_a_kept_version_is_refused_when_an_undo_would_serve_it(
    plant_dir, other_user, tmp_path
):
    marker = tmp_path / "code-ran"

    @ReactorFunc
    def load(pipe):
        pipe.send("data", {"n": pipe.read_config("n")})

    @ReactorFunc
    def show(pipe):  # the target, which always runs: `load` is what an undo restores
        data = yield pipe.receive("data")
        pipe.send("shown", dict(data))

    def run(n: int) -> dict[str, int]:
        with Plant(plant_dir) as plant:
            plant.set_config({"n": n})
            plant.run_reactor(show)
            return plant.fetch_ingredient("shown")

    assert run(1) == {"n": 1}
    with Plant(plant_dir) as plant:
        kept = plant_dir / plant.store.ingredients["data"].path
    assert run(2) == {"n": 2}  # n=1 is kept for an undo
    stage_evil_payload(kept, marker, other_user)

    with Plant(plant_dir) as plant:  # nothing uses it yet
        assert plant.fetch_ingredient("data") == {"n": 2}
    with pytest.raises(PlantDirError, match=rf"Payload file {kept} is owned by {OTHER}"):
        run(1)  # the undo would restore it
    assert not marker.exists(), "the other user's pickle was executed"


def test_a_payload_others_can_write_is_refused_and_listing_refuses_too(plant_dir):
    @ReactorFunc
    def load(pipe):
        pipe.send("data", [1, 2, 3])

    with Plant(plant_dir) as plant:
        plant.run_reactor(load)
        payload = plant_dir / plant.store.ingredients["data"].path
    payload.chmod(0o666)
    refused = pytest.raises(PlantDirError, match=rf"{payload} is writable by others")
    with refused, Plant(plant_dir) as plant:  # checked where it is used
        plant.fetch_ingredient("data")
    plant_dir.chmod(0o777)
    with pytest.raises(PlantDirError, match=rf"Plant dir {plant_dir} is writable by others"):
        list_ingredients(plant_dir)  # `pyplantd ls` reads the manifest: refused as well


# -- B2: only what pyplantd made is used or deleted ----------------------------------------------
@pytest.mark.parametrize("content", ["payloads folder", "symlink", "foreign lock"])
def test_a_new_plant_dir_holding_anything_pyplantd_did_not_make_is_refused_untouched(
    tmp_path, content
):
    plant_dir = tmp_path / "plant"
    plant_dir.mkdir(mode=0o700)
    precious = tmp_path / "precious.txt"
    precious.write_text("my own work")
    if content == "payloads folder":
        (plant_dir / "payloads").mkdir()
        (plant_dir / "payloads" / "results.csv").write_text("a,b\n1,2\n")
        expected = "payloads"
    elif content == "symlink":  # to a folder of the user's own, named as pyplantd's
        (plant_dir / "payloads").symlink_to(tmp_path, target_is_directory=True)
        expected = "payloads"
    else:
        (plant_dir / ".lock").write_text("held by my own tool")
        expected = ".lock"
    before = snapshot(plant_dir)

    with pytest.raises(PlantDirError) as refused:
        Plant(plant_dir)

    assert f"files pyplantd did not make ({expected})" in str(refused.value)
    assert "nothing was deleted" in str(refused.value)
    assert snapshot(plant_dir) == before and precious.read_text() == "my own work"


def test_only_files_named_as_pyplantd_names_them_are_deleted_from_the_payload_dir(plant_dir):
    @ReactorFunc
    def load(pipe):
        pipe.send("data", [1, 2, 3])

    with Plant(plant_dir) as plant:
        plant.run_reactor(load)
    payloads = plant_dir / "payloads"
    (payloads / "notes.txt").write_text("not pyplantd's")
    (payloads / "data-0123456789ab.pkl").write_bytes(pickle.dumps([0]))  # an orphan of ours
    with Plant(plant_dir) as plant:
        assert plant.fetch_ingredient("data") == [1, 2, 3]
    names = {p.name for p in payloads.iterdir()}
    assert "notes.txt" in names and "data-0123456789ab.pkl" not in names


def test_a_link_in_the_payload_dir_is_refused_never_followed_nor_deleted(plant_dir, tmp_path):
    @ReactorFunc
    def load(pipe):
        pipe.send("data", [1, 2, 3])

    with Plant(plant_dir) as plant:
        plant.run_reactor(load)
    precious = tmp_path / "precious.txt"
    precious.write_text("my own work")
    link = plant_dir / "payloads" / "data-0123456789ab.pkl"  # named as an orphan would be
    link.symlink_to(precious)

    with pytest.raises(PlantDirError) as refused:
        Plant(plant_dir)

    assert f"Payload file {link} is a symbolic link (to {precious})" in str(refused.value)
    assert link.is_symlink() and precious.read_text() == "my own work"


# -- B3: the lock file is never followed or truncated ------------------------------------------
@pytest.mark.parametrize("link", ["symbolic", "hard"])
@pytest.mark.parametrize("plant", ["existing", "new"])
def test_a_planted_lock_link_is_refused_never_followed_or_truncated(
    plant_dir, tmp_path, link, plant
):
    if plant == "existing":
        with Plant(plant_dir):
            pass
        (plant_dir / ".lock").unlink()
    else:
        plant_dir.mkdir(mode=0o700)
    precious = tmp_path / "precious.txt"
    precious.write_text("my own work")
    if link == "symbolic":
        (plant_dir / ".lock").symlink_to(precious)
    else:
        os.link(precious, plant_dir / ".lock")

    with pytest.raises(PlantDirError) as refused:
        Plant(plant_dir)

    message = str(refused.value)
    assert ".lock" in message
    assert "pyplantd never makes" in message or "pyplantd did not make" in message
    assert precious.read_text() == "my own work"


def test_a_group_of_your_own_may_write_as_user_private_groups_make_it(plant_dir):
    """With user private groups (a group named after you, with no other member) the default
    umask 002 makes every directory group-writable: nobody else can write it."""
    me = pwd.getpwuid(os.geteuid())
    group = grp.getgrgid(me.pw_gid)
    if group.gr_name != me.pw_name or set(group.gr_mem) - {me.pw_name}:
        pytest.skip(f"the primary group of {me.pw_name} is not a private group")
    with Plant(plant_dir):
        pass
    plant_dir.chmod(0o770)
    with Plant(plant_dir):
        pass


def test_exporting_ingredients_refuses_another_users_payload_and_copies_nothing(
    plant_dir, other_user, tmp_path
):
    """utils.store_ingredients_to_dir copies payload files apart from any load: the copy is
    checked as a load would be, or another user's pickle would become one of yours."""
    from pyplantd import utils

    marker, export = tmp_path / "code-ran", tmp_path / "export"

    payload = stored_payload(plant_dir)
    stage_evil_payload(payload, marker, other_user)

    refused = pytest.raises(PlantDirError, match=rf"Payload file {payload} is owned by {OTHER}")
    with refused, Plant(plant_dir) as plant:
        utils.store_ingredients_to_dir(plant, ["data"], export)
    copied = list((export / "payloads").iterdir()) if (export / "payloads").exists() else []
    assert copied == [] and not marker.exists()


def test_importing_an_hdf_array_refuses_another_users_file(plant_dir, other_user):
    """An hdf_array is opened apart from the store's loads: it is checked all the same."""
    from pyplantd import Ingredient, utils

    @ReactorFunc
    def make(pipe):
        grid = pipe.allocate("grid", Ingredient.Type.hdf_array, shape=(4, 4), dtype="f8")
        grid[:] = 1.0
        pipe.send("grid", grid, Ingredient.Type.hdf_array)

    with Plant(plant_dir) as plant:
        plant.run_reactor(make)
        payload = plant_dir / plant.store.ingredients["grid"].path
    os.chown(payload, other_user.pw_uid, other_user.pw_gid)

    with pytest.raises(PlantDirError, match=rf"Payload file {payload} is owned by {OTHER}"):
        utils.load_ingredients_from_dir(plant_dir, ["grid"])
