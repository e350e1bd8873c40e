"""What a reactor reads through a `ConfigBase` subclass beyond its plain parameters: properties,
methods, class attributes, and what `__init__` computes, also from a base class in another module.
Oracle of test_change_detection: after each edit, one-shot and a real `pyplantd watch` serve what
`python pipeline.py` computes in an empty plant dir; and only the readers of what changed re-run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import LOG_HELPER, Project
from test_change_detection import (
    RESULT,
    Case,
    Edit,
    apply,
    fresh,
    result_of,
    write_now,
)
from test_daemon import Daemon, save_atomic, start_daemon  # noqa: F401 (a fixture)

from pyplantd import ConfigBase, Plant, ReactorFunc

PIPELINE = """
from pyplantd import Plant, ReactorFunc
from settings import BaseSettings
from sidefx import log_run


class Grid:
    def __init__(self, n):
        self.n = n

    def __repr__(self):  # says nothing of n: the value alone cannot tell a change
        return 'Grid(...)'


class Settings(BaseSettings):
    SCALE = 2

    def __init__(self):
        super().__init__()
        self.alpha = 93
        self.beta = self.alpha * 2

    @property
    def area(self):
        return self.alpha * 8

    @property
    def big(self):
        return self.alpha > 50

    @property
    def grid(self):
        return Grid(self.alpha)

    def scaled(self, x):
        return x * self.SCALE


@ReactorFunc
def compute(pipe, config):
    log_run('compute')
    pipe.send('value', [config.area, config.scaled(2), config.beta, config.offset, config.base(1)])


@ReactorFunc
def flag(pipe, config):
    log_run('flag')
    pipe.send('flag', config.big)


@ReactorFunc
def sized(pipe, config):
    log_run('sized')
    pipe.send('size', config.grid.n)


@ReactorFunc
def report(pipe):
    value = yield pipe.receive('value')
    big = yield pipe.receive('flag')
    size = yield pipe.receive('size')
    print('RESULT', repr([value, big, size]))


if __name__ == '__main__':
    import os

    with Plant(os.environ.get('PLANT', 'plant')) as plant:
        plant.set_config(Settings())
        plant.run_reactor(report)
"""

SETTINGS = """
from pyplantd import ConfigBase


class BaseSettings(ConfigBase):
    @property
    def offset(self):
        return 10

    def base(self, x):
        return x + 1
