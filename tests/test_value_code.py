"""What a received value does depends on code its bytes do not hold: a `Box` instance or an array
subclass is pickled with a reference to its class, a function sent as a value by its name.
Editing that code re-runs the consumers, one-shot and in a real daemon after a real save, also
when the producer's own code does not name the class (it is not re-run then); an edit that
changes no code (a comment) re-runs nothing, in this process or a new one. The oracle: a fresh
run in an empty plant dir.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import LOG_HELPER, Project
from pyplant_client import Client
from test_daemon import Daemon, daemon, save_atomic, take_ran  # noqa: F401 (fixtures)

from pyplantd.pickler import dumps
from pyplantd.signatures.signature import SignatureComputer
from pyplantd.signatures.value_code import ValueCode

SHAPES = """
import numpy as np


class Meters(np.ndarray):
    def total(self):
        return int(self.sum()) * 1


class Box:
    SCALE = 16

    def __init__(self, v):
        self.v = v

    def value(self):
        return self.v * self.SCALE


class Disk:
    RADIUS = 5

    def __init__(self, v):
        self.v = v

    def value(self):
        return self.v * self.RADIUS


def double(x):
    return 2 * x
"""

PIPELINE = """
import shapes
import numpy as np
from shapes import Box, Meters, double
from sidefx import log_run

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def make(pipe):
    log_run("make")
    pipe.send("box", Box(2))
    pipe.send("f", double)
    pipe.send("lengths", np.arange(3).view(Meters))


@ReactorFunc
def make_by_name(pipe):  # names no class of shapes: its code signature does not change
    log_run("make_by_name")
    pipe.send("found", getattr(shapes, "Di" + "sk")(3))


@ReactorFunc
def use(pipe):
    box = yield pipe.receive("box")
    f = yield pipe.receive("f")
    found = yield pipe.receive("found")
    lengths = yield pipe.receive("lengths")
    log_run("use")
    pipe.send("total", [box.value(), f(5), found.value(), lengths.total()])


@ReactorFunc
def show(pipe):
    print("SERVED", (yield pipe.receive("total")))


if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.run_reactor(show)
"""

# (file, old, new, reactors that must run besides the target, value served)
EDITS = [
    ("shapes.py", "SCALE = 16", "SCALE = 28", ["make", "use"], "[56, 10, 15, 3]"),
    ("shapes.py", "RADIUS = 5", "RADIUS = 7", ["use"], "[56, 10, 21, 3]"),  # `make_by_name` cached
    ("shapes.py", "return 2 * x", "return 3 * x", ["make", "use"], "[56, 15, 21, 3]"),
    ("shapes.py", "sum()) * 1", "sum()) * 100", ["make", "use"], "[56, 15, 21, 300]"),
    ("shapes.py", "return 3 * x", "return 3 * x  # tripled", [], "[56, 15, 21, 300]"),
]


def served(text: str) -> str | None:
    found = [line.split("SERVED ", 1)[1] for line in text.splitlines() if "SERVED " in line]
    return found[-1] if found else None


def fresh_run(project: Project, tmp_path: Path, name: str) -> str | None:
    """`python pipeline.py` on a copy of the project in an empty plant dir (the oracle)."""
    copy = Project(tmp_path / name)
    copy.root.mkdir()
    for source in project.root.glob("*.py"):
        shutil.copy(source, copy.root / source.name)
    return served(copy.python().stdout)


def make_project(project: Project) -> None:
    project.write("sidefx.py", LOG_HELPER)
    project.write("shapes.py", SHAPES)
    project.write("pipeline.py", PIPELINE)


def test_editing_the_class_or_function_a_value_names_reruns_its_consumers_one_shot(
    project: Project, tmp_path: Path
) -> None:
    make_project(project)
    first = project.python()
    assert served(first.stdout) == "[32, 10, 15, 3]", first.stderr
    for step, (file, old, new, ran, expected) in enumerate(EDITS):
        project.edit(file, old, new)
        if old == "RADIUS = 5":  # no reactor's code names Disk: the explanation does
            plan = project.cli("run", "pipeline.py", "--dry-run", "--explain")
            assert "input 'found' changed (class Disk in shapes.py changed)" in plan.stdout, plan
        result = project.cli("run", "pipeline.py", "--explain")
        assert result.ran == sorted(ran), (new, result.stderr)
        if old == "RADIUS = 5":
            assert "class Disk in shapes.py changed" in result.stdout, result.stdout
        assert served(result.stdout) == expected == fresh_run(project, tmp_path, f"f{step}")
    again = project.python()  # a new process, no change: the stored values compare equal
    assert again.ran == [] and served(again.stdout) == EDITS[-1][-1], again.stderr


def test_editing_the_class_or_function_a_value_names_reruns_its_consumers_in_the_daemon(
    project: Project,
    daemon: Callable[[], Daemon],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    make_project(project)
    watcher = daemon()
    assert served(str(watcher.next_run())) == "[32, 10, 15, 3]"
    assert take_ran(project) == ["make", "make_by_name", "use"]
    for step, (file, old, new, ran, expected) in enumerate(EDITS):
        path = project.root / file
        save_atomic(path, path.read_text().replace(old, new))
        run = watcher.next_run()
        assert take_ran(project) == sorted(ran), run
        with Client.find(project.root) as client:
            now = client.fetch("total")
        assert str(now) == expected == fresh_run(project, tmp_path, f"d{step}"), run


CUSTOM_TYPE = """
from shapes import Box
from sidefx import log_run

