"""What a run prints when the output is not a terminal (a log, a pipe, an editor's task), and what
reaches clients: a real `pyplantd watch`, the real `pyplant run`, `pyplantd run`, and the
progress API in process (its events, their throttling, PipeworkMock).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Project
from late_subscription import redirect_events
from pyplant_client import Client
from pyplant_client.progress import compact, progress_text
from test_daemon import Daemon, start_daemon, take_ran

from pyplantd import Plant, ReactorFunc
from pyplantd.daemon.console import _overlaid
from pyplantd.events import EventType, PlantEvent
from pyplantd.test import PipeworkMock, run_reactor_to_completion

__all__ = ["start_daemon"]  # a fixture, used by name

PYTHONPATH = os.pathsep.join([str(REPO), str(REPO / "client")])


def pyplant(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyplant_client.cli", *args], cwd=project.root,
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
    )  # fmt: skip


# -- pyplant run streams what the reactors print and log ---------------------------------------
CHATTY = """
import logging
import time

from pyplantd import Plant, ReactorFunc

logging.basicConfig(format='%(levelname)s %(name)s: %(message)s')
log = logging.getLogger('pipe')


@ReactorFunc
def load(pipe):
    pipe.send('data', list(range(5)))


@ReactorFunc
def report(pipe):
    data = yield pipe.receive('data')
    total = 0
    for value in pipe.track(data):
        total += value
        time.sleep(DELAY)
    print('report printed', total)
    log.warning('report logged %d', total)


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(report)
"""


def test_pyplant_run_streams_prints_log_lines_and_progress_and_quiet_hides_them(
    project: Project, start_daemon: Callable[..., Daemon]
) -> None:
    project.write("pipeline.py", CHATTY.replace("DELAY", "0.42"))  # 2.1 s: progress is shown
    daemon = start_daemon()
    daemon.next_run()
    result = pyplant(project, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "run started: run 2 (run requested)"
    assert "[report] report printed 10" in lines
    assert "[report] WARNING pipe: report logged 10" in lines
    ran = next(i for i, line in enumerate(lines) if line.startswith("  ran  report"))
    assert lines.index("[report] WARNING pipe: report logged 10") < ran, lines  # in order
    progress = [line for line in lines if "⋯" in line]
    assert 1 <= len(progress) <= 2, lines  # one every 2 s, and the last
    assert re.match(r"  ⋯ report █{20} 100% 5/5 · [\d.]+/s$", progress[-1]), progress
    assert lines[-1].startswith("run finished: run 2 ok: 1 ran, 1 warm")

    quiet = pyplant(project, "run", "--quiet")
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert not [line for line in quiet.stdout.splitlines() if "[report]" in line or "⋯" in line]
    assert quiet.stdout.splitlines()[-1].startswith("run finished: run 3 ok")
    # the daemon's own output prefixes them alike
    transcript = daemon.transcript()
    assert transcript.count("[report] WARNING pipe: report logged 10") == 3, transcript


def test_pyplant_run_and_subscribe_miss_nothing_when_a_subscription_takes_effect_late(
    project: Project, start_daemon: Callable[..., Daemon]
) -> None:
    # The link passes the handshake at once and the subscription 1.5 s later: a client that
    # asks for the run once the handshake is done loses the events published meanwhile.
    project.write("pipeline.py", CHATTY.replace("DELAY", "0.01"))
    daemon = start_daemon()
    daemon.next_run()
    with redirect_events(project.root, delay=1.5) as link:
        result = pyplant(project, "run")
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "run started: run 2 (run requested)", lines
        assert "[report] report printed 10" in lines
        assert lines[-1].startswith("run finished: run 2 ok: 1 ran, 1 warm"), lines
        assert "missed" not in result.stderr, result.stderr

        with Client.find(project.root) as client, client.subscribe() as stream:
            run_id = client.run()
            events = list(client.follow(stream, run_id, timeout=60))
        kinds = [event["type"] for event in events]
        assert kinds[0] == "run_started" and kinds[-1] == "run_finished", kinds
        assert "log" in kinds and not events[-1].get("synthesized"), events
        assert stream.missed == 0
        assert link.connections == 2  # both went through the late link


# -- the daemon's plain output ------------------------------------------------------------------
TQDM = """
from tqdm import tqdm

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def bars(pipe):
    total = 0
    for value in tqdm(range(30), desc='frames', mininterval=0):
        total += value
    print('after the bar')
    pipe.send('total', total)


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(bars)
"""


def test_a_tqdm_bar_in_plain_output_is_one_line(
    project: Project, start_daemon: Callable[..., Daemon]
) -> None:
    project.write("pipeline.py", TQDM)
    run = start_daemon().next_run()
    bars = [line for line in run.lines if "frames:" in line]
    assert len(bars) == 1, run
    assert re.match(r"\[bars\] frames: 100%\|█+\| 30/30 \[", bars[0]), bars
    assert "[bars] after the bar" in run.lines


EARLY_CUTOFF = """
from sidefx import log_run

