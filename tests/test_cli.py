"""The `pyplantd` command line, run as a subprocess on real pipeline scripts: exit codes,
messages, `--target`, `--plant-dir`, `--dry-run`, `accept`, and the final table.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import LOG_HELPER, REPO, SUBPROCESS_TIMEOUT, Project, Result

PIPELINE = """
import numpy as np
from sidefx import log_run

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def load(pipe, config):
    log_run('load')
    pipe.send('data', np.arange(config.n, dtype=float))


@ReactorFunc
def process(pipe):
    log_run('process')
    data = yield pipe.receive('data')
    pipe.send('result', data * 2)


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


@pytest.fixture
def pipeline(project: Project) -> Project:
    """A project holding the load -> process -> plot pipeline."""
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", PIPELINE)
    return project


def table(result: Result) -> dict[str, list[str]]:
    """The rows of the table `pyplantd run` prints: reactor -> [result, duration, why]."""
    rows = {}
    for line in result.stdout.splitlines():
        if "│" in line:
            name, *cells = (cell.strip() for cell in line.split("│"))
            rows[name] = cells
    return rows


def test_help_lists_the_commands() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pyplantd.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert "run" in proc.stdout.split()
    assert "accept" in proc.stdout.split()


def test_run_of_a_missing_script_is_a_usage_error(project: Project) -> None:
    result = project.cli("run", "missing.py")
    assert result.returncode == 2
    assert "Error: pipeline script missing.py does not exist." in result.stderr


def test_unknown_target_lists_the_known_reactors(pipeline: Project) -> None:
    result = pipeline.cli("run", "pipeline.py", "--target", "unknown")
    assert result.returncode == 2
    assert "Reactor 'unknown' is not in this plant (known: load, plot, process)" in result.stderr
    assert result.ran == []


def test_target_option_runs_another_reactor_than_the_script(pipeline: Project) -> None:
    result = pipeline.cli("run", "pipeline.py", "--target", "process")
    assert result.returncode == 0, result.stderr
    assert sorted(result.ran) == ["load", "process"]
    assert set(table(result)) == {"load", "process"}


def test_plant_dir_option_replaces_the_scripts_plant_dir(pipeline: Project) -> None:
    first = pipeline.cli("run", "pipeline.py", "--plant-dir", "elsewhere")
    assert first.returncode == 0, first.stderr
    assert sorted(first.ran) == ["load", "plot", "process"]
    assert (pipeline.root / "elsewhere").is_dir()
    assert not (pipeline.root / "plant").exists()
    second = pipeline.cli("run", "pipeline.py", "--plant-dir", "elsewhere")
    assert second.ran == ["plot"]


def test_final_table_lists_each_reactor_as_ran_or_cached(pipeline: Project) -> None:
    first = pipeline.cli("run", "pipeline.py")
    assert {name: row[0] for name, row in table(first).items()} == {
        "load": "ran",
        "process": "ran",
        "plot": "ran",
    }
    assert "total 90.0" in first.stdout
    second = pipeline.cli("run", "pipeline.py")
    rows = table(second)
    assert {name: row[0] for name, row in rows.items()} == {
        "load": "cached",
        "process": "cached",
        "plot": "ran",
    }
    assert rows["plot"][2] == "target"
    assert "1 of 3 reactors ran" in second.stdout
    assert "2 cached" in second.stdout


