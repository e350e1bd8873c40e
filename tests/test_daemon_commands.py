"""Commands that go through a real running daemon: `pyplantd ls` / `clean` and `pyplant clean`
while it holds the plant, human sizes, `pyplant fetch -o FILE` by suffix, objects fetched from
their checked payload file, unknown names with suggestions, and a script's Plant(memory=...)
followed (or reported as overridden) by the daemon."""

from __future__ import annotations

import json
import pickle
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from live_daemon import live_daemon, pyplant, pyplantd, wait_for_line
from pyplant_client import Client, ClientError, UntrustedFileError

MODEL = """
class Line:
    def __init__(self, slope, intercept):
        self.slope, self.intercept = slope, intercept

    def __call__(self, x):
        return self.slope * x + self.intercept
"""

PIPELINE = """
import numpy as np
from model import Line

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def load(pipe):
    x = np.linspace(0.0, 1.0, 50)
    pipe.send('points', np.stack([x, 2.0 * x + 1.0], axis=1))
    pipe.send('cube', np.zeros((2, 2, 2)))


@ReactorFunc
def fit(pipe):
    points = yield pipe.receive('points')
    slope, intercept = np.polyfit(points[:, 0], points[:, 1], 1)
    pipe.send('model', Line(float(slope), float(intercept)))
    pipe.send('summary', {'points': len(points), 'slope': round(float(slope), 3)})


if __name__ == '__main__':
    with Plant('plant', memory=MEMORY) as plant:
        plant.run_reactor(fit)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "model.py").write_text(textwrap.dedent(MODEL).lstrip())
    (root / "pipeline.py").write_text("MEMORY = '64MB'\n" + textwrap.dedent(PIPELINE))
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    return root


def table_rows(text: str) -> dict[str, list[str]]:
    """name -> cells of a table printed by `pyplantd ls` (rich) or `pyplant ingredients`."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"│|\s{2,}", line) if c.strip()]
        if cells and cells[0] in ("model", "points", "summary", "cube"):
            rows[cells[0]] = cells
    return rows


def test_ls_and_clean_go_through_the_daemon_that_holds_the_plant(project: Path) -> None:
    sub = project / "notes"
    sub.mkdir()
    with live_daemon(project, "pipeline.py") as log:
        listed = pyplantd(project, "ls")  # no --plant-dir: the pipeline's, held by the daemon
        assert listed.returncode == 0, listed.stderr
        rows = table_rows(listed.stdout)
        assert set(rows) == {"model", "points", "summary", "cube"}
        assert rows["points"][1:3] == ["load", "array"]
        assert "2.8 KiB" in rows["points"] and "both" in rows["points"]  # warm, and on disk
        below = pyplantd(sub, "ls")  # no pipeline there: the project's daemon is the one meant
        assert below.returncode == 0, below.stderr
        assert set(table_rows(below.stdout)) == set(rows)
        ingredients = pyplant(sub, "ingredients")  # from a folder below the project root
        assert ingredients.returncode == 0, ingredients.stderr
        assert table_rows(ingredients.stdout)["points"][4:] == ["2.8 KiB", "both"]

        cleaned = pyplantd(project, "clean", "summary")
        assert cleaned.returncode == 0, cleaned.stderr
        assert cleaned.stdout.startswith("removed summary through the daemon: ")
        assert "summary" not in table_rows(pyplantd(project, "ls").stdout)
        wait_for_line(log, "cleaned summary: ")
        again = pyplant(sub, "clean", "--all")
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("removed every result: ")
        assert pyplantd(project, "ls").stdout.strip() == "No ingredients yet: run a pipeline first."
        ran = pyplant(project, "run")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "  ran  load " in ran.stdout and "  ran  fit " in ran.stdout
        unknown = pyplant(project, "clean", "sumary")
        assert unknown.returncode == 2
        assert "Did you mean summary?" in unknown.stderr
    # without the daemon, the same commands find the plant from the pipeline
    listed = pyplantd(project, "ls", "pipeline.py")
    assert listed.returncode == 0, listed.stderr
    assert "disk" in table_rows(listed.stdout)["points"]
    assert pyplantd(project, "clean", "cube").stdout.startswith("removed cube: ")


