"""The daemon's terminal as a user sees it: a real `pyplantd watch` on a pseudo-terminal, its
screen kept by a terminal emulator. The live view's times move, a reactor waiting for an
ingredient says so, progress bars show rate and time left, log records and tqdm bars come out
once each, the result table stays after the run, and a failure prints as `path:line:col:
error: ...`. Reactors wait for a `go` file the test creates, so nothing depends on timing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import REPO, Project
from terminal import Terminal

PYTHONPATH = os.pathsep.join([str(REPO), str(REPO / "client")])
GO = """
import time
from pathlib import Path


def wait_for_go():
    deadline = time.monotonic() + 120
    while not Path('go').exists() and time.monotonic() < deadline:
        time.sleep(0.01)
"""


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": PYTHONPATH, "PYTHONUNBUFFERED": "1"}


@pytest.fixture
def on_terminal(project: Project) -> Iterator[Callable[..., Terminal]]:
    """Starts commands on terminals in the project; stopped (their screen shown) at teardown."""
    started: list[Terminal] = []

    def start(*args: str) -> Terminal:
        started.append(Terminal([sys.executable, "-m", *args], project.root, env()))
        return started[-1]

    try:
        yield start
    finally:
        for terminal in started:
            code = terminal.stop()
            print(f"--- {terminal.proc.args} (exit {code}) shows:\n{terminal.text()}")


def write_pipeline(project: Project, body: str, target: str) -> Path:
    project.write("gate.py", GO)
    script = textwrap.dedent(body).strip("\n")
    main = "\n\nif __name__ == '__main__':\n    with Plant('plant') as plant:\n"
    return project.write("pipeline.py", script + main + f"        plant.run_reactor({target})\n")


def seconds(text: str) -> float:
    value, unit = text.split()
    return float(value) / (1000 if unit == "ms" else 1)


def table_rows(lines: list[str]) -> list[list[str]]:
    return [re.split(r"\s*│\s*", line.strip()) for line in lines if "│" in line]


def line_with(lines: list[str], pattern: str) -> str | None:
    return next((line for line in lines if re.search(pattern, line)), None)


WAITING = """
from gate import wait_for_go

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def big(pipe):
    wait_for_go()
    pipe.send('big', 42)


@ReactorFunc
def small(pipe):
    value = yield pipe.receive('big')
    print('small got', value)
"""


def test_live_view_times_move_and_a_reactor_waiting_for_an_input_says_for_which(
    project: Project, on_terminal: Callable[..., Terminal]
) -> None:
    write_pipeline(project, WAITING, "small")
    daemon = on_terminal("pyplantd.cli", "watch", "pipeline.py")
    first = seconds(daemon.wait_for(r"▶ big\s+running (\S+ m?s)")[1])
    daemon.wait_for(r"… small\s+waiting for big$")

    def moved(lines: list[str]) -> bool:
        line = line_with(lines, r"▶ big\s+running")
        return line is not None and seconds(line.split("running ")[1]) > first + 0.3

    daemon.wait_until(moved, "big's running time moving on", timeout=60)
    assert line_with(daemon.lines(), r"small\s+running") is None, daemon.text()

    status = subprocess.run(
        [sys.executable, "-m", "pyplant_client.cli", "status"], cwd=project.root, env=env(),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert re.search(r"running +small \(.*\): waiting for big", status.stdout), status.stdout
    assert re.search(r"state: running big for", status.stdout), status.stdout
    (project.root / "go").touch()
    daemon.wait_for(r"^start: 2 of 2 reactors ran")
    assert line_with(daemon.lines(), r"\[small\] small got 42")


def test_the_result_table_stays_on_screen_after_each_run(
    project: Project, on_terminal: Callable[..., Terminal]
) -> None:
    write_pipeline(project, WAITING, "small")
    (project.root / "go").touch()
    daemon = on_terminal("pyplantd.cli", "watch", "pipeline.py")
    daemon.wait_for(r"^memory: ")
    lines = daemon.lines()
    header = lines.index(line_with(lines, r"^reactor\s+┃\s+result\s+┃\s+duration\s+┃\s+why"))
    rows = {row[0]: row[1:] for row in table_rows(lines[header + 2 : header + 4])}
    assert rows == {
        "big": ["ran", rows["big"][1], "new reactor (never ran)"],
        "small": ["ran", rows["small"][1], "target; new reactor (never ran)"],
    }, lines
    assert line_with(lines, r"running|waiting") is None, "the live rows are gone"

    project.edit("pipeline.py", "print('small got', value)", "print('small has', value)")
    daemon.wait_until(lambda lines: sum(line.startswith("memory: ") for line in lines) == 2,
                      "the second run's end")  # fmt: skip
    lines = daemon.lines()
    second = {row[0]: row[1:] for row in table_rows(lines)[-2:]}
    assert second == {
        "big": ["warm", "-", "cached"],
        "small": ["ran", second["small"][1], "code changed (small)"],
    }, lines


PROGRESS = """
import time

from gate import wait_for_go

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def frames(pipe):
    for number in pipe.track(range(100)):
        if number == 60:
            wait_for_go()
        time.sleep(0.01)
    pipe.send('frames', 100)