def test_dry_run_says_what_would_run_and_why_and_runs_nothing(pipeline: Project) -> None:
    assert pipeline.python().returncode == 0
    pipeline.edit("pipeline.py", "{'n': 10}", "{'n': 20}")
    plan = pipeline.cli("run", "pipeline.py", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert plan.ran == []
    rows = table(plan)
    assert rows["load"][0] == "run"
    assert "param 'n' changed 10 -> 20" in rows["load"][2]
    assert rows["process"][0] in ("run", "may run")
    assert rows["plot"][0] == "run"
    assert "would run 3 of 3 reactors" in plan.stdout
    # the plan recorded nothing: the real run still sees the change
    assert sorted(pipeline.python().ran) == ["load", "plot", "process"]


def test_accepted_code_change_does_not_rerun_the_reactor(pipeline: Project) -> None:
    assert pipeline.python().returncode == 0
    pipeline.edit("pipeline.py", "data * 2)", "2 * data)")
    accepted = pipeline.cli("accept", "process", "--pipeline", "pipeline.py")
    assert accepted.returncode == 0, accepted.stderr
    assert "accepted process" in accepted.stdout
    assert accepted.ran == []
    assert pipeline.python().ran == ["plot"]


def test_missing_ingredient_names_it_and_the_waiting_reactor(pipeline: Project) -> None:
    pipeline.edit("pipeline.py", "receive('result')", "receive('nothing')")
    result = pipeline.cli("run", "pipeline.py")
    assert result.returncode != 0
    assert "Reactor 'plot' waits for ingredient 'nothing'" in result.stderr


def test_script_syntax_error_exits_1_with_path_and_line(pipeline: Project) -> None:
    pipeline.edit("pipeline.py", "def process(pipe):", "def process(pipe:")
    lines = (pipeline.root / "pipeline.py").read_text().splitlines()
    line = lines.index("def process(pipe:") + 1
    result = pipeline.cli("run", "pipeline.py")
    assert result.returncode == 1
    assert f"pipeline.py:{line}:" in result.stderr
    assert "syntax error" in result.stderr
    assert result.ran == []


STORE_PIPELINE = """
import numpy as np
from pyplantd import Plant, ReactorFunc

@ReactorFunc
def load(pipe, config):
    pipe.send('data', np.arange(config.n, dtype=np.float32))

@ReactorFunc
def total(pipe):
    data = yield pipe.receive('data')
    pipe.send('total', {'sum': float(data.sum())})

with Plant('plant') as plant:
    plant.set_config({'n': N})
    plant.run_reactor(total)
"""


def test_ls_lists_ingredients_and_clean_removes_old_versions(project: Project) -> None:
    for n in (10, 20):
        project.write("pipeline.py", STORE_PIPELINE.replace("N", str(n)))
        assert project.cli("run", "pipeline.py").returncode == 0
    listed = project.cli("ls", "--plant-dir", "plant")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()[2:]}
    assert "load" in lines["data"] and "(20,) float32" in lines["data"]
    assert "disk" in lines["data"] and lines["data"].rstrip().endswith("2")  # two versions
    assert "total" in lines["total"] and "dict" in lines["total"]
    cleaned = project.cli("clean", "--plant-dir", "plant")
    assert cleaned.returncode == 0 and "old versions" in cleaned.stdout
    relisted = project.cli("ls", "--plant-dir", "plant").stdout
    assert relisted.splitlines()[2].rstrip().endswith("1")


def test_clean_named_ingredient_makes_its_producer_run_again(project: Project) -> None:
    project.write("pipeline.py", STORE_PIPELINE.replace("N", "5"))
    project.cli("run", "pipeline.py")
    assert project.cli("clean", "data", "--plant-dir", "plant").returncode == 0
    again = project.cli("run", "pipeline.py", "--explain")
    assert "output 'data' is missing" in again.stdout
    assert project.cli("clean", "--all", "--plant-dir", "plant").returncode == 0
    assert project.cli("ls", "--plant-dir", "plant").stdout.startswith("No ingredients")
    unknown = project.cli("clean", "nope", "--plant-dir", "plant")
    assert unknown.returncode == 2 and "nope" in unknown.stderr


def test_ls_and_clean_need_a_plant_dir(project: Project) -> None:
    missing = project.cli("ls")
    assert missing.returncode == 2 and "--plant-dir" in missing.stderr
    not_plant = project.cli("ls", "--plant-dir", str(project.root))
    assert not_plant.returncode == 2 and "not a plant dir" in not_plant.stderr


def test_memory_option_is_parsed_and_announced(project: Project) -> None:
    project.write("pipeline.py", STORE_PIPELINE.replace("N", "5"))
    ok = project.cli("run", "pipeline.py", "--memory", "64MiB")
    assert ok.returncode == 0 and "memory budget 64.0 MiB" in ok.stderr
    bad = project.cli("run", "pipeline.py", "--memory", "lots")
    assert bad.returncode == 2 and "512MB" in bad.stderr
