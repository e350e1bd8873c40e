"""End to end: write a pipeline script, run it in a subprocess, edit it, run it again, and
assert exactly which reactors executed (each reactor appends its name to ran.log).

`python pipeline.py` and `pyplantd run pipeline.py` are both exercised; explanations are read
from `pyplantd run --explain`.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import LOG_HELPER, REPO, Project, Result

PIPELINE = """
import numpy as np
from helpers import normalize
from sidefx import log_run

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def load(pipe, config):
    '''Make the input data.'''
    log_run('load')
    pipe.send('data', np.arange(config.n, dtype=float))


@ReactorFunc
def process(pipe):
    log_run('process')
    data = yield pipe.receive('data')
    pipe.send('result', normalize(data))


@ReactorFunc
def plot(pipe):
    log_run('plot')
    result = yield pipe.receive('result')
    print('total', result.sum())


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.set_config({'n': 10})
        plant.run_reactor(plot)
"""

HELPERS = """
def normalize(values):
    return values * 2
"""

# load -> process -> summarize -> plot: summarize is a consumer that is not the target.
SUMMARIZE = """
@ReactorFunc
def summarize(pipe):
    log_run('summarize')
    result = yield pipe.receive('result')
    pipe.send('summary', float(result.sum()))


@ReactorFunc
def plot(pipe):
    log_run('plot')
    summary = yield pipe.receive('summary')
    print('total', summary)
"""

EXPLAIN_HEADER = re.compile(r"(\S+): (ran|cached|failed|skipped)")


def make_project(project: Project, pipeline: str = PIPELINE, helpers: str = HELPERS) -> None:
    project.write("sidefx.py", LOG_HELPER)
    project.write("helpers.py", helpers)
    project.write("pipeline.py", pipeline)


def replace_plot(pipeline: str, new_plot: str) -> str:
    """The pipeline with its `plot` reactor replaced by `new_plot` (which may add reactors)."""
    start = pipeline.index("@ReactorFunc\ndef plot")
    end = pipeline.index("\n\nif __name__")
    return pipeline[:start] + new_plot.strip("\n") + "\n" + pipeline[end:]


def assert_ran(result: Result, *expected: str) -> None:
    assert result.returncode == 0, result.stderr
    assert sorted(result.ran) == sorted(expected), result.stdout + result.stderr


def explanations(result: Result) -> dict[str, list[str]]:
    """`pyplantd run --explain` output as reactor -> [status, reason, ...]."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in result.stdout.splitlines():
        header = EXPLAIN_HEADER.fullmatch(line)
        if header:
            current = found.setdefault(header[1], [header[2]])
        elif line.startswith("    ") and current is not None:
            current.append(line.strip())
        else:
            current = None
    return found


def line_of(project: Project, name: str, text: str) -> int:
    lines = (project.root / name).read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def subprocess_env(*extra_paths: Path) -> dict[str, str]:
    path = os.pathsep.join([*(str(p) for p in extra_paths), str(REPO)])
    return {**os.environ, "PYTHONPATH": path}


def cli_with_path(project: Project, extra_path: Path, *args: str) -> Result:
    """`pyplantd ...` with another directory first on PYTHONPATH."""
    return project.cli(*args, env={"PYTHONPATH": os.pathsep.join([str(extra_path), str(REPO)])})


def recorded_reactors(plant_dir: Path) -> set[str]:
    """Reactors whose results the plant's manifest has committed (read-only peek)."""
    try:
        db = sqlite3.connect(f"file:{plant_dir / 'pyplantd.db'}?mode=ro", uri=True, timeout=1)
        try:
            return {name for (name,) in db.execute("SELECT name FROM reactors")}
        finally:
            db.close()
    except sqlite3.Error:
        return set()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


# -- 1-5: no edit, body edit, edits that do not change the code -------------------------------
def test_first_run_runs_everything_and_second_run_only_the_target(project: Project) -> None:
    make_project(project)
    first = project.python()
    assert_ran(first, "load", "process", "plot")
    assert "total 90.0" in first.stdout
    second = project.python()
    assert_ran(second, "plot")
    assert "total 90.0" in second.stdout


