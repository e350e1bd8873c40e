"""A tracked data file rewritten so that its size and mtime stay as they were (cp -p, rsync -t,
a tool restoring the mtime with os.utime), in place or by an atomic save, is a change: its
reader re-runs in a long-lived process (a second run in the same process, and a real daemon
after the save). The oracle: a fresh run in an empty plant dir.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import LOG_HELPER, Project
from pyplant_client import Client
from test_daemon import Daemon, daemon, save_atomic, take_ran  # noqa: F401 (fixtures)

from pyplantd import Plant, ReactorFunc
from pyplantd.run import judge

SETTLED_NS = 200_000_000  # older than the clock tick the cache allows for (50 ms)


def wait_until_settled(path: Path, timeout: float = 10) -> None:
    """Until the file's last change is old enough for its fingerprint to be cached."""
    deadline = time.monotonic() + timeout
    while True:
        stat = path.stat()
        if time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) > SETTLED_NS:
            return
        assert time.monotonic() < deadline, f"{path} stays recent"
        time.sleep(0.02)


def rewrite_in_place_keeping_mtime(path: Path, text: str) -> None:
    before = path.stat()
    assert len(text.encode()) == before.st_size
    with open(path, "r+") as handle:
        handle.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def replace_keeping_mtime(path: Path, text: str) -> None:
    """An atomic save (a new file renamed onto it), its mtime set back as `cp -p` does."""
    before = path.stat()
    assert len(text.encode()) == before.st_size
    fd, temp = tempfile.mkstemp(dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.utime(temp, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(temp, path)


REWRITES = [rewrite_in_place_keeping_mtime, replace_keeping_mtime]


@pytest.mark.parametrize("rewrite", REWRITES)
def test_a_rewrite_keeping_size_and_mtime_reruns_the_reader_in_the_same_process(
    tmp_path: Path, rewrite: Callable[[Path, str], None]
) -> None:
    data = tmp_path / "data.txt"
    data.write_text("10")
    ran: list[int] = []

    @ReactorFunc
    def parse(pipe):
        with open(pipe.track_file(data)) as handle:
            ran.append(int(handle.read()))
        pipe.send("value", ran[-1])

    @ReactorFunc
    def show(pipe):
        yield pipe.receive("value")

    with Plant(tmp_path / "plant") as plant:
        plant.run_reactor(show)  # parse runs and records the file
        wait_until_settled(data)
        plant.run_reactor(show)  # parse is checked: the file's fingerprint is cached
        rewrite(data, "30")
        plant.run_reactor(show)
        assert plant.fetch_ingredient("value") == 30
    assert ran == [10, 30]


PIPELINE = """
from sidefx import log_run

from pyplantd import Plant, ReactorFunc
from pyplantd.run import judge


@ReactorFunc
def parse(pipe):
    log_run("parse")
    with open(pipe.track_file("data.txt")) as handle:
        pipe.send("value", int(handle.read()))


@ReactorFunc
def show(pipe):
    print("SERVED", (yield pipe.receive("value")))


if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.run_reactor(show)
"""


def fresh_value(project: Project, tmp_path: Path, name: str) -> str:
    copy = Project(tmp_path / name)
    copy.root.mkdir()
    for source in [*project.root.glob("*.py"), project.root / "data.txt"]:
        shutil.copy(source, copy.root / source.name)
    result = copy.python()
    lines = [line for line in result.stdout.splitlines() if line.startswith("SERVED ")]
    assert lines, result.stderr
    return lines[-1].split(" ", 1)[1]


def test_the_daemon_reruns_the_reader_of_a_file_rewritten_keeping_size_and_mtime(
    project: Project,
    daemon: Callable[[], Daemon],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    project.write("sidefx.py", LOG_HELPER)
    script = project.write("pipeline.py", PIPELINE)
    data = project.root / "data.txt"
    data.write_text("10")
    watcher = daemon()
    watcher.next_run()
    assert take_ran(project) == ["parse"]
    for step, (rewrite, text) in enumerate(zip(REWRITES, ["30", "50"], strict=True)):
        wait_until_settled(data)
        save_atomic(script, script.read_text() + f"\n# save {step}\n")  # parse is checked
        run = watcher.next_run()
        assert take_ran(project) == [], run
        rewrite(data, text)
        run = watcher.next_run()
        assert take_ran(project) == ["parse"], run
        with Client.find(project.root) as client:
            assert str(client.fetch("value")) == text == fresh_value(project, tmp_path, text)


def test_a_file_the_watcher_saw_change_is_hashed_again_whatever_its_stamp(tmp_path: Path) -> None:
    # Where ctime is the creation time (Windows), the stamp can stay: the daemon forgets the
    # fingerprints of the files its watcher reports changed.
    data = tmp_path / "data.txt"
    data.write_text("10")
    wait_until_settled(data)
    path = str(data)
    right = judge.tracked_file_fingerprint(path)
    stamp, _ = judge._FILE_FINGERPRINTS[path]
    judge._FILE_FINGERPRINTS[path] = (stamp, "a stale fingerprint under the same stamp")
    judge.forget_tracked_files([data])
    assert judge.tracked_file_fingerprint(path) == right
