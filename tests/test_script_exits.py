"""`sys.exit()`, `raise SystemExit / KeyboardInterrupt / GeneratorExit` in a reactor or in the
script's module-level code.

Under `pyplantd watch` each is that reactor's (or that load's) failure, reported with its
`path:line`, and the daemon goes on serving; only a real stop (SIGTERM here) ends it. In a one-shot
run they end the process as they would without pyplantd (the same exit status), after the
reactors that finished were stored; `pyplantd run` also says which reactor ended it and where.
"""

from __future__ import annotations

import re
import signal
import textwrap
from collections.abc import Callable

import pytest
from conftest import LOG_HELPER, Project
from test_daemon import Daemon, save_in_place, start_daemon  # noqa: F401 - the fixture

PIPELINE = """
import sys

from sidefx import log_run

from pyplantd import Plant, ReactorFunc

AT_IMPORT


@ReactorFunc
def load(pipe):
    log_run('load')
    pipe.send('data', [1, 2, 3])


@ReactorFunc
def check(pipe):
    data = yield pipe.receive('data')
    log_run('check')
    IN_REACTOR
    pipe.send('total', sum(data))


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(check)
"""

# the statement, what the failure is called
EXITS = {
    "sys.exit(3)": "SystemExit: 3",
    "sys.exit('no data')": "SystemExit: no data",
    "raise SystemExit(2)": "SystemExit: 2",
    "raise KeyboardInterrupt": "KeyboardInterrupt",
    "raise GeneratorExit": "GeneratorExit",
}


def script(at_import: str = "pass", in_reactor: str = "pass") -> str:
    text = textwrap.dedent(PIPELINE).lstrip("\n")
    return text.replace("AT_IMPORT", at_import).replace("IN_REACTOR", in_reactor)


def line_of(text: str, statement: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.strip() == statement)


def take_ran(project: Project) -> list[str]:
    log = project.root / "ran.log"
    names = sorted(log.read_text().split()) if log.exists() else []
    log.unlink(missing_ok=True)
    return names


# -- the daemon ----------------------------------------------------------------------------------
def test_exits_in_a_reactor_fail_it_and_the_daemon_goes_on(
    project: Project,
    start_daemon: Callable[..., Daemon],  # noqa: F811 - the fixture imported above
) -> None:
    project.write("sidefx.py", LOG_HELPER)
    path = project.write("pipeline.py", script())
    daemon = start_daemon()
    assert daemon.next_run().states == {"load": "ran", "check": "ran"}
    take_ran(project)

    for statement, failure in EXITS.items():
        text = script(in_reactor=statement)
        save_in_place(path, text)
        run = daemon.next_run()
        line = line_of(text, statement)
        assert run.states == {"load": "warm", "check": "failed"}, run
        assert any(
            row.startswith(f"  ✗ check {failure}") and f"{path}:{line}" in row for row in run.lines
        ), run
        assert f"  {path}:{line}, in check" in run.lines, run  # the trimmed traceback
        assert re.match(r"saved pipeline\.py: 0 of 2 reactors ran .*failed", run.summary), run
        assert daemon.proc.poll() is None
        assert take_ran(project) == ["check"]

    save_in_place(path, script())  # back to the code of its last success: served warm
    run = daemon.next_run()
    assert run.states == {"load": "warm", "check": "warm"}, run
    assert daemon.stop() == 0  # a real SIGTERM still stops it, gracefully
    assert daemon.lines[-1].startswith("stopping: flushing"), daemon.transcript()


NOT_LOADED = r"^saved pipeline\.py: the script did not load; keeping the last good state$"