def test_body_edit_reruns_the_reactor_and_its_consumers(project: Project) -> None:
    make_project(project)
    assert_ran(project.python(), "load", "process", "plot")
    project.edit("pipeline.py", "normalize(data))", "normalize(data) + 1)")
    second = project.cli("run", "pipeline.py", "--explain")
    assert_ran(second, "process", "plot")
    assert "code changed (process)" in explanations(second)["process"]
    assert "total 100.0" in second.stdout


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(
            "    log_run('load')\n",
            "    # the log comes first so that a crash still shows up\n    log_run('load')  # x\n",
            id="comment",
        ),
        pytest.param(
            "'''Make the input data.'''", '"""Make the input data: n floats."""', id="docstring"
        ),
        pytest.param(
            "    log_run('load')\n    pipe.send('data', np.arange(config.n, dtype=float))\n",
            '    log_run("load")\n\n\n    pipe.send(\n        "data",\n'
            "        np.arange(config.n,\n                  dtype=float),\n    )\n",
            id="reformat",
        ),
    ],
)
def test_edit_that_keeps_the_ast_reruns_only_the_target(
    project: Project, old: str, new: str
) -> None:
    make_project(project)
    assert_ran(project.python(), "load", "process", "plot")
    project.edit("pipeline.py", old, new)
    assert_ran(project.python(), "plot")


# -- 6-7: helpers in another module -----------------------------------------------------------
@pytest.mark.parametrize(
    "style",
    ["from helpers import normalize", "import helpers"],
)
def test_helper_edit_reruns_the_reactor_that_calls_it(project: Project, style: str) -> None:
    pipeline = PIPELINE
    if style == "import helpers":
        pipeline = pipeline.replace("from helpers import normalize", "import helpers")
        pipeline = pipeline.replace("normalize(data)", "helpers.normalize(data)")
    make_project(project, pipeline)
    assert_ran(project.python(), "load", "process", "plot")
    project.edit("helpers.py", "values * 2", "values * 3")
    second = project.cli("run", "pipeline.py", "--explain")
    assert_ran(second, "process", "plot")
    assert "helper normalize() in helpers.py changed" in explanations(second)["process"]
    assert "total 135.0" in second.stdout


LAYERED_HELPERS = """
FACTOR = 2


def normalize(values):
    return scale(values)


def scale(values):
    return values * FACTOR


def unused(values):
    return values - 1
"""


@pytest.mark.parametrize(
    ("old", "new", "expected", "reason"),
    [
        pytest.param(
            "values * FACTOR",
            "values * FACTOR * 1.5",
            ["process", "plot"],
            "helper scale() in helpers.py changed",
            id="helper-of-a-helper",
        ),
        pytest.param(
            "FACTOR = 2",
            "FACTOR = 3",
            ["process", "plot"],
            "constant FACTOR in helpers.py changed",
            id="constant",
        ),
        pytest.param("values - 1", "values - 2", ["plot"], None, id="unreached-helper"),
    ],
)
def test_helper_changes_count_only_where_the_reactor_reaches_them(
    project: Project, old: str, new: str, expected: list[str], reason: str | None
) -> None:
    make_project(project, helpers=LAYERED_HELPERS)
    assert_ran(project.python(), "load", "process", "plot")
    project.edit("helpers.py", old, new)
    second = project.cli("run", "pipeline.py", "--explain")
    assert_ran(second, *expected)
    if reason is not None:
        assert reason in explanations(second)["process"]
        assert "total 135.0" in second.stdout


def test_helper_edit_with_identical_output_stops_at_the_first_consumer(project: Project) -> None:
    make_project(project, replace_plot(PIPELINE, SUMMARIZE))
    assert_ran(project.python(), "load", "process", "summarize", "plot")
    project.edit("helpers.py", "values * 2", "values + values")
    second = project.cli("run", "pipeline.py", "--explain")
    assert_ran(second, "process", "plot")
    assert explanations(second)["summarize"][0] == "cached"
    assert "total 90.0" in second.stdout


# -- 8: config --------------------------------------------------------------------------------
def test_config_edit_reruns_the_reactor_that_read_it_and_downstream(project: Project) -> None:
    make_project(project)
    assert_ran(project.python(), "load", "process", "plot")
    project.edit("pipeline.py", "{'n': 10}", "{'n': 20}")
    second = project.cli("run", "pipeline.py", "--explain")
    assert_ran(second, "load", "process", "plot")
    assert "param 'n' changed 10 -> 20" in explanations(second)["load"]
    assert "total 380.0" in second.stdout


