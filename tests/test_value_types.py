"""A value comes back as it was sent: its type and all of its state (a masked array's mask and hard
mask, an array subclass's attributes, a subclass instance's own attributes, a defaultdict's
factory, bool not int, np.float64 not float), to the consumers of the run that sent it and, loaded
from disk, in a new process. Its fingerprint covers all of that, so a change of the mask alone
re-runs the consumers. The oracle: what the producer sent (plain Python), and a fresh run.
"""

from __future__ import annotations

import importlib
import json
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import LOG_HELPER, Project, Result

from pyplantd import Plant, ReactorFunc, specs
from pyplantd.fingerprint import value_fingerprint
from pyplantd.pickler import dumps
from pyplantd.store.specs import infer_type

KINDS = """
import collections
import dataclasses
import datetime
import decimal
import enum
import fractions

import numpy as np


class Arr(np.ndarray):
    def __new__(cls, data, unit="m"):
        obj = np.asarray(data).view(cls)
        obj.unit = unit
        return obj

    def __array_finalize__(self, obj):
        self.unit = getattr(obj, "unit", None)


class D(dict): pass
class L(list): pass
class T(tuple): pass
class S(str): pass
class I(int): pass
class DD(collections.defaultdict): pass
class When(datetime.date): pass
class Dec(decimal.Decimal): pass
class Frac(fractions.Fraction): pass


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    LOW = 1


Point = collections.namedtuple("Point", "x y")


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: int


def tagged(obj, **attributes):
    for name, value in attributes.items():
        setattr(obj, name, value)
    return obj


def values():
    return {
        "masked": np.ma.masked_array([1, 2, 3], mask=[0, 1, 0], fill_value=7, hard_mask=True),
        "masked_scalar": np.ma.masked_array(5, mask=True),
        "recarray": np.rec.array([(1, 2.0)], dtype=[("a", int), ("b", float)]),
        "matrix": np.matrix([[1, 2], [3, 4]]),
        "array_subclass": Arr([1, 2, 3], unit="km"),
        "plain_array": np.arange(4.0),
        "dict_subclass": tagged(D(a=1), tag="t"),
        "list_subclass": tagged(L([1, 2]), tag="t"),
        "tuple_subclass": tagged(T((1, 2)), tag="t"),
        "str_subclass": tagged(S("x"), tag="t"),
        "int_subclass": tagged(I(3), tag="t"),
        "defaultdict_subclass": tagged(DD(list, {"a": [1]}), tag="t"),
        "date_subclass": tagged(When(2020, 1, 2), tag="t"),
        "decimal_subclass": tagged(Dec("1.5"), tag="t"),
        "fraction_subclass": tagged(Frac(1, 3), tag="t"),
        "namedtuple": Point(1, 2),
        "ordereddict": collections.OrderedDict([("b", 1), ("a", 2)]),
        "defaultdict": collections.defaultdict(list, {"a": [1]}),
        "counter": collections.Counter("abca"),
        "deque": collections.deque([1, 2], maxlen=3),
        "bool": True,
        "int": 1,
        "float": 1.0,
        "float64": np.float64(1.0),
        "int32": np.int32(1),
        "enum": Color.RED,
        "intenum": Level.LOW,
        "dataclass": Frozen(1),
        "set": {1, 2},
        "bytearray": bytearray(b"ab"),
        "unicode_array": np.array(["a", "bc"]),
        "object_array": np.array([{"a": 1}, None], dtype=object),
    }


def describe(value):
    found = {"type": f"{type(value).__module__}.{type(value).__qualname__}", "repr": repr(value)}
    if hasattr(value, "__dict__"):
        found["attributes"] = repr(sorted((k, repr(v)) for k, v in vars(value).items()))
    if isinstance(value, np.ma.MaskedArray):
        found["mask"] = repr((value.mask.tolist(), value.fill_value, value.hardmask))
    if isinstance(value, collections.defaultdict):
        found["factory"] = repr(value.default_factory)
    if isinstance(value, collections.deque):
        found["maxlen"] = value.maxlen
    if isinstance(value, np.ndarray):
        found["dtype"] = str(value.dtype)
    return found
"""

ROUND_TRIP = """
import json

from kinds import describe, values

from pyplantd import Plant, ReactorFunc, specs

NAMES = sorted(values())


@ReactorFunc
def make(pipe):
    sent = values()
    print("SENT", json.dumps({name: describe(sent[name]) for name in NAMES}))
    for name in NAMES:
        pipe.send(name, sent[name])


@ReactorFunc
def show(pipe):
    served = {}
    for name in NAMES:
        served[name] = describe((yield pipe.receive(name)))
    print("SERVED", json.dumps(served))


if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.run_reactor(show)
"""