def test_exits_in_module_level_code_fail_the_load_and_the_daemon_goes_on(
    project: Project,
    start_daemon: Callable[..., Daemon],  # noqa: F811 - the fixture imported above
) -> None:
    project.write("sidefx.py", LOG_HELPER)
    path = project.write("pipeline.py", script())
    daemon = start_daemon()
    assert daemon.next_run().states == {"load": "ran", "check": "ran"}
    take_ran(project)

    for statement, failure in EXITS.items():
        text = script(at_import=statement)
        since = daemon.mark()
        save_in_place(path, text)
        daemon.wait_for(NOT_LOADED, since=since)
        line = line_of(text, statement)
        daemon.wait_for(rf"^{re.escape(f'{path}:{line}:1: error: {failure}')}$", since=since)
        assert daemon.proc.poll() is None
    assert daemon.runs() == 1
    assert take_ran(project) == []

    # Python's own meaning of an exit with status 0: the script ends there, nothing failed.
    save_in_place(path, script().replace("with Plant(", "sys.exit(0)\n    with Plant("))
    since = daemon.mark()
    daemon.wait_for(r"made no Plant\(\.\.\.\): nothing to run", since=since)

    save_in_place(path, script())
    run = daemon.next_run()
    assert run.states == {"load": "warm", "check": "warm"}, run
    assert daemon.stop() == 0


# -- one-shot runs -------------------------------------------------------------------------------
def plain_python_status(project: Project, statement: str) -> int:
    """What python itself exits with for the statement (the oracle)."""
    project.write("plain.py", f"import sys\n{statement}\n")
    return project.python("plain.py").returncode


@pytest.mark.parametrize("statement", list(EXITS))
def test_exits_in_a_reactor_end_python_pipeline_py_as_python_would(
    project: Project, statement: str
) -> None:
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", script(in_reactor=statement))
    expected = plain_python_status(project, statement)
    result = project.python()
    assert result.returncode == expected, result.stderr
    if statement.startswith("sys.exit('"):
        assert result.stderr.strip() == "no data"  # printed, as python prints it
    assert result.ran == ["load", "check"]

    project.write("pipeline.py", script())
    result = project.python()
    assert result.returncode == 0, result.stderr
    assert result.ran == ["check"]  # load finished before the exit: it was stored


@pytest.mark.parametrize("statement", ["sys.exit(3)", "raise KeyboardInterrupt"])
def test_pyplantd_run_exits_like_python_and_says_which_reactor_ended_it(
    project: Project, statement: str
) -> None:
    project.write("sidefx.py", LOG_HELPER)
    text = project.write("pipeline.py", script(in_reactor=statement)).read_text()
    result = project.cli("run", "pipeline.py")
    assert result.returncode == (3 if "exit" in statement else 128 + signal.SIGINT), result.stderr
    message = " ".join(result.stderr.split())
    where = f"{project.root / 'pipeline.py'}:{line_of(text, statement)}"
    assert f"Error: Reactor 'check' ended the run: {EXITS[statement]} (at {where})" in message
    assert "The reactors that finished are kept." in message
    assert re.search(r"check\s+│\s+failed", result.stdout), result.stdout

    project.write("pipeline.py", script())
    result = project.cli("run", "pipeline.py")
    assert result.returncode == 0, result.stderr
    assert result.ran == ["check"]


def test_a_reactor_raising_while_being_abandoned_does_not_hide_the_failure(
    project: Project,
) -> None:
    """A reactor suspended on a receive is closed when the run fails; an error in its own
    cleanup is a warning, not the run's failure (which it used to replace)."""
    project.write("sidefx.py", LOG_HELPER)
    abandoned = (
        "    try:\n        data = yield pipe.receive('data')\n"
        "        more = yield pipe.receive('more')\n"
        "    finally:\n        raise RuntimeError('cleanup failed')\n"
    )
    text = script().replace("    data = yield pipe.receive('data')\n", abandoned)
    text = text.replace(
        "\n\nif __name__",
        "\n\n@ReactorFunc\ndef more(pipe):\n    raise ValueError('bad input')\n\n\nif __name__",
    )
    project.write("pipeline.py", text)
    result = project.python()
    assert result.returncode == 1
    assert "ReactorFailedError[ValueError]: Reactor 'more' failed: ValueError: bad input" in (
        result.stderr
    )
    assert "Reactor 'check' raised while being stopped: cleanup failed" in result.stderr
    project.write("pipeline.py", script())
    assert project.python().ran == ["check"]  # 'load' finished before the failure: stored