def test_auxiliary_param_edit_reruns_only_the_target(project: Project) -> None:
    pipeline = PIPELINE.replace(
        "plant.set_config({'n': 10})",
        "plant.set_config({'n': 10, 'verbose': False})\n"
        "        plant.mark_params_as_auxiliary(['verbose'])",
    ).replace("log_run('load')", "log_run('load')\n    print('verbose', config.verbose)")
    make_project(project, pipeline)
    assert_ran(project.python(), "load", "process", "plot")
    project.edit("pipeline.py", "'verbose': False", "'verbose': True")
    assert_ran(project.python(), "plot")


# -- 9: subreactors ---------------------------------------------------------------------------
SUBREACTORS = """
import numpy as np
from sidefx import log_run

from pyplantd import Plant, ReactorFunc, SubreactorFunc


@SubreactorFunc
def triple(values):
    return values * 3


@SubreactorFunc
def fetch_scaled(pipe):
    data = yield pipe.receive('data')
    scaled = yield from triple(data)
    return scaled + 0


@ReactorFunc
def load(pipe):
    log_run('load')
    pipe.send('data', np.arange(10, dtype=float))


@ReactorFunc
def process(pipe):
    log_run('process')
    scaled = yield from fetch_scaled(pipe)
    pipe.send('result', scaled)


@ReactorFunc
def offset(pipe):
    log_run('offset')
    data = yield pipe.receive('data')
    shifted = yield from triple(data - 1)
    pipe.send('shifted', shifted)


@ReactorFunc
def plot(pipe):
    log_run('plot')
    result = yield pipe.receive('result')
    shifted = yield pipe.receive('shifted')
    print('total', result.sum(), shifted.sum())


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(plot)
"""


@pytest.mark.parametrize(
    ("old", "new", "expected", "reason", "output"),
    [
        pytest.param(
            "return scaled + 0",
            "return scaled + 1",
            ["process", "plot"],
            "subreactor fetch_scaled() in pipeline.py changed",
            "total 145.0 105.0",
            id="generator-subreactor",
        ),
        pytest.param(
            "return values * 3",
            "return values * 4",
            ["process", "offset", "plot"],
            "subreactor triple() in pipeline.py changed",
            "total 180.0 140.0",
            id="nested-plain-subreactor",
        ),
    ],
)
def test_subreactor_edit_reruns_every_reactor_that_calls_it(
    project: Project, old: str, new: str, expected: list[str], reason: str, output: str
) -> None:
    make_project(project, SUBREACTORS)
    first = project.python()
    assert_ran(first, "load", "process", "offset", "plot")
    assert "total 135.0 105.0" in first.stdout
    project.edit("pipeline.py", old, new)
    second = project.cli("run", "pipeline.py", "--explain")
    assert_ran(second, *expected)
    assert reason in explanations(second)["process"]
    assert output in second.stdout


# -- 10: a failing reactor --------------------------------------------------------------------
def test_failed_reactor_reports_the_raise_and_keeps_upstream_cached(project: Project) -> None:
    make_project(project)
    raise_boom = "    raise ValueError('boom')\n"
    project.edit("pipeline.py", "    pipe.send('result'", raise_boom + "    pipe.send('result'")
    first = project.python()
    assert first.returncode != 0
    assert "ValueError: boom" in first.stderr
    assert sorted(first.ran) == ["load", "plot", "process"]

    second = project.cli("run", "pipeline.py")
    assert second.returncode == 1
    assert f"pipeline.py:{line_of(project, 'pipeline.py', 'raise ValueError')}" in second.stderr
    assert "ValueError: boom" in second.stderr
    assert sorted(second.ran) == ["plot", "process"]

    project.edit("pipeline.py", raise_boom, "")
    third = project.python()
    assert_ran(third, "process", "plot")
    assert "total 90.0" in third.stdout


# -- 11: both modes share the plant ----------------------------------------------------------
POINT = """
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y


@ReactorFunc
def make_point(pipe):
    log_run('make_point')
    pipe.send('point', Point(1, 2))


@ReactorFunc
def plot(pipe):
    log_run('plot')
    result = yield pipe.receive('result')
    point = yield pipe.receive('point')
    cls = type(point)
    print('point', cls.__module__, cls.__qualname__, isinstance(point, Point), point.x + point.y)
    print('total', result.sum())
"""