"""

CASE = Case(
    "config_members",
    "",
    [
        Edit("pipeline.py", "self.alpha * 8", "self.alpha * 1000",
             "param 'area' changed 744 -> 93000"),
        Edit("pipeline.py", "x * self.SCALE", "x * self.SCALE * 3",
             "compute: params 'scaled', 'base' changed: the code of class Settings"),
        Edit("pipeline.py", "SCALE = 2", "SCALE = 5", "compute: param 'SCALE' changed 2 -> 5"),
        Edit("pipeline.py", "self.alpha * 2", "self.alpha * 5", "param 'beta' changed 186 -> 465"),
        Edit("settings.py", "return 10", "return 20", "param 'offset' changed 10 -> 20"),
        Edit("settings.py", "x + 1", "x + 2", "params 'scaled', 'base' changed: the code of class"),
        # `big` reads alpha, but its value stays True: `flag` must not re-run; the repr of
        # `grid` stays the same, but it is no plain data: what it read counts, `sized` re-runs
        Edit("pipeline.py", "self.alpha = 93", "self.alpha = 94", "param 'area' changed"),
    ],
)  # fmt: skip
# The reactors each edit must run, in order.
RAN = [["compute"]] * 6 + [["compute", "sized"]]


def setup(project: Project) -> None:
    project.write("pipeline.py", PIPELINE)
    project.write("settings.py", SETTINGS)
    project.write("sidefx.py", LOG_HELPER)


def test_one_shot_reruns_exactly_the_readers_of_what_changed(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    setup(project)
    scratch = tmp_path_factory.mktemp("fresh")
    first = project.python()
    assert result_of(first) == fresh(project, CASE, scratch)
    assert sorted(first.ran) == ["compute", "flag", "sized"]
    for edit, ran in zip(CASE.edits, RAN, strict=True):
        apply(project, edit, write_now)
        served = project.python()
        assert result_of(served) == fresh(project, CASE, scratch), f"stale after {edit}"
        assert sorted(served.ran) == ran, f"{edit}: ran {served.ran}"
        explained = project.cli("run", "pipeline.py", "--explain")  # nothing left to re-run
        assert explained.ran == [], explained.stdout


def test_daemon_reruns_exactly_the_readers_of_what_changed(
    project: Project,
    start_daemon: Callable[..., Daemon],  # noqa: F811 (the fixture imported above)
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    setup(project)
    scratch = tmp_path_factory.mktemp("fresh")
    daemon = start_daemon()
    run = daemon.next_run()
    assert _served(run.lines) == fresh(project, CASE, scratch), run
    for edit, ran in zip(CASE.edits, RAN, strict=True):
        apply(project, edit, save_atomic)
        run = daemon.next_run()
        assert _served(run.lines) == fresh(project, CASE, scratch), f"stale after {edit}:\n{run}"
        assert edit.why in "\n".join(run.lines), run
        assert sorted(r for r, s in run.states.items() if s == "ran") == sorted([*ran, "report"])
    daemon.stop()
    assert result_of(project.python()) == fresh(project, CASE, scratch)


def _served(lines: list[str]) -> str:
    found = [m[1] for line in lines if line.startswith("[report]") and (m := RESULT.search(line))]
    assert found, "\n".join(lines)
    return found[-1]


def test_a_property_that_fails_is_the_users_error_and_an_unknown_name_is_named(
    project: Project,
) -> None:
    project.write("settings.py", SETTINGS.replace("return 10", "return self.missing_attr"))
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", PIPELINE)
    failed = project.python()
    assert failed.returncode != 0
    assert "UnknownParamError" in failed.stderr and "'missing_attr' does not exist" in failed.stderr
    project.write("settings.py", SETTINGS)
    assert result_of(project.python()) == repr([[744, 4, 186, 10, 2], True, 93])
    project.edit("pipeline.py", "return self.alpha > 50", "raise AttributeError('no big')")
    failed = project.python()
    assert "AttributeError: no big" in failed.stderr, failed.stderr
    project.write("pipeline.py", PIPELINE)
    assert result_of(project.python()) == repr([[744, 4, 186, 10, 2], True, 93])


class Sized(ConfigBase):
    def __init__(self, n: int, label: str) -> None:
        super().__init__()
        self.n, self.label = n, label

    @property
    def area(self) -> int:
        return self.n * self.n

    @property
    def title(self) -> str:
        return self.label.upper()


def test_an_auxiliary_property_reruns_nothing_and_the_others_only_on_a_new_value(
    plant_dir: Path,
) -> None:
    ran: list[str] = []

    @ReactorFunc
    def shape(pipe, config):
        ran.append("shape")
        pipe.send("shape", [config.area, config.title])

    @ReactorFunc
    def show(pipe):  # the target: it always runs
        yield pipe.receive("shape")

    def run(config: ConfigBase) -> None:
        with Plant(plant_dir) as plant:
            plant.set_config(config)
            plant.run_reactor(show)

    for n, label, aux, expected in [
        (3, "a", [], ["shape"]),
        (-3, "a", [], []),  # n changed, area did not: exact plain data, n does not count
        (4, "a", ["area"], []),  # area changed, but auxiliary
        (4, "b", ["area"], ["shape"]),
    ]:
        config = Sized(n, label)
        config.mark_auxiliary(aux)
        assert config.is_auxiliary("area") == bool(aux)
        ran.clear()
        run(config)
        assert ran == expected, (n, label, aux)


def test_read_config_reads_a_property_as_config_does(plant_dir: Path) -> None:
    ran: list[str] = []

    @ReactorFunc
    def titled(pipe):
        ran.append("titled")
        pipe.send("title", pipe.read_config("title"))

    @ReactorFunc
    def show(pipe):
        print("TITLE", (yield pipe.receive("title")))

    for label, expected in [("a", ["titled"]), ("a", []), ("b", ["titled"])]:
        ran.clear()
        with Plant(plant_dir) as plant:
            plant.set_config(Sized(3, label))
            plant.run_reactor(show)
            assert plant.fetch_ingredient("title") == label.upper()
        assert ran == expected, label