def printed(result: Result, tag: str) -> dict[str, object]:
    lines = [line for line in result.stdout.splitlines() if line.startswith(tag + " ")]
    assert lines, f"no {tag} line; stderr:\n{result.stderr}"
    found: dict[str, object] = json.loads(lines[-1].split(" ", 1)[1])
    return found


def differences(expected: dict[str, object], got: dict[str, object]) -> dict[str, object]:
    return {
        name: (expected[name], got.get(name))
        for name in expected
        if got.get(name) != expected[name]
    }


def test_every_kind_of_value_is_received_with_its_type_and_state_also_from_disk_later(
    project: Project,
) -> None:
    project.write("kinds.py", KINDS)
    project.write("pipeline.py", ROUND_TRIP)
    first = project.python()
    sent = printed(first, "SENT")
    assert differences(sent, printed(first, "SERVED")) == {}  # consumers of the run that sent it
    later = project.python()  # a new process: `make` is served from disk
    assert "SENT" not in later.stdout, later.stdout
    assert differences(sent, printed(later, "SERVED")) == {}


CHANGES = """
import numpy as np
from kinds import Arr
from sidefx import log_run

from pyplantd import Plant, ReactorFunc, specs

MASK = [0, 1, 0]
UNIT = "m"


@ReactorFunc
def make(pipe):
    log_run("make")
    pipe.send("masked", np.ma.masked_array([1, 2, 3], mask=MASK))
    pipe.send("measured", Arr([1, 2, 3], unit=UNIT))


@ReactorFunc
def total(pipe):
    masked = yield pipe.receive("masked")
    measured = yield pipe.receive("measured")
    log_run("total")
    pipe.send("total", f"{masked.sum()} {type(measured).__name__} {measured.unit}")


@ReactorFunc
def show(pipe):
    print("SERVED", (yield pipe.receive("total")))


if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.run_reactor(show)
"""


def served(result: Result) -> str:
    found = [line[len("SERVED ") :] for line in result.stdout.splitlines() if "SERVED " in line]
    assert found, result.stderr
    return found[-1]


def fresh(project: Project, tmp_path: Path, name: str) -> str:
    """What `python pipeline.py` serves in an empty plant dir (the oracle)."""
    copy = Project(tmp_path / name)
    copy.root.mkdir()
    for source in project.root.glob("*.py"):
        shutil.copy(source, copy.root / source.name)
    return served(copy.python())


def test_a_change_of_mask_or_attribute_alone_reruns_the_consumers(
    project: Project, tmp_path: Path
) -> None:
    project.write("kinds.py", KINDS)
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", CHANGES)
    first = project.python()
    assert served(first) == "4 Arr m", first.stderr  # what plain Python computes
    project.edit("pipeline.py", "MASK = [0, 1, 0]", "MASK = [1, 0, 0]")  # same data, new mask
    masked = project.python()
    assert masked.ran == ["make", "total"], masked.stderr
    assert served(masked) == "5 Arr m" == fresh(project, tmp_path, "mask")
    project.edit("pipeline.py", 'UNIT = "m"', 'UNIT = "km"')  # same data, new attribute
    unit = project.python()
    assert unit.ran == ["make", "total"], unit.stderr
    assert served(unit) == "5 Arr km" == fresh(project, tmp_path, "unit")
    again = project.python()
    assert again.ran == [] and served(again) == "5 Arr km"


SETS = """
import numpy as np
from sidefx import log_run

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def make(pipe):
    log_run("make")
    pipe.send("tags", np.array([{f"tag{i}" for i in range(30)}, None], dtype=object))


@ReactorFunc
def show(pipe):
    tags = yield pipe.receive("tags")
    print("SERVED", len(tags[0]))


if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.run_reactor(show)
"""


def test_an_object_array_holding_sets_of_strings_is_intact_in_a_process_with_another_hash_seed(
    project: Project,
) -> None:
    # A set pickles in its iteration order, which depends on the process's hash seed: the
    # stored bytes are checked, never a new pickle of what was loaded.
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", SETS)
    assert served(project.python()) == "30"
    for seed in ("1", "2", "3"):
        later = project.python(env={"PYTHONHASHSEED": seed})
        assert later.ran == [] and served(later) == "30", later.stderr