def test_python_and_pyplantd_run_share_the_cache_both_ways(project: Project) -> None:
    make_project(project, replace_plot(PIPELINE, POINT))
    assert_ran(project.python(), "load", "process", "make_point", "plot")
    from_cli = project.cli("run", "pipeline.py")
    assert_ran(from_cli, "plot")
    project.edit("pipeline.py", "normalize(data))", "normalize(data) + 1)")
    assert_ran(project.cli("run", "pipeline.py"), "process", "plot")
    from_python = project.python()
    assert_ran(from_python, "plot")
    for result in (from_cli, from_python):  # the point came from the disk tier both times
        assert "point __main__ Point True 3" in result.stdout
    assert "total 100.0" in from_python.stdout


# -- 12: moving ingredients between reactors --------------------------------------------------
ROLES_BEFORE = """
from sidefx import log_run

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def alpha(pipe):
    log_run('alpha')
    pipe.send('x', 1)
    pipe.send('label', 'from alpha')


@ReactorFunc
def beta(pipe):
    log_run('beta')
    x = yield pipe.receive('x')
    pipe.send('y', x + 10)


@ReactorFunc
def plot(pipe):
    log_run('plot')
    y = yield pipe.receive('y')
    label = yield pipe.receive('label')
    print('y', y, label)


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(plot)
"""

MOVED_SEND = ROLES_BEFORE.replace("    pipe.send('label', 'from alpha')\n", "").replace(
    "    pipe.send('y', x + 10)\n",
    "    pipe.send('y', x + 10)\n    pipe.send('label', 'from beta')\n",
)

ROLES_SWAPPED = """
from sidefx import log_run

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def alpha(pipe):
    log_run('alpha')
    x = yield pipe.receive('x')
    pipe.send('y', x + 100)


@ReactorFunc
def beta(pipe):
    log_run('beta')
    pipe.send('x', 2)
    pipe.send('label', 'from beta')


@ReactorFunc
def plot(pipe):
    log_run('plot')
    y = yield pipe.receive('y')
    label = yield pipe.receive('label')
    print('y', y, label)


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(plot)
"""


@pytest.mark.parametrize(
    ("edited", "expected", "output"),
    [
        pytest.param(MOVED_SEND, ["alpha", "beta", "plot"], "y 11 from beta", id="moved-send"),
        pytest.param(ROLES_SWAPPED, ["alpha", "beta", "plot"], "y 102 from beta", id="swapped"),
    ],
)
def test_moving_sends_between_reactors_completes_with_the_new_values(
    project: Project, edited: str, expected: list[str], output: str
) -> None:
    make_project(project, ROLES_BEFORE)
    first = project.python()
    assert_ran(first, "alpha", "beta", "plot")
    assert "y 11 from alpha" in first.stdout
    project.write("pipeline.py", edited)
    second = project.python()
    assert_ran(second, *expected)
    assert output in second.stdout
    assert_ran(project.python(), "plot")


# -- 13: third-party package versions ---------------------------------------------------------
PACKAGE_PIPELINE = PIPELINE.replace("from sidefx", "import fakepkg\nfrom sidefx").replace(
    "normalize(data))", "fakepkg.scale(data))"
)


def install_fakepkg(site: Path, version: str) -> None:
    for old in site.glob("fakepkg-*.dist-info"):
        for file in old.iterdir():
            file.unlink()
        old.rmdir()
    package = site / "fakepkg"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("def scale(values):\n    return values * 2\n")
    info = site / f"fakepkg-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakepkg\nVersion: {version}\n")
    # as pip writes it: how importlib.metadata maps the import name to the distribution
    (info / "RECORD").write_text(f"fakepkg/__init__.py,,\n{info.name}/METADATA,,\n")


def test_package_upgrade_reruns_the_reactor_that_uses_it(project: Project) -> None:
    site = project.root / "site-packages"
    install_fakepkg(site, "1.0")
    make_project(project, PACKAGE_PIPELINE)
    assert_ran(cli_with_path(project, site, "run", "pipeline.py"), "load", "process", "plot")
    install_fakepkg(site, "1.1")
    second = cli_with_path(project, site, "run", "pipeline.py", "--explain")
    assert_ran(second, "process", "plot")
    assert "fakepkg 1.0 -> 1.1" in explanations(second)["process"]


