"""Choosing the executor: --executor / --cluster on `pyplantd run`, [tool.pyplantd] executor,
Plant(executor=...) in a script run as `python pipeline.py`; bad values are usage errors that
name the value and the valid forms."""

from __future__ import annotations

from conftest import LOG_HELPER, Project

PIPELINE = """
import threading

from sidefx import log_run

from pyplantd import Plant, ReactorFunc


def where(name):
    log_run(name + '@' + ('main' if threading.current_thread() is threading.main_thread()
                          else 'thread'))


@ReactorFunc
def left(pipe):
    where('left')
    pipe.send('left', 1)


@ReactorFunc
def right(pipe):
    where('right')
    pipe.send('right', 2)


@ReactorFunc
def total(pipe):
    left, right = yield pipe.receive('left'), pipe.receive('right')
    where('total')
    pipe.send('total', left + right)


plant = Plant('plant'EXECUTOR)
plant.run_reactor(total)
plant.close()
"""


def make(project: Project, executor: str = "") -> None:
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", PIPELINE.replace("EXECUTOR", executor))


def test_a_script_without_a_main_guard_runs_its_plant_on_threads(project: Project) -> None:
    make(project, ", executor='threads:2'")
    result = project.python()
    assert result.returncode == 0, result.stderr
    assert sorted(result.ran) == ["left@thread", "right@thread", "total@main"]


def test_the_flag_overrides_the_script_and_pyproject_sets_it(project: Project) -> None:
    make(project, ", executor='threads:2'")
    result = project.cli("run", "--executor", "inline")
    assert result.returncode == 0, result.stderr
    assert sorted(result.ran) == ["left@main", "right@main", "total@main"]

    make(project)
    project.write("pyproject.toml", '[tool.pyplantd]\nexecutor = "threads:2"\n')
    (project.root / "pyproject.toml").chmod(0o644)
    config = project.cli("config")
    assert config.returncode == 0, config.stderr
    assert "executor          threads:2  (pyproject.toml)" in config.stdout, config.stdout
    result = project.cli("run", "--plant-dir", "other")
    assert result.returncode == 0, result.stderr
    assert sorted(result.ran) == ["left@thread", "right@thread", "total@main"]


def test_bad_executor_values_are_usage_errors_naming_the_value_and_the_forms(
    project: Project,
) -> None:
    make(project)
    for args, said in [
        (["--executor", "threads:0"], "'threads:0'"),
        (["--executor", "gpu:2"], "'gpu:2'"),
        (["--cluster", "10.1.2.3:8786"], "--cluster 10.1.2.3:8786 is not a cluster address"),
        (["--executor", "threads:2", "--cluster", "tcp://127.0.0.1:8786"], "Give one of them"),
    ]:
        result = project.cli("run", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        error = " ".join(result.stderr.split())
        assert said in error, (args, error)
        if "--executor" in args and len(args) == 2:
            assert "inline, threads:N, local:N" in error, error
        assert result.ran == []

    project.write("pyproject.toml", '[tool.pyplantd]\nexecutor = "threads:x"\n')
    (project.root / "pyproject.toml").chmod(0o644)
    result = project.cli("config")
    assert result.returncode == 2
    error = " ".join(result.stderr.split())
    assert "[tool.pyplantd] executor = 'threads:x'" in error and "threads:N" in error, error