# -- in process and unit level ---------------------------------------------------------------
class Tagged(np.ndarray):
    pass


def test_a_parameter_whose_mask_alone_changed_reruns_its_reader(plant_dir: Path) -> None:
    seen: list[int] = []

    @ReactorFunc
    def read(pipe):
        seen.append(int(pipe.read_config("weights").sum()))
        pipe.send("total", seen[-1])

    @ReactorFunc
    def show(pipe):
        yield pipe.receive("total")

    for mask in ([0, 1, 0], [1, 0, 0]):
        with Plant(plant_dir) as plant:
            plant.set_config({"weights": np.ma.masked_array([1, 2, 3], mask=mask)})
            plant.run_reactor(show)
    assert seen == [4, 5]


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_only_plain_arrays_and_memory_maps_take_the_array_type(tmp_path: Path) -> None:
    memmap = np.memmap(tmp_path / "m.bin", dtype="f8", mode="w+", shape=(3,))
    assert infer_type(np.arange(3), []) == "array"
    assert infer_type(memmap, []) == "array"
    for subclass in (
        np.ma.masked_array([1, 2]),
        np.rec.array([(1,)], dtype=[("a", int)]),
        np.matrix([[1]]),
        np.arange(2).view(Tagged),
    ):
        assert infer_type(subclass, []) == "object", type(subclass)
    del memmap


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_array_fingerprints_differ_by_type_mask_and_attributes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a module of its own: another test may re-import the test modules, and pickle names a
    # class by module and name
    (tmp_path / "tagged_arrays.py").write_text("import numpy\nclass Tagged(numpy.ndarray): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "tagged_arrays", None)  # removed again at teardown
    del sys.modules["tagged_arrays"]
    tagged_class = importlib.import_module("tagged_arrays").Tagged
    data = np.arange(3)
    tagged, other = data.view(tagged_class), data.view(tagged_class)
    tagged.unit, other.unit = "m", "km"
    prints = {
        value_fingerprint(data),
        value_fingerprint(np.ma.masked_array(data, mask=[0, 1, 0])),
        value_fingerprint(np.ma.masked_array(data, mask=[1, 0, 0])),
        value_fingerprint(np.matrix(data)),
        value_fingerprint(tagged),
        value_fingerprint(other),
    }
    assert len(prints) == 6


def test_a_memory_map_inside_a_value_is_pickled_as_its_content(tmp_path: Path) -> None:
    memmap = np.memmap(tmp_path / "m.bin", dtype="f8", mode="w+", shape=(3,))
    memmap[:] = [1, 2, 3]
    loaded = pickle.loads(dumps({"m": memmap})[0])["m"]
    assert type(loaded) is np.ndarray and loaded.tolist() == [1.0, 2.0, 3.0]
    del memmap


def test_sparse_matrices_npz_cannot_give_back_are_pickled(plant_dir: Path) -> None:
    sparse = pytest.importorskip("scipy.sparse")

    class Labelled(sparse.csr_matrix):
        pass

    spec = specs.ScipySparseSpec()
    values = {
        "csr": sparse.csr_matrix(np.eye(3)),
        "coo_array": sparse.coo_array(np.eye(3)),
        "lil": sparse.lil_matrix(np.eye(3)),
        "dok": sparse.dok_array(np.eye(3)),
    }
    assert [infer_type(v, [spec]) for v in values.values()] == [
        "scipy_sparse", "scipy_sparse", "object", "object",
    ]  # fmt: skip
    assert infer_type(Labelled(np.eye(3)), [spec]) == "object"

    @ReactorFunc
    def make(pipe):
        for name, value in values.items():
            pipe.send(name, value)

    for _ in range(2):  # sent in this run, then loaded from disk
        with Plant(plant_dir) as plant:
            plant.register_ingredient_specs([spec])
            plant.run_reactor(make)
        with Plant(plant_dir) as plant:
            plant.register_ingredient_specs([spec])
            for name, value in values.items():
                loaded = plant.fetch_ingredient(name)
                assert type(loaded) is type(value) and (loaded != value).nnz == 0, name


@pytest.mark.parametrize("value", [[1.5, 2], {"a": (1, "x")}, {1, 2}, b"x", None])
def test_plain_data_pickles_as_pickle_does_and_names_nothing(value: object) -> None:
    assert dumps(value) == (pickle.dumps(value, protocol=5), ())