def test_package_upgrade_reruns_nothing_without_version_tracking(project: Project) -> None:
    site = project.root / "site-packages"
    install_fakepkg(site, "1.0")
    make_project(project, PACKAGE_PIPELINE)
    untracked = ("run", "pipeline.py", "--no-track-versions")
    assert_ran(cli_with_path(project, site, *untracked), "load", "process", "plot")
    install_fakepkg(site, "1.1")
    assert_ran(cli_with_path(project, site, *untracked), "plot")


def test_turning_version_tracking_off_reruns_nothing(project: Project) -> None:
    site = project.root / "site-packages"
    install_fakepkg(site, "1.0")
    make_project(project, PACKAGE_PIPELINE)
    assert_ran(cli_with_path(project, site, "run", "pipeline.py"), "load", "process", "plot")
    install_fakepkg(site, "1.1")
    untracked = cli_with_path(project, site, "run", "pipeline.py", "--no-track-versions")
    assert_ran(untracked, "plot")


# -- 14: reactors are identified by module and name -------------------------------------------
TWO_LOADS_PIPELINE = """
import readers_a
import readers_b
from sidefx import log_run

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def plot(pipe):
    log_run('plot')
    a = yield pipe.receive('a')
    b = yield pipe.receive('b')
    print('sum', a + b)


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(plot)
"""

READER = """
from sidefx import log_run

from pyplantd import ReactorFunc


@ReactorFunc
def load(pipe):
    log_run('{name}.load')
    pipe.send('{name}', {value})
"""


def test_same_named_reactors_in_two_modules_do_not_collide(project: Project) -> None:
    make_project(project, TWO_LOADS_PIPELINE)
    project.write("readers_a.py", READER.format(name="a", value=1))
    project.write("readers_b.py", READER.format(name="b", value=10))
    first = project.python()
    assert_ran(first, "a.load", "b.load", "plot")
    assert "sum 11" in first.stdout
    project.edit("readers_b.py", "10)", "20)")
    second = project.python()
    assert_ran(second, "b.load", "plot")
    assert "sum 21" in second.stdout

    ambiguous = project.cli("run", "pipeline.py", "--target", "load")
    assert ambiguous.returncode == 2
    assert "ambiguous" in ambiguous.stderr
    assert "readers_a:load" in ambiguous.stderr
    assert "readers_b:load" in ambiguous.stderr
    assert ambiguous.ran == []


# -- 15: the shipped examples -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("example", "variable", "target"),
    [
        ("examples/quickstart.py", "PYPLANTD_QUICKSTART_DIR", "plot_data"),
        ("examples/multi_module/pipeline.py", "PYPLANTD_EXAMPLE_DIR", "report"),
        ("examples/out_of_core.py", "PYPLANTD_EXAMPLE_DIR", "summarize"),
    ],
)
def test_example_second_run_runs_only_the_target(
    project: Project, monkeypatch: pytest.MonkeyPatch, example: str, variable: str, target: str
) -> None:
    monkeypatch.setenv(variable, str(project.root / "plant"))
    monkeypatch.setenv("FRAMES", "96")  # out_of_core.py: 48 MiB instead of 512
    first = project.python(str(REPO / example))
    assert first.returncode == 0, first.stderr
    second = project.cli("run", str(REPO / example), "--explain")
    assert second.returncode == 0, second.stderr
    statuses = {name: lines[0] for name, lines in explanations(second).items()}
    assert statuses.pop(target) == "ran"
    assert statuses
    assert set(statuses.values()) == {"cached"}
    assert first.stdout.strip()
    assert first.stdout.strip() in second.stdout


# -- 16: crash safety -------------------------------------------------------------------------
def test_sigkill_during_a_reactor_keeps_the_finished_ones(project: Project) -> None:
    slow = PIPELINE.replace("import numpy", "import os\nimport time\n\nimport numpy").replace(
        "    log_run('process')\n",
        "    log_run('process')\n    if os.path.exists('slow.flag'):\n        time.sleep(60)\n",
    )
    make_project(project, slow)
    flag = project.write("slow.flag", "")
    log = project.root / "ran.log"
    proc = subprocess.Popen(
        [sys.executable, "pipeline.py"],
        cwd=project.root,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # Kill once load's result is durable and recorded (write-behind takes a moment).
        wait_until(lambda: log.exists() and "process" in log.read_text().split())
        wait_until(lambda: recorded_reactors(project.plant_dir) >= {"load"})
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    flag.unlink()
    after = project.python()
    assert_ran(after, "process", "plot")
    assert "total 90.0" in after.stdout
