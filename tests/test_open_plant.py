"""`open_plant`: a plant read while a real daemon or another run holds it (objects included),
values checked before they are loaded, the plant dir's trust rules applied, and the notebook
example run in a real Jupyter kernel against a running daemon."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from live_daemon import ENV, live_daemon, wait_for_line

from pyplantd import PlantError, open_plant
from pyplantd.errors import PayloadDamagedError, PlantDirError

EXAMPLE = REPO / "examples" / "notebook"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The notebook example, copied (its pipeline, its model module, its notebook)."""
    root = tmp_path / "project"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("notebook-plant", "__pycache__"))
    sys.path.insert(0, str(root))  # the fitted Line's class, as a notebook there imports it
    yield root
    sys.path.remove(str(root))
    sys.modules.pop("model", None)


def test_open_plant_reads_while_the_daemon_holds_it_and_sees_new_results(project: Path) -> None:
    pipeline = project / "pipeline.py"
    with live_daemon(project, "pipeline.py") as log:
        plant = open_plant(pipeline)  # the daemon says which plant dir it holds
        try:
            assert plant.plant_dir == project / "notebook-plant"
            assert plant.names() == ["model", "points", "summary"]
            assert plant["points"].shape == (200, 2)
            assert plant["summary"] == {"points": 200, "slope": plant["model"].slope.__round__(3)}
            assert round(plant["model"](0.0)) == 1
            pipeline.write_text(pipeline.read_text().replace('{"n": 200}', '{"n": 300}'))
            wait_for_line(log, "saved pipeline.py: 2 of 2 reactors ran")
            assert plant["points"].shape == (300, 2)  # each read sees the latest commit
            rows = {row.name: row for row in plant.ingredients()}
            assert rows["points"].producer == "load" and rows["points"].tier == "disk"
            with pytest.raises(PlantError, match=r"Did you mean points\?"):
                plant.fetch("pionts")
        finally:
            plant.close()


def test_open_plant_of_a_pipeline_runs_none_of_it_and_creates_nothing(project: Path) -> None:
    from pyplantd.reactor import visible_reactors

    with pytest.raises(PlantDirError, match="is not a plant dir"):
        open_plant(project / "pipeline.py")  # nothing ran yet
    assert not (project / "notebook-plant").exists()
    assert visible_reactors() == []  # what the script defined is forgotten
    done = subprocess.run(
        [sys.executable, "pipeline.py"], cwd=project, env={**os.environ, **ENV}, timeout=120,
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with open_plant(project / "notebook-plant") as plant:
        np.testing.assert_array_equal(plant["points"][:, 0], np.linspace(0.0, 1.0, 200))
    with open_plant(project / "pipeline.py", readonly=False) as plant:  # holds the lock
        with pytest.raises(PlantDirError, match="in use by another process"):
            open_plant(project / "pipeline.py", readonly=False)
        assert "model" in plant


def test_open_plant_checks_every_value_before_loading_it(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "pipeline.py"], cwd=project, env={**os.environ, **ENV}, timeout=120,
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plant_dir = project / "notebook-plant"
    with open_plant(plant_dir) as plant:
        model_file = plant_dir / plant.records()["model"].path
        data = bytearray(model_file.read_bytes())
        data[-2] ^= 1  # same size, one bit changed: a pickle that would load
        model_file.write_bytes(bytes(data))
        with pytest.raises(PayloadDamagedError, match="does not match its recorded checksum"):
            plant.fetch("model")
    os.chmod(model_file, 0o666)  # a payload another user could rewrite is never read
    refused = pytest.raises(PlantDirError, match=r"Payload file .* writable by others")
    with refused, open_plant(plant_dir) as plant:  # checked where it is used
        plant.fetch("model")


# Runs the notebook in a real kernel, from a child process: jupyter's client keeps threads.
NOTEBOOK_DRIVER = """
import json, sys
import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

folder, path = sys.argv[1], sys.argv[2]
notebook = nbformat.read(path, as_version=4)
kernel = KernelManager(kernel_name="python3", transport="ipc", ip=folder + "/ipc")
client = NotebookClient(
    notebook, km=kernel, timeout=120, startup_timeout=120, resources={"metadata": {"path": folder}}
)
try:
    client.execute()
finally:
    if kernel.has_kernel and kernel.is_alive():
        kernel.shutdown_kernel(now=True)
texts = ["".join(o.get("text", "") for o in c.get("outputs", [])) for c in notebook.cells]
print(json.dumps(texts))
"""


def test_the_notebook_example_reads_from_the_daemon_and_the_plant_dir(project: Path) -> None:
    for module in ("nbformat", "nbclient", "ipykernel"):
        pytest.importorskip(module, reason=f"needs {module} (in the test extra)")
    with live_daemon(project, "pipeline.py"):
        run = subprocess.run(
            [sys.executable, "-c", NOTEBOOK_DRIVER, str(project), str(project / "explore.ipynb")],
            cwd=project, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    printed = "".join(json.loads(run.stdout.splitlines()[-1]))
    assert "from the daemon: (200, 2) {'points': 200, 'slope': 2.015} Line(slope=2.015" in printed
    assert "in the plant dir: ['model', 'points', 'summary']" in printed
    assert "prediction at x=10: 21.14" in printed
