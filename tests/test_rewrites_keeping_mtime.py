"""A rewrite that keeps a file's size and modification time (`cp -p`, `rsync -t`, a tool that
restores the mtime with `os.utime`, a same-size checkout) is a change like any other: caches keyed
by file stamps must still see it, one-shot and in a long-lived daemon.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Project
from test_change_detection import RESULT, fresh, result_of
from test_daemon import Daemon, save_atomic, start_daemon  # noqa: F401 (a fixture)

from pyplantd.graph.scan import SourceScan
from pyplantd.signatures import code_index

HOUR_NS = 3600 * 10**9


def rewrite_keeping_stamp(path: Path, old: str, new: str) -> None:
    """Replace `old` by `new` (same length) in place, then restore atime and mtime."""
    assert len(old) == len(new)
    stat = path.stat()
    text = path.read_text()
    assert old in text
    with open(path, "r+") as handle:
        handle.write(text.replace(old, new))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def an_hour_old(path: Path) -> None:
    """Written long ago, and changed (utime) more than a clock tick ago: a stamp cache trusts
    it without reading."""
    past = time.time_ns() - HOUR_NS
    os.utime(path, ns=(past, past))
    changed = path.stat().st_ctime_ns
    while time.time_ns() <= changed + code_index._TICK_NS:
        time.sleep(0.01)


def test_the_code_index_sees_a_rewrite_that_keeps_size_and_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(code_index, "_MODULES", {})
    path = tmp_path / "plugin.py"
    path.write_text("def scale(x):\n    return x * 2\n")
    an_hour_old(path)
    first = code_index.module_index(str(path))
    assert code_index._MODULES[str(path)][0] is not None  # a trusted stamp
    assert code_index.module_index(str(path)) is first
    rewrite_keeping_stamp(path, "x * 2", "x * 3")
    second = code_index.module_index(str(path))
    assert first is not None and second is not None
    assert second.content_hash == code_index.content_digest(path.read_bytes())
    assert second.content_hash != first.content_hash


def test_the_graphs_static_scan_sees_a_rewrite_that_keeps_size_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.py"
    path.write_text("def make(pipe):\n    pipe.send('aa', 1)\n")
    an_hour_old(path)
    found = SourceScan([path]).reactor("make")
    assert found is not None and found.sends == ["aa"]
    rewrite_keeping_stamp(path, "'aa'", "'bb'")
    found = SourceScan([path]).reactor("make")
    assert found is not None and found.sends == ["bb"]


# The reactor's helper comes from a file the script loads by path, not by `import`: it is hashed
# from the file, not from what an import read.
PLUGIN_PIPELINE = """
import importlib.util

from pyplantd import Plant, ReactorFunc

spec = importlib.util.spec_from_file_location('plugin', 'plugin.py')
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)


@ReactorFunc
def compute(pipe):
    pipe.send('value', plugin.scale(10) + helpers.BASE)


@ReactorFunc
def report(pipe):
    value = yield pipe.receive('value')
    print('RESULT', repr(value))


if __name__ == '__main__':
    import os

    with Plant(os.environ.get('PLANT', 'plant')) as plant:
        plant.run_reactor(report)
"""
PIPELINE = "import helpers\n" + PLUGIN_PIPELINE


def make_project(project: Project) -> None:
    project.write("pipeline.py", PIPELINE)
    project.write("plugin.py", "def scale(x):\n    return x * 2\n")
    project.write("helpers.py", "BASE = 100\n")
    for name in ("pipeline.py", "plugin.py", "helpers.py"):
        an_hour_old(project.root / name)


# (file, old, new): each keeps the file's size; the first through an import, the second by path
EDITS = [("helpers.py", "100", "400"), ("plugin.py", "x * 2", "x * 3")]


def test_one_shot_serves_what_a_fresh_run_computes_after_rewrites_keeping_the_stamp(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    make_project(project)
    scratch = tmp_path_factory.mktemp("fresh")
    assert result_of(project.python()) == fresh(project, None, scratch) == "120"
    for name, old, new in EDITS:
        rewrite_keeping_stamp(project.root / name, old, new)
        assert result_of(project.python()) == fresh(project, None, scratch), name
    assert result_of(project.python()) == "430"


def test_daemon_serves_what_a_fresh_run_computes_after_rewrites_keeping_the_stamp(
    project: Project,
    start_daemon: Callable[..., Daemon],  # noqa: F811 (the fixture imported above)
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    make_project(project)
    scratch = tmp_path_factory.mktemp("fresh")
    daemon = start_daemon()
    served = _served(daemon.next_run().lines, "")
    assert served == fresh(project, None, scratch) == "120"
    for name, old, new in EDITS:
        rewrite_keeping_stamp(project.root / name, old, new)
        run = daemon.next_run()
        assert run.summary.startswith(f"saved {name}: "), run
        served = _served(run.lines, served)
        assert served == fresh(project, None, scratch), f"stale after {name}:\n{run}"
    # a save of the script that changes nothing it runs re-runs nothing, and serves the same
    save_atomic(project.root / "pipeline.py", PIPELINE + "# a comment\n")
    run = daemon.next_run()
    assert "nothing to re-run" in run.summary, run
    daemon.stop()
    assert result_of(project.python()) == fresh(project, None, scratch) == "430"


def _served(lines: list[str], before: str) -> str:
    found = [m[1] for line in lines if line.startswith("[report]") and (m := RESULT.search(line))]
    return found[-1] if found else before