from pyplantd import IngredientTypeSpec, Plant, ReactorFunc


class BoxSpec(IngredientTypeSpec):  # stores a Box as the text of its number
    name = "box"

    def is_instance(self, value):
        return isinstance(value, Box)

    def store(self, value, path):
        with open(path, "w") as handle:
            handle.write(str(value.v))

    def fetch(self, path):
        with open(path) as handle:
            return Box(int(handle.read()))


@ReactorFunc
def make(pipe):
    log_run("make")
    pipe.send("box", Box(2))


@ReactorFunc
def use(pipe):
    box = yield pipe.receive("box")
    log_run("use")
    pipe.send("total", box.value())


@ReactorFunc
def show(pipe):
    print("SERVED", (yield pipe.receive("total")))


if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.register_ingredient_specs([BoxSpec()])
        plant.run_reactor(show)
"""


def test_a_value_of_a_custom_type_counts_its_class_code(project: Project, tmp_path: Path) -> None:
    make_project(project)
    project.write("pipeline.py", CUSTOM_TYPE)
    assert served(project.python().stdout) == "32"
    project.edit("shapes.py", "SCALE = 16", "SCALE = 28")
    result = project.python()
    assert result.ran == ["make", "use"], result.stderr
    assert served(result.stdout) == "56" == fresh_run(project, tmp_path, "fresh")


CONFIG = """
from shapes import Box
from sidefx import log_run

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def use(pipe):
    box = pipe.read_config("box")
    log_run("use")
    pipe.send("total", [box.value(), pipe.read_config("kind")(1).value()])


@ReactorFunc
def show(pipe):
    print("SERVED", (yield pipe.receive("total")))


if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.set_config({"box": Box(2), "kind": Box})
        plant.run_reactor(show)
"""


def test_a_parameter_naming_a_class_counts_its_code(project: Project, tmp_path: Path) -> None:
    make_project(project)
    project.write("pipeline.py", CONFIG)
    assert served(project.python().stdout) == "[32, 16]"
    project.edit("shapes.py", "SCALE = 16", "SCALE = 28")
    result = project.python()
    assert result.ran == ["use"], result.stderr
    assert served(result.stdout) == "[56, 28]" == fresh_run(project, tmp_path, "fresh")
    project.edit("shapes.py", "SCALE = 28", "SCALE = 28  # a comment")
    again = project.python()
    assert again.ran == [] and served(again.stdout) == "[56, 28]", again.stderr


def test_values_count_the_code_of_user_definitions_and_the_version_of_packages() -> None:
    code = ValueCode(SignatureComputer()).of([Shape, area, np.dtype, OrderedDict, len])
    assert code.keys() == {f"{__name__}:Shape", f"{__name__}:area", "package:numpy"}
    assert code["package:numpy"] == np.__version__
    untracked = ValueCode(SignatureComputer(), track_versions=False).of([Shape, np.dtype])
    assert untracked.keys() == {f"{__name__}:Shape"}


class Shape:
    pass


def area(shape: Shape) -> float:
    return 1.0


def test_a_pickle_names_the_classes_and_functions_it_refers_to_and_plain_data_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "named_defs.py").write_text(
        "class Shape:\n    pass\n\n\ndef area(s):\n    return 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "named_defs", None)  # removed again at teardown
    del sys.modules["named_defs"]
    defs = importlib.import_module("named_defs")
    assert dumps({"boxes": [1, 2], "text": "x", "f": len})[1] == ()  # builtins count for nothing
    assert set(dumps([defs.area, defs.Shape(), defs.Shape(), 1.5])[1]) == {defs.area, defs.Shape}
