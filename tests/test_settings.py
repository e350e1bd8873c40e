"""`[tool.pyplantd]` in pyproject.toml, flags over it, `pyplantd config`, values refused with a
message, `--version`, `--dry-run` that creates nothing: through the real commands."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from conftest import LOG_HELPER, Project
from live_daemon import pyplant, pyplantd

PIPELINE = """
import numpy as np
from sidefx import log_run

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def load(pipe):
    log_run('load')
    pipe.send('data', np.arange(10.0))


@ReactorFunc
def plot(pipe):
    log_run('plot')
    data = yield pipe.receive('data')
    print('total', data.sum())


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(plot)
"""


@pytest.fixture
def flows(project: Project) -> Project:
    """A project whose pipeline is flows/main.py, named in its pyproject.toml."""
    project.write("flows/sidefx.py", LOG_HELPER)
    project.write("flows/main.py", PIPELINE)
    project.write(
        "pyproject.toml",
        """
        [project]
        name = "demo"

        [tool.pyplantd]
        pipeline = "flows/main.py"
        plant-dir = "plants/main"
        memory = "1GiB"
        debounce = 50
        """,
    )
    (project.root / "docs").mkdir()
    return project


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts}


def test_config_prints_each_setting_and_where_it_came_from(flows: Project) -> None:
    env = {"PYPLANTD_PLANT_DIR": "elsewhere"}
    result = pyplantd(flows.root / "docs", "config", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"config file: {flows.root / 'pyproject.toml'}"
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows.keys() == {
        "pipeline", "plant-dir", "memory", "disk", "targets", "debounce", "tcp", "poll",
        "track-versions", "executor", "insecure-cluster", "local-below",
    }  # fmt: skip
    pipeline = str(flows.root / "flows" / "main.py")
    assert rows["pipeline"].split()[1:] == [pipeline, "(pyproject.toml)"]
    assert rows["plant-dir"].split()[1:] == ["elsewhere", "(PYPLANTD_PLANT_DIR)"]
    assert rows["memory"].split()[1:] == ["1.0", "GiB", "(pyproject.toml)"]
    assert rows["debounce"].split()[1:] == ["50", "ms", "(pyproject.toml)"]
    assert rows["tcp"].split()[1:] == ["false", "(default)"]


def test_run_and_graph_without_argument_use_the_config_and_flags_override_it(
    flows: Project,
) -> None:
    docs = flows.root / "docs"
    ran = pyplantd(docs, "run")  # from a folder below the project root
    assert ran.returncode == 0, ran.stderr
    assert (flows.root / "plants" / "main" / "pyplantd.db").exists()  # plant-dir, relative
    assert not (flows.root / "flows" / "plant").exists()  # ... to the pyproject.toml
    assert "memory budget 1.0 GiB (pyproject.toml" in ran.stderr
    drawn = pyplantd(docs, "graph")
    assert drawn.returncode == 0, drawn.stderr
    assert "main.py: 2 reactors" in drawn.stdout
    overridden = pyplantd(docs, "run", "--plant-dir", "../plants/other", "--memory", "64MiB")
    assert overridden.returncode == 0, overridden.stderr
    assert (flows.root / "plants" / "other" / "pyplantd.db").exists()
    assert "memory budget 64.0 MiB (--memory)" in overridden.stderr


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('memory = "lots"', "memory = 'lots' is not a size"),
        ("debounce = -5", "debounce = -5 must be between 0 and 60000 milliseconds"),
        ('targets = "plot"', None),  # one name is a list of one: fine
        ("targets = [1]", "targets = [1] is not a list of reactor names"),
        ('tcp = "maybe"', "tcp = 'maybe' is not true or false"),
        ("plant_dir = 'p'", "has an unknown key 'plant_dir'. Did you mean plant-dir?"),
    ],
)
def test_a_bad_config_value_is_an_error_naming_the_key_and_the_file(
    project: Project, line: str, message: str | None
) -> None:
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", PIPELINE)
    project.write("pyproject.toml", f"[tool.pyplantd]\n{line}\n")
    result = pyplantd(project.root, "run", "--dry-run")
    if message is None:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith(f"Error: {project.root / 'pyproject.toml'}: [tool.pyplantd] ")
    assert message in result.stderr
    assert not (project.root / "plant").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["watch", "--debounce", "-5"], "--debounce -5.0 must be between 0 and 60000"),
        (["watch", "--debounce", "1e9"], "must be between 0 and 60000 milliseconds"),
        (["run", "--memory", "lots"], "--memory 'lots' is not a size"),
        (["run", "--memory", "0"], "--memory '0' must be more than 0 bytes"),
        (["run", "--disk", "-1GB"], "--disk '-1GB' is not a size"),
        (["watch", "--memory", "12 parsecs"], "is not a size"),
        (["graph", "--format", "png"], "Unknown graph format 'png'"),
    ],
)
def test_invalid_values_are_refused_with_a_message_and_nothing_is_made(
    project: Project, args: list[str], message: str
) -> None:
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", PIPELINE)
    before = files(project.root)
    result = pyplantd(project.root, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in " ".join(result.stderr.split()), result.stderr
    assert files(project.root) == before


@pytest.mark.parametrize(
    "args", [["run", "--target", "plto"], ["accept", "plto"], ["graph", "--target", "plto"]]
)
def test_an_unknown_reactor_suggests_the_closest_known_names(
    project: Project, args: list[str]
) -> None:
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", PIPELINE)
    before = files(project.root)
    result = pyplantd(project.root, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Did you mean plot?" in " ".join(result.stderr.split()), result.stderr
    assert files(project.root) == before  # refused before running: no plant dir was made


def test_an_unknown_target_leaves_an_existing_plant_dir_as_it_was(project: Project) -> None:
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", PIPELINE)
    assert project.cli("run", "pipeline.py").returncode == 0
    made = {p: p.stat().st_mtime_ns for p in project.root.rglob("*") if p.is_file()}
    result = pyplantd(project.root, "run", "--target", "plto")
    assert result.returncode == 2, result.stdout + result.stderr
    assert set(made) <= {p for p in project.root.rglob("*") if p.is_file()}


def test_an_unknown_suffix_or_a_pickle_without_leave_is_refused_before_asking(
    tmp_path: Path,
) -> None:
    for name, message in (("x.txt", "'.txt' is not a format"), ("x.pkl", "--allow-pickle")):
        result = pyplant(tmp_path, "fetch", "data", "-o", name)  # no daemon is even asked
        assert result.returncode == 2
        assert message in result.stderr
        assert not (tmp_path / name).exists()


def test_a_config_others_can_write_is_refused(project: Project) -> None:
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", PIPELINE)
    config = project.write("pyproject.toml", '[tool.pyplantd]\npipeline = "pipeline.py"\n')
    os.chmod(config, 0o666)
    result = pyplantd(project.root, "run")
    assert result.returncode == 2
    assert f"Refusing {config}" in result.stderr and "chmod go-w" in result.stderr
    assert not (project.root / "plant").exists()


def test_version_flags() -> None:
    here = Path(__file__).parent
    assert pyplantd(here, "--version").stdout.strip() == "pyplantd 0.1.0"
    assert pyplant(here, "--version").stdout.startswith("pyplant 0.1.0 ")


def test_dry_run_creates_nothing_on_disk(project: Project) -> None:
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", PIPELINE)
    before = files(project.root)
    planned = pyplantd(project.root, "run", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "would run 1 of 1 reactors" in planned.stdout
    assert files(project.root) == before  # no plant dir, lock or manifest
    assert project.cli("run", "pipeline.py").returncode == 0
    made = files(project.root)
    planned = pyplantd(project.root, "run", "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert files(project.root) == made


def test_resolve_reads_the_nearest_table_and_relative_paths_from_its_file(
    tmp_path: Path,
) -> None:
    from pyplantd import settings

    (tmp_path / "pyproject.toml").write_text('[tool.pyplantd]\nplant-dir = "p"\n')
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (tmp_path / "a" / "pyproject.toml").write_text('[project]\nname = "x"\n')  # no table
    resolved = settings.resolve({"memory": "1MB"}, start=nested, env={})
    assert resolved.config_file == tmp_path / "pyproject.toml"
    assert resolved.plant_dir == tmp_path / "p"
    assert (resolved.memory, resolved["memory"].source) == (10**6, "--memory")
    chosen = resolved.for_plant("script-plant", 2 * 10**6, 3 * 10**6, False)
    assert (chosen.plant_dir, chosen.memory, chosen.disk) == (tmp_path / "p", 10**6, 3 * 10**6)
    assert chosen.sources["disk"] == "the script" and not chosen.track_versions


def test_the_configured_pipeline_is_named_when_missing(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent('[tool.pyplantd]\npipeline = "gone.py"\n')
    )
    result = pyplantd(tmp_path, "watch")
    assert result.returncode == 2
    assert f"pipeline script {tmp_path / 'gone.py'} does not exist" in result.stderr
    assert "It is set by pyproject.toml" in result.stderr


@pytest.mark.parametrize(
    ("memory", "said"),
    [
        (True, "Plant(memory=True) is not a size"),
        (0, "Plant(memory=0) must be more than 0 bytes"),
        ("0MB", "Plant(memory='0MB') must be more than 0 bytes"),
        ("lots", "Plant(memory='lots') is not a size: 'lots' is not a size"),
        (-5, "Plant(memory=-5) is not a size: A size cannot be negative"),
    ],
)
def test_plant_budgets_are_read_by_the_same_rules_as_the_flags(
    tmp_path: Path, memory: object, said: str
) -> None:
    """`Plant(memory=...)` used to take a bool or 0 as a budget that `--memory` refuses."""
    from pyplantd import Plant
    from pyplantd.errors import SettingsError

    with pytest.raises(SettingsError) as refused:
        Plant(tmp_path / "plant", memory=memory)
    assert said in str(refused.value)
    assert isinstance(refused.value, ValueError)  # as before, for code that catches that
    assert not (tmp_path / "plant").exists()


def test_a_budget_set_by_the_user_records_what_the_script_asked_for_instead(
    tmp_path: Path,
) -> None:
    from pyplantd import settings

    resolved = settings.resolve({"memory": "1MB"}, start=tmp_path, env={})
    chosen = resolved.for_plant("plant", 2 * 10**6, 3 * 10**6, True)
    assert chosen.overridden == {"memory": 2 * 10**6}
    assert resolved.for_plant("plant", 10**6, None, True).overridden == {}