def test_fetch_writes_exactly_the_file_in_the_format_its_suffix_names(
    project: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with live_daemon(project, "pipeline.py"):
        for name in ("points.npy", "points.csv", "summary.json"):
            done = pyplant(project, "fetch", name.split(".")[0], "-o", str(out / name))
            assert done.returncode == 0, done.stderr
        points = np.load(out / "points.npy", allow_pickle=False)
        assert points.shape == (50, 2)
        np.testing.assert_array_equal(np.loadtxt(out / "points.csv", delimiter=","), points)
        assert json.loads((out / "summary.json").read_text()) == {"points": 50, "slope": 2.0}
        printed = pyplant(project, "fetch", "summary")
        assert json.loads(printed.stdout) == {"points": 50, "slope": 2.0}
        refused = {
            ("cube", "cube.csv"): ".csv holds 1-D or 2-D numeric arrays",
            ("points", "points.json"): "is an array; write it as .npy or .csv",
            ("summary", "summary.npy"): "is a dict, not an array",
            ("model", "model.npy"): "stored as a pickle, and loading a pickle runs code",
            ("model", "model.pkl"): "Add --allow-pickle",
            ("points", "points.data"): "'.data' is not a format pyplant writes",
        }
        for (name, file), message in refused.items():
            result = pyplant(project, "fetch", name, "-o", str(out / file))
            assert result.returncode == 2, (file, result.stdout)
            assert message in result.stderr, (file, result.stderr)
            assert not (out / file).exists()
        pickled = pyplant(project, "fetch", "model", "-o", str(out / "m.pkl"), "--allow-pickle")
        assert pickled.returncode == 0, pickled.stderr
        sys.path.insert(0, str(project))
        try:
            model = pickle.loads((out / "m.pkl").read_bytes())
        finally:
            sys.path.remove(str(project))
            sys.modules.pop("model", None)
        assert round(model(10.0), 6) == 21.0
    assert sorted(p.name for p in out.iterdir()) == [
        "m.pkl", "points.csv", "points.npy", "summary.json",
    ]  # fmt: skip


def test_objects_load_from_their_checked_payload_file_only_with_allow_pickle(
    project: Path,
) -> None:
    with live_daemon(project, "pipeline.py"), Client.find(project) as client:
        reply = client.call("fetch", {"name": "model"})
        assert reply["kind"] == "file" and reply["format"] == "pickle"  # a path, no pickle
        assert reply["checksum"]["algorithm"] == "xxh3_128-file"
        with pytest.raises(ClientError, match="stored as a pickle, and loading a pickle runs"):
            client.fetch("model")
        sys.modules.pop("model", None)
        with pytest.raises(ClientError, match="Import the module that defines it first"):
            client.fetch("model", allow_pickle=True)  # model.py is not importable here
        sys.path.insert(0, str(project))
        try:
            model = client.fetch("model", allow_pickle=True)
            assert round(model(1.0), 6) == 3.0
            path = Path(reply["path"])
            data = bytearray(path.read_bytes())
            data[-2] ^= 1  # one bit, same size: only the checksum can tell
            path.write_bytes(bytes(data))
            with pytest.raises(UntrustedFileError, match="its content is not what was stored"):
                client.fetch("model", allow_pickle=True)
        finally:
            sys.path.remove(str(project))
            sys.modules.pop("model", None)


def test_unknown_names_through_the_daemon_suggest_the_closest_ones(project: Path) -> None:
    with live_daemon(project, "pipeline.py"):
        for args, hint in [
            (["run", "fti"], "Did you mean fit?"),
            (["invalidate", "lod"], "Did you mean load?"),
            (["preview", "pionts"], "Did you mean points?"),
            (["fetch", "modle"], "Did you mean model?"),
            (["graph", "--target", "fitt"], "Did you mean fit?"),
        ]:
            result = pyplant(project, *args)
            assert result.returncode == 2, (args, result.stdout)
            assert hint in result.stderr, (args, result.stderr)


def test_the_daemon_follows_the_scripts_memory_budget_and_says_when_a_flag_overrides_it(
    project: Path,
) -> None:
    pipeline = project / "pipeline.py"
    with live_daemon(project, "pipeline.py") as log, Client.find(project) as client:
        assert client.status()["memory"]["budget"] == 64 * 10**6
        pipeline.write_text(pipeline.read_text().replace("'64MB'", "'128MB'"))
        wait_for_line(log, "memory budget 61.0 MiB -> 122.1 MiB, from Plant(memory=...) in")
        assert client.status()["memory"]["budget"] == 128 * 10**6
    pipeline.write_text(pipeline.read_text().replace("'128MB'", "'256MB'"))
    with live_daemon(project, "pipeline.py", "--memory", "32MiB") as log:
        printed = wait_for_line(log, "Plant(memory=...) asks for")
        assert (
            "the script's Plant(memory=...) asks for 244.1 MiB, which is not used: the daemon's "
            "memory budget is 32.0 MiB, set by --memory." in printed
        )
        with Client.find(project) as client:
            assert client.status()["memory"]["budget"] == 32 * 2**20


def test_a_run_refused_by_the_daemons_lock_says_to_use_pyplant(project: Path) -> None:
    with live_daemon(project, "pipeline.py"):
        refused = pyplantd(project, "run", "pipeline.py")
        again = pyplantd(project, "watch", "pipeline.py")
    assert refused.returncode == 2
    assert "`pyplant stop` if it is `pyplantd watch`" in " ".join(refused.stderr.split())
    assert again.returncode == 2 and "Stop it with `pyplant stop`" in again.stderr
