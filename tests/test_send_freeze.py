"""A sent value is frozen at `send`: what is stored, fingerprinted and received is the value as it
was sent. Neither the producer changing its object afterwards nor a consumer changing what it
received may change what another consumer, a later run or the daemon's next save sees.

The oracle: the value served (one-shot and by a real daemon after real saves) equals what
`python pipeline.py` prints in an empty plant dir.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import Project
from pyplant_client import Client
from test_daemon import Daemon, daemon, save_atomic  # noqa: F401 (fixtures)

from pyplantd import Ingredient, IngredientTypeSpec, Plant, ReactorFunc
from pyplantd.errors import ReactorFailedError, StoreError

# Every reactor of this pipeline changes something it sent or received, the ways user code does.
MUTATING = """
import json

import numpy as np

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def load(pipe):
    rows = [{"id": 1}, {"id": 2}]
    settings = {"scale": 2, "tags": ("a", "b")}
    grid = np.zeros(4)
    base = np.arange(8.0)
    pipe.send("rows", rows)
    pipe.send("settings", settings)
    pipe.send("grid", grid)
    pipe.send("column", base[::2])  # a view of an array the producer keeps writing to
    pipe.send("boxes", np.array([{"n": 1}, None], dtype=object))
    rows.append({"id": "appended by load after send"})
    settings["scale"] = -1
    base[:] = -1
    try:
        grid[0] = 7
    except ValueError as err:
        print("REFUSED", err)


@ReactorFunc
def tag(pipe):
    rows = yield pipe.receive("rows")
    boxes = yield pipe.receive("boxes")
    rows.append({"id": "appended by tag TAG"})
    rows[0]["id"] = 100
    boxes[0]["n"] = 100
    pipe.send("count", len(rows))


@ReactorFunc
def report(pipe):
    count = yield pipe.receive("count")
    rows = yield pipe.receive("rows")
    settings = yield pipe.receive("settings")
    grid = yield pipe.receive("grid")
    column = yield pipe.receive("column")
    boxes = yield pipe.receive("boxes")
    served = {
        "count": count, "rows": rows, "settings": settings, "grid": grid.tolist(),
        "column": column.tolist(), "boxes": boxes.tolist(),
    }
    print("SERVED", json.dumps(served, sort_keys=True), "EDIT")