"""


def test_progress_shows_as_a_bar_with_rate_and_time_left_in_the_live_view(
    project: Project, on_terminal: Callable[..., Terminal]
) -> None:
    write_pipeline(project, PROGRESS, "frames")
    daemon = on_terminal("pyplantd.cli", "watch", "pipeline.py")
    bar = r"▶ frames\s+running \S+ m?s [█░]{20}\s+\d+% (\d+)/100 · [\d.]+k?/s · ETA [\d.]+ s"
    assert 0 < int(daemon.wait_for(bar)[1]) <= 60
    (project.root / "go").touch()
    daemon.wait_for(r"^start: 1 of 1 reactors ran")
    assert line_with(daemon.lines(), r"[█░]{20}") is None, "the bar went with the live view"


LOGGING = """
import logging
import time

from pyplantd import Plant, ReactorFunc

logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')
file_log = logging.FileHandler('records.log')
file_log.setFormatter(logging.Formatter('%(message)s'))
logging.getLogger('pipe').addHandler(file_log)
log = logging.getLogger('pipe')


@ReactorFunc
def chatty(pipe):
    print('first a print')
    for number in range(12):  # slower than the live view's refresh: it redraws in between
        log.info('record %d of 12', number)
        time.sleep(0.15)
    pipe.send('chatty', 1)
"""


def test_every_log_record_appears_once_whole_and_prefixed_on_a_terminal(
    project: Project, on_terminal: Callable[..., Terminal]
) -> None:
    write_pipeline(project, LOGGING, "chatty")
    daemon = on_terminal("pyplantd.cli", "watch", "pipeline.py")
    daemon.wait_for(r"^memory: ")
    lines = daemon.lines()
    records = [line for line in lines if " of 12" in line]
    expected = [f"[chatty] INFO pipe: record {n} of 12" for n in range(12)]
    assert records == expected, daemon.text()
    assert "[chatty] first a print" in lines
    # a handler that does not write to the terminal gets the prefix too, once
    logged = (project.root / "records.log").read_text().splitlines()
    assert logged == [f"[chatty] record {n} of 12" for n in range(12)]


TQDM = """
import time

from gate import wait_for_go
from tqdm import tqdm

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def bars(pipe):
    for number in tqdm(range(30), desc='frames', mininterval=0):
        if number == 15:
            wait_for_go()
        time.sleep(0.01)
    pipe.send('bars', 30)
"""


def test_a_tqdm_bar_is_one_updating_line_on_a_terminal(
    project: Project, on_terminal: Callable[..., Terminal]
) -> None:
    write_pipeline(project, TQDM, "bars")
    daemon = on_terminal("pyplantd.cli", "watch", "pipeline.py")
    daemon.wait_for(r"▶ bars\s+running \S+ m?s frames:  50%\|.*\| 15/30")
    (project.root / "go").touch()
    daemon.wait_for(r"^memory: ")
    bars = [line for line in daemon.lines() if "frames:" in line]
    assert len(bars) == 1, daemon.text()
    assert re.match(r"\[bars\] frames: 100%\|█+\| 30/30 ", bars[0]), bars


BROKEN = """
from pyplantd import Plant, ReactorFunc


@ReactorFunc
def broken(pipe):
    pipe.send('half', 1)
    raise ValueError('broken on purpose')
"""


def test_a_failure_prints_path_line_column_and_the_reactor_on_the_daemon_terminal(
    project: Project, on_terminal: Callable[..., Terminal]
) -> None:
    path = write_pipeline(project, BROKEN, "broken")
    line = path.read_text().splitlines().index("    raise ValueError('broken on purpose')") + 1
    column = 5 if sys.version_info >= (3, 11) else 1
    daemon = on_terminal("pyplantd.cli", "watch", "pipeline.py")
    expected = f"{path}:{line}:{column}: error: broken: ValueError: broken on purpose"
    daemon.wait_for("^" + re.escape(expected) + "$")
    daemon.wait_for(r"^start: 0 of 1 reactors ran .*, failed")
    rows = table_rows(daemon.lines())
    assert rows and rows[0][:2] == ["broken", "failed"], daemon.text()


def test_pyplantd_run_shows_progress_live_on_a_terminal_then_its_table(
    project: Project, on_terminal: Callable[..., Terminal]
) -> None:
    write_pipeline(project, PROGRESS, "frames")
    run = on_terminal("pyplantd.cli", "run", "pipeline.py")
    run.wait_for(r"▶ frames\s+running \S+ m?s [█░]{20}\s+\d+% \d+/100 · [\d.]+k?/s · ETA")
    (project.root / "go").touch()
    assert run.wait_exit() == 0, run.text()
    lines = run.lines()
    assert line_with(lines, r"[█░]{20}") is None, lines
    assert line_with(lines, r"^frames\s+│ ran\s+│"), lines


def test_pyplant_run_shows_one_status_line_of_progress_on_a_terminal(
    project: Project, on_terminal: Callable[..., Terminal]
) -> None:
    write_pipeline(project, PROGRESS, "frames")
    (project.root / "go").touch()
    daemon = on_terminal("pyplantd.cli", "watch", "pipeline.py")
    daemon.wait_for(r"^memory: ")
    (project.root / "go").unlink()
    client = on_terminal("pyplant_client.cli", "run")
    status = client.wait_for(r"^frames [█░]{20}\s+\d+% \d+/100 · [\d.]+k?/s · ETA")
    assert len([line for line in client.lines() if "/100" in line]) == 1
    assert status
    (project.root / "go").touch()
    assert client.wait_exit() == 0, client.text()
    lines = client.lines()
    assert lines[-1].startswith("run finished: run 2 ok: 1 ran"), lines
    assert line_with(lines, r"/100") is None, "the status line is wiped at the end"
