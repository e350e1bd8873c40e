"""A reactor the current source no longer defines (deleted, renamed) is never run again and never
feeds a result, in the daemon after a real save and in a one-shot run; its stored versions stay,
so an undo serves them without running anything. The oracle is a fresh run in an empty plant dir.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

from conftest import LOG_HELPER, Project, Result
from pyplant_client import Client
from test_daemon import Daemon, daemon, save_atomic, take_ran  # noqa: F401 (fixtures)

PIPELINE = """
from sidefx import log_run

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def load_a(pipe):
    log_run("load_a")
    pipe.send("data", 1)


@ReactorFunc
def show(pipe):
    log_run("show")
    data = yield pipe.receive("data")
    print("SERVED", data)


if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.run_reactor(show)
"""
RENAMED = PIPELINE.replace("load_a", "load_b").replace('"data", 1', '"data", 2')
GONE = PIPELINE.replace("load_a", "load_c").replace('"data", 1', '"other", 3')
NOT_SENT = "Reactor 'show' waits for ingredient 'data', but no reactor sends it"


def fresh_run(project: Project, tmp_path: Path, name: str) -> Result:
    """`python pipeline.py` on a copy of the project in an empty plant dir (the oracle)."""
    fresh = Project(tmp_path / name)
    fresh.root.mkdir()
    for source in project.root.glob("*.py"):
        shutil.copy(source, fresh.root / source.name)
    return fresh.python()


def served(text: str) -> str | None:
    found = [line.split("SERVED ", 1)[1] for line in text.splitlines() if "SERVED " in line]
    return found[-1] if found else None


def test_the_daemon_never_runs_a_renamed_reactor_and_an_undo_restores_it_and_redraws(
    project: Project,
    daemon: Callable[[], Daemon],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    project.write("sidefx.py", LOG_HELPER)
    script = project.write("pipeline.py", PIPELINE)
    watcher = daemon()
    assert served(str(watcher.next_run())) == "1"
    assert take_ran(project) == ["load_a", "show"]

    save_atomic(script, textwrap.dedent(RENAMED).lstrip("\n"))  # load_a renamed load_b
    run = watcher.next_run()
    assert take_ran(project) == ["load_b", "show"], run
    assert served(str(run)) == "2" == served(fresh_run(project, tmp_path, "renamed").stdout)

    save_atomic(script, textwrap.dedent(GONE).lstrip("\n"))  # nothing sends 'data' any more
    run = watcher.next_run()
    assert NOT_SENT in str(run) and served(str(run)) is None, run
    assert take_ran(project) == ["load_c", "show"]
    fresh = fresh_run(project, tmp_path, "gone")
    assert fresh.returncode != 0 and NOT_SENT in fresh.stderr

    # the undo: load_a's earlier result is restored; the target runs, so that what it shows is
    # what the code now says (restored, its side effects would show the undone state)
    save_atomic(script, textwrap.dedent(PIPELINE).lstrip("\n"))
    run = watcher.next_run()
    assert run.states["load_a"] == "warm" and run.states["show"] != "warm", run
    assert take_ran(project) == ["show"] and "restored an earlier result" in str(run)
    with Client.find(project.root) as client:
        assert client.fetch("data") == 1


def test_a_one_shot_run_never_serves_what_a_deleted_reactor_stored(
    project: Project, tmp_path: Path
) -> None:
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", PIPELINE)
    assert served(project.python().stdout) == "1"
    project.write("pipeline.py", GONE)
    result = project.python()
    assert result.returncode != 0 and NOT_SENT in result.stderr, result.stdout
    fresh = fresh_run(project, tmp_path, "fresh")
    assert fresh.returncode != 0 and NOT_SENT in fresh.stderr
    project.write("pipeline.py", PIPELINE)  # the undo: its stored result serves again
    again = project.python()
    assert served(again.stdout) == "1" and again.ran == ["show"], again.stderr