if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.run_reactor(report)
"""

EXPECTED = {
    "count": 3,
    "rows": [{"id": 1}, {"id": 2}],
    "settings": {"scale": 2, "tags": ["a", "b"]},
    "grid": [0.0, 0.0, 0.0, 0.0],
    "column": [0.0, 2.0, 4.0, 6.0],
    "boxes": [{"n": 1}, None],
}


def served(output: str) -> dict[str, object]:
    lines = [line for line in output.splitlines() if "SERVED " in line]
    assert lines, f"nothing served; output:\n{output}"
    return json.loads(lines[-1].split("SERVED ", 1)[1].rsplit(" ", 1)[0])  # type: ignore[no-any-return]


def fresh_run(project: Project, tmp_path: Path) -> dict[str, object]:
    """What `python pipeline.py` serves in an empty plant dir (the oracle)."""
    fresh = Project(tmp_path / "fresh")
    fresh.root.mkdir()
    for source in project.root.glob("*.py"):
        shutil.copy(source, fresh.root / source.name)
    result = fresh.python()
    assert result.returncode == 0, result.stderr
    return served(result.stdout)


def test_one_shot_runs_serve_the_values_as_sent_whatever_producer_and_consumers_change(
    project: Project, tmp_path: Path
) -> None:
    project.write("pipeline.py", MUTATING)
    for attempt in range(3):  # a fresh plant dir, then runs served from it
        result = project.python()
        assert result.returncode == 0, result.stderr
        assert served(result.stdout) == EXPECTED, f"run {attempt}: {result.stdout}"
        if attempt == 0:  # `load` runs once, then is cached
            assert "REFUSED assignment destination is read-only" in result.stdout
        project.edit("pipeline.py", f'"EDIT{attempt or ""}"', f'"EDIT{attempt + 1}"')
    assert fresh_run(project, tmp_path) == EXPECTED


def test_the_daemon_serves_the_values_as_sent_on_every_save(
    project: Project,
    daemon: Callable[[], Daemon],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    project.write("pipeline.py", MUTATING)
    watcher = daemon()
    assert served("\n".join(watcher.next_run().lines)) == EXPECTED
    script = project.root / "pipeline.py"
    for save in range(1, 4):  # re-run `tag` (which mutates what it got) and `report` each time
        text = script.read_text().replace(f"TAG{save - 1 or ''}", f"TAG{save}")
        save_atomic(script, text.replace(f'"EDIT{save - 1 or ""}"', f'"EDIT{save}"'))
        run = watcher.next_run()
        assert run.states.get("tag") == "ran", run
        assert served("\n".join(run.lines)) == EXPECTED, f"save {save}:\n{run}"
    assert fresh_run(project, tmp_path) == EXPECTED


# -- in process: the rules one by one -------------------------------------------------------
def test_consumers_of_a_cached_value_each_get_their_own_copy(plant_dir: Path) -> None:
    seen: list[object] = []

    @ReactorFunc
    def make(pipe):
        pipe.send("table", {"rows": [1, 2]})

    @ReactorFunc
    def spoil(pipe):
        table = yield pipe.receive("table")
        table["rows"].append("spoiled")
        pipe.send("spoiled", True)

    @ReactorFunc
    def read(pipe):
        yield pipe.receive("spoiled")
        seen.append((yield pipe.receive("table")))

    for _ in range(2):  # made in this run, then loaded from the plant dir
        with Plant(plant_dir) as plant:
            plant.add_reactors(make, spoil, read)
            plant.run_reactors([spoil, read])
            assert plant.fetch_ingredient("table") == {"rows": [1, 2]}
    assert seen == [{"rows": [1, 2]}, {"rows": [1, 2]}]


def test_an_array_owning_its_memory_becomes_read_only_at_send_without_a_copy(
    plant_dir: Path,
) -> None:
    sent: dict[str, np.ndarray] = {}

    @ReactorFunc
    def make(pipe):
        sent["a"] = np.arange(6.0)
        pipe.send("a", sent["a"])
        with pytest.raises(ValueError, match="read-only"):
            sent["a"] += 1

    @ReactorFunc
    def use(pipe):
        a = yield pipe.receive("a")
        pipe.send("same", bool(np.shares_memory(a, sent["a"])))

    with Plant(plant_dir) as plant:
        plant.run_reactor(use)
        assert plant.fetch_ingredient("same") is True
        assert plant.fetch_ingredient("a").tolist() == [0, 1, 2, 3, 4, 5]


def test_a_view_of_writable_memory_is_copied_and_a_view_of_frozen_memory_is_not(
    plant_dir: Path,
) -> None:
    @ReactorFunc
    def make(pipe):
        base = np.arange(6.0)
        pipe.send("even", base[::2])
        base[:] = -1  # still the producer's to change: what was sent is not affected
        frozen = np.arange(6.0)
        frozen.flags.writeable = False
        pipe.send("tail", frozen[3:])

    @ReactorFunc
    def use(pipe):
        even = yield pipe.receive("even")
        tail = yield pipe.receive("tail")
        pipe.send("got", (even.tolist(), tail.tolist(), even.flags.writeable, tail.base is None))

    with Plant(plant_dir) as plant:
        plant.run_reactor(use)
        assert plant.fetch_ingredient("got") == ([0.0, 2.0, 4.0], [3.0, 4.0, 5.0], False, False)


def test_a_list_sent_as_an_array_is_received_as_the_array_a_later_run_loads(
    plant_dir: Path,
) -> None:
    got = []

    @ReactorFunc
    def make(pipe):
        pipe.send("a", [1, 2, 3], Ingredient.Type.array)

    @ReactorFunc
    def use(pipe):
        got.append(type((yield pipe.receive("a"))))

    for _ in range(2):
        with Plant(plant_dir) as plant:
            plant.run_reactor(use)
    assert got == [np.ndarray, np.ndarray]


def test_an_unpicklable_value_fails_its_producer_at_send_naming_it(plant_dir: Path) -> None:
    @ReactorFunc
    def make(pipe):
        pipe.send("callback", lambda x: x)

    with Plant(plant_dir) as plant, pytest.raises(ReactorFailedError) as failure:
        plant.run_reactor(make)
    cause = failure.value.__cause__
    assert isinstance(cause, StoreError)
    assert "Could not store ingredient 'callback' (function): pickle cannot store" in str(cause)


class Box:
    def __init__(self, items: list[int]) -> None:
        self.items = items


class BoxSpec(IngredientTypeSpec):
    """A custom type: written at send, each consumer reads its own value from the file."""

    name = "box"
    suffix = ".txt"

    def is_instance(self, value: object) -> bool:
        return isinstance(value, Box)

    def store(self, value: Box, path: str) -> None:
        Path(path).write_text(json.dumps(value.items))

    def fetch(self, path: str) -> Box:
        return Box(json.loads(Path(path).read_text()))


def test_a_custom_type_is_stored_as_sent_and_consumers_get_their_own_value(
    plant_dir: Path,
) -> None:
    @ReactorFunc
    def make(pipe):
        box = Box([1])
        pipe.send("box", box)
        box.items.append(2)

    @ReactorFunc
    def spoil(pipe):
        box = yield pipe.receive("box")
        box.items.append(3)
        pipe.send("spoiled", True)

    @ReactorFunc
    def read(pipe):
        yield pipe.receive("spoiled")
        box = yield pipe.receive("box")
        pipe.send("seen", box.items)

    with Plant(plant_dir) as plant:
        plant.register_ingredient_specs([BoxSpec()])
        plant.add_reactors(make, spoil, read)
        plant.run_reactor(read)
        assert plant.fetch_ingredient("seen") == [1]
        assert plant.fetch_ingredient("box").items == [1]


SCRIPT_CLASS = """
from pyplantd import Plant, ReactorFunc


class Point:
    def __init__(self, x):
        self.x = x

    def __repr__(self):
        return f"Point({self.x})"


@ReactorFunc
def load(pipe):
    pipe.send("point", Point(3))


@ReactorFunc
def show(pipe):
    point = yield pipe.receive("point")
    print("SERVED", point.x, "EDIT")


if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.run_reactor(show)
"""


def test_the_daemon_stores_values_of_classes_the_script_defines(
    project: Project,
    daemon: Callable[[], Daemon],  # noqa: F811 - the fixture imported above
) -> None:
    """Sent values are pickled at `send`: the script is `__main__` while its reactors run in the
    daemon too, as under `python pipeline.py`."""
    script = project.write("pipeline.py", SCRIPT_CLASS)
    watcher = daemon()
    assert "[show] SERVED 3 EDIT" in str(watcher.next_run())
    save_atomic(script, script.read_text().replace("Point(3)", "Point(4)"))
    run = watcher.next_run()
    assert "[show] SERVED 4 EDIT" in str(run) and "failed" not in run.summary, run
    with Client.find(project.root) as client:  # between runs too
        assert client.preview("point") == "Point(4)"