from pyplantd import Plant, ReactorFunc


def make():
    return list(range(10))


@ReactorFunc
def load(pipe):
    log_run('load')
    pipe.send('data', make())


@ReactorFunc
def plot(pipe):
    data = yield pipe.receive('data')
    log_run('plot')
    print('sum', sum(data))


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(plot)
"""


def test_a_save_that_remakes_identical_data_says_why_its_consumer_did_not_run(
    project: Project, start_daemon: Callable[..., Daemon]
) -> None:
    from conftest import LOG_HELPER

    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", EARLY_CUTOFF)
    daemon = start_daemon()
    daemon.next_run()
    assert take_ran(project) == ["load", "plot"]
    project.edit("pipeline.py", "return list(range(10))", "return [n for n in range(10)]")
    run = daemon.next_run()
    assert take_ran(project) == ["load"]
    assert run.states == {"load": "ran", "plot": "warm"}, run
    assert "  · plot warm (input 'data' unchanged (early cutoff))" in run.lines, run
    assert run.summary.startswith("saved pipeline.py: 1 of 2 reactors ran ("), run
    assert run.summary.endswith(
        ", 1 warm, why: load: helper make() in pipeline.py changed; "
        "plot: input 'data' unchanged (early cutoff)"
    ), run


SLOW_PROGRESS = """
import time

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def frames(pipe):
    for number in range(50):
        pipe.progress(number + 1, 50, note=f'frame {number + 1}')
        time.sleep(0.06)
    pipe.send('frames', 50)


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(frames)
"""


def test_plain_output_prints_a_progress_line_every_two_seconds_and_at_the_total(
    project: Project, start_daemon: Callable[..., Daemon]
) -> None:
    project.write("pipeline.py", SLOW_PROGRESS)
    run = start_daemon().next_run()
    progress = [line for line in run.lines if line.startswith("  ⋯ frames ")]
    # 3 s of work: one line after 2 s, and the last; never more than one per 2 s
    assert 2 <= len(progress) <= 3, run
    assert re.match(r"  ⋯ frames [█░]{20}\s+\d+% \d+/50 · [\d.]+/s · ETA [\d.]+ s · frame \d+$",
                    progress[0]), progress  # fmt: skip
    assert progress[-1].startswith("  ⋯ frames ████████████████████ 100% 50/50 · "), progress
    assert progress[-1].endswith(" · frame 50"), progress


@pytest.mark.parametrize("delay", [0.42, 0.0])
def test_pyplantd_run_prints_progress_and_leaves_reactor_output_as_python_does(
    project: Project, delay: float
) -> None:
    project.write("pipeline.py", CHATTY.replace("DELAY", str(delay)))
    result = project.cli("run", "pipeline.py")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "report printed 10" in lines
    progress = [line for line in lines if "⋯" in line]
    if delay:
        assert re.match(r"  ⋯ report ████████████████████ 100% 5/5", progress[-1]), lines
    else:
        assert progress == [], "a loop quicker than 2 s prints no progress line"
    assert "WARNING pipe: report logged 10" in result.stderr.splitlines()


# -- the progress API, in process ---------------------------------------------------------------
def test_progress_in_a_tight_loop_sends_a_few_events_a_second_and_the_last_one(
    plant_dir: Path,
) -> None:
    calls = 1_000_000

    @ReactorFunc
    def busy(pipe):
        for done in range(1, calls + 1):
            pipe.progress(done, calls)
        pipe.send("busy", calls)

    events: list[PlantEvent] = []
    with Plant(plant_dir) as plant:
        plant.subscribe(events.append)
        plant.run_reactor(busy)
    reports = [e.data for e in events if e.type is EventType.reactor_progress]
    duration = next(e.data["duration"] for e in events if e.type is EventType.reactor_finished)
    assert len(reports) <= duration / 0.1 + 2, (len(reports), duration)
    assert reports[-1]["done"] == reports[-1]["total"] == calls
    assert reports[-1]["rate"] > 0 and reports[-1]["eta"] == 0


def test_a_reactor_waiting_for_an_input_is_told_apart_from_running(plant_dir: Path) -> None:
    @ReactorFunc
    def source(pipe):
        pipe.send("x", 1)

    @ReactorFunc
    def sink(pipe):
        value = yield pipe.receive("x")
        pipe.send("y", value)

    events: list[tuple[str, str | None, Any]] = []
    with Plant(plant_dir) as plant:
        plant.subscribe(
            lambda e: events.append((e.type.value, e.reactor, e.data.get("ingredient")))
        )
        plant.run_reactor(sink)
    assert [e for e in events if e[0].startswith("reactor_")] == [
        ("reactor_started", "sink", None),
        ("reactor_waiting", "sink", "x"),
        ("reactor_started", "source", None),
        ("reactor_finished", "source", None),
        ("reactor_resumed", "sink", None),
        ("reactor_finished", "sink", None),
    ]


def test_track_and_progress_work_under_pipework_mock() -> None:
    @ReactorFunc
    def total(pipe):
        values = yield pipe.receive("values")
        pipe.progress(0, note="starting")
        pipe.send("total", sum(pipe.track(values)))

    mock = PipeworkMock({}, {"values": [1, 2, 3]})
    run_reactor_to_completion(total, mock)
    assert mock.get_products() == {"total": 6}


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        ({"done": 40, "total": 100, "rate": 1234.5, "eta": 0.04},
         "████████░░░░░░░░░░░░  40% 40/100 · 1.23k/s · ETA 0.0 s"),
        ({"done": 100, "total": 100, "rate": 50.0, "eta": 0.0, "note": "done"},
         "████████████████████ 100% 100/100 · 50/s · done"),
        ({"done": 2_500_000, "total": None, "rate": None, "eta": None}, "2.5M done"),
        ({"done": 3, "total": 10, "rate": 0.01, "eta": 700.0},
         "██████░░░░░░░░░░░░░░  30% 3/10 · 0.01/s · ETA 11 min 40 s"),
    ],
)  # fmt: skip
def test_progress_text(fields: dict[str, Any], text: str) -> None:
    assert progress_text(fields) == text


def test_compact_numbers() -> None:
    assert [compact(n) for n in (0, 7, 950, 1000, 12_345, 4_567_890, 2.5)] == [
        "0", "7", "950", "1k", "12.3k", "4.57M", "2.5",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("written", "shown"),
    [("abc\rX", "Xbc"), ("\r 10%\r 20%\r100%", "100%"), ("bar\r   \r", "   "), ("plain", "plain")],
)
def test_a_line_rewritten_with_carriage_returns_is_what_a_terminal_shows(
    written: str, shown: str
) -> None:
    assert _overlaid(written) == shown


def test_status_shows_a_running_reactors_progress(
    project: Project, start_daemon: Callable[..., Daemon]
) -> None:
    project.write("pipeline.py", UNTIL_GO)
    daemon = start_daemon()
    daemon.wait_for(r"watching pipeline\.py")
    with Client.find(project.root) as client:
        deadline = time.monotonic() + 60
        while True:
            info = client.status().get("reactors", {}).get("frames", {})
            if info.get("progress", {}).get("rate"):
                break
            assert time.monotonic() < deadline, "no progress in status"
            time.sleep(0.05)
    assert info["state"] == "running"
    assert info["progress"]["total"] == 1000 and 0 < info["progress"]["done"] < 1000
    assert info["progress"]["note"].startswith("frame ")
    printed = pyplant(project, "status").stdout
    assert re.search(r"running +frames \(.*\) [█░]{20} .*/1k · .*/s · ETA", printed), printed
    (project.root / "go").touch()
    assert daemon.next_run().summary.startswith("start: 1 of 1 reactors ran")


UNTIL_GO = """
import os
import time

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def frames(pipe):
    deadline = time.monotonic() + 120
    for number in range(1000):
        pipe.progress(number, 1000, note=f'frame {number}')
        while number == 500 and not os.path.exists('go') and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.001)
    pipe.send('frames', 1000)


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(frames)
"""


def test_the_readme_quickstart_edits_run_what_the_readme_says(
    project: Project, start_daemon: Callable[..., Daemon]
) -> None:
    """Same data from an edited `expensive_operation`: only load_data, and the summary says why
    plot_data did not run; other data: both."""
    project.write("pipeline.py", (REPO / "examples" / "quickstart.py").read_text())
    daemon = start_daemon()
    start = daemon.next_run()
    assert start.states == {"load_data": "ran", "plot_data": "ran"}, start
    project.edit("pipeline.py", "time.sleep(0.5)", "time.sleep(0.4)")
    same = daemon.next_run()
    assert same.states == {"load_data": "ran", "plot_data": "warm"}, same
    assert same.summary.endswith("plot_data: input 'data' unchanged (early cutoff)"), same
    project.edit("pipeline.py", "default_rng(42)", "default_rng(7)")
    other = daemon.next_run()
    assert other.states == {"load_data": "ran", "plot_data": "ran"}, other
