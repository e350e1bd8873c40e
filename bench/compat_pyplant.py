"""Side by side with PyPlant 0.6.0: the same PyPlant-spelled scripts run with `pyplant` and with
`pyplantd`, and what each observable behaviour gives (events in order, what `run_reactor` raises,
useCache=False, PipeworkMock, allocation through a spec of PyPlant's interface and the calls it
gets, the built-in exception types each error is caught as, `pyplant.pyplant`'s names). Not a
test and not run by CI: it needs PyPlant installed.

    bench/.venv/bin/python bench/compat_pyplant.py     # bench/run.sh makes that venv

Each script prints one JSON line per probe; the table shows where the two agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

PROBES = """
import json, logging, sys, tempfile
exec("from {lib} import *")
quiet = logging.getLogger("quiet"); quiet.setLevel(logging.CRITICAL)

@SubreactorFunc
def inner(pipe, x):
    v = yield pipe.receive("a")
    return v + x

@SubreactorFunc
def outer(pipe):
    return (yield from inner(pipe, 1))

@ReactorFunc
def make_a(pipe, config):
    pipe.send("a", config.n)

@ReactorFunc
def make_b(pipe):
    a = yield pipe.receive("a")
    r = yield from outer(pipe)
    pipe.send("b", a + r)

@ReactorFunc
def make_items(pipe):
    pipe.send("items", [1, 2], useCache=False)

@ReactorFunc
def first(pipe):
    items = yield pipe.receive("items")
    items.append(3)
    pipe.send("first", len(items))

@ReactorFunc
def second(pipe):
    yield pipe.receive("first")
    items = yield pipe.receive("items")
    pipe.send("second", len(items))

@ReactorFunc
def explode(pipe):
    raise KeyError("missing")

def probe(name, value):
    print(json.dumps({{"probe": name, "value": value}}))

plant_dir = tempfile.mkdtemp()
for run, n in enumerate((1, 1, 2), 1):
    events = []
    with Plant(plant_dir, logger=quiet) as plant:
        plant.add_reactors(make_a, make_b)
        for t in ("reactor_started", "reactor_step", "subreactor_started", "reactor_finished"):
            plant.add_event_listener(Plant.EventType[t], lambda t, *a: events.append(
                " ".join([t.name] + [x if isinstance(x, str) else "<func>" for x in a])))
        plant.set_config({{"n": n}})
        plant.run_reactor(make_b)
    probe(f"events, run {{run}} (n={{n}})", events)

with Plant(tempfile.mkdtemp(), logger=quiet) as plant:
    plant.add_reactors(make_items, first, second)
    plant.run_reactor(second)
    probe("useCache=False: second consumer's list", plant.fetch_ingredient("second"))

with Plant(tempfile.mkdtemp(), logger=quiet) as plant:
    plant.add_reactors(explode)
    try:
        plant.run_reactor(explode)
    except KeyError as e:
        probe("reactor's KeyError: caught as KeyError, args", list(e.args))

pipe = test.PipeworkMock({{}}, {{"a": 4}})
test.run_reactor_to_completion(make_b, pipe)
probe("PipeworkMock products", pipe.get_products())

# -- allocation through a spec of PyPlant's interface ------------------------------------------
import os
import numpy as np

class RawSpec(specs.IngredientTypeSpec):
    calls = []

    def __init__(self):
        super().__init__()
        self.isAllocatable = True

    @classmethod
    def get_name(cls):
        return "raw"

    def _path(self, warehouse, name):
        return os.path.join(warehouse.baseDir, name + ".raw")

    def allocate(self, warehouse, name, **kwargs):
        RawSpec.calls.append("allocate " + name)
        return np.memmap(self._path(warehouse, name), "float64", "w+", shape=kwargs["shape"])

    def store(self, warehouse, name, value):
        RawSpec.calls.append("store " + name)
        value.flush()
        return {{"shape": list(value.shape)}}

    def fetch(self, warehouse, name, meta):
        RawSpec.calls.append("fetch " + name)
        return np.memmap(self._path(warehouse, name), "float64", "r", shape=tuple(meta["shape"]))

    def deallocate(self, warehouse, name):
        RawSpec.calls.append("deallocate " + name)
        os.remove(self._path(warehouse, name))

    def close(self):
        RawSpec.calls.append("close")

@ReactorFunc
def fill(pipe):
    data = pipe.allocate("raw", RawSpec, shape=(3,))
    scratch = pipe.allocate_temp("scratch", RawSpec, shape=(1,))
    data[:2] = 1
    pipe.send("raw", data, RawSpec)  # untyped, PyPlant would infer 'object' and pickle it
    data[2] = 7  # after the send

@ReactorFunc
def use_raw(pipe):
    raw = yield pipe.receive("raw")
    pipe.send("raw_sum", float(np.asarray(raw).sum()))

raw_dir = tempfile.mkdtemp()
for session in (1, 2):
    RawSpec.calls.clear()
    with Plant(raw_dir, logger=quiet) as plant:
        plant.warehouse.register_ingredient_specs([RawSpec()])
        plant.add_reactors(fill, use_raw)
        plant.run_reactor(use_raw)
        total = plant.fetch_ingredient("raw_sum")
        probe(f"allocated raw: consumer's sum, session {{session}}", total)
    probe(f"allocated raw: spec calls, session {{session}}", RawSpec.calls)

# -- which built-in exception types catch each error -------------------------------------------
BUILTINS = (RuntimeError, ValueError, KeyError, AttributeError, ImportError)

def caught(action):
    try:
        action()
    except Exception as e:
        return [t.__name__ for t in BUILTINS if isinstance(e, t)]
    return "no error"

@ReactorFunc
def needs_missing(pipe):
    yield pipe.receive("never_sent")

@ReactorFunc
def cycle_a(pipe):
    yield pipe.receive("from_b")
    pipe.send("from_a", 1)

@ReactorFunc
def cycle_b(pipe):
    yield pipe.receive("from_a")
    pipe.send("from_b", 1)

@ReactorFunc
def sends_twice(pipe):
    pipe.send("twice", 1)
    pipe.send("twice", 2)

@ReactorFunc
def writes_config(pipe, config):
    config.n = 2

@ReactorFunc
def unknown_type(pipe):
    pipe.send("x", 1, "no_such_type")

@ReactorFunc
def allocates_unknown(pipe):
    pipe.allocate("x", "no_such_type")

@ReactorFunc
def allocates_simple(pipe):
    pipe.allocate("x", Ingredient.Type.simple)

class TextSpec(specs.IngredientTypeSpec):
    @classmethod
    def get_name(cls):
        return "text"

    def store(self, warehouse, name, value):
        return None

    def fetch(self, warehouse, name, meta):
        return ""

@ReactorFunc
def allocates_text(pipe):
    pipe.allocate("x", TextSpec)

@ReactorFunc
def reads_missing(pipe):
    pipe.read_config("missing")

def plain(pipe):
    pass

def in_plant(action, *reactors):
    def run():
        with Plant(tempfile.mkdtemp(), logger=quiet) as plant:
            plant.warehouse.register_ingredient_specs([TextSpec()])
            plant.set_config({{"n": 1}})
            if reactors:
                plant.add_reactors(*reactors)
            action(plant)
    return run

CASES = {{
    "unknown reactor": in_plant(lambda p: p.run_reactor("nope"), make_a),
    "missing ingredient": in_plant(lambda p: p.run_reactor(needs_missing), needs_missing),
    "deadlock": in_plant(lambda p: p.run_reactor(cycle_a), cycle_a, cycle_b),
    "add_reactors of a plain function": in_plant(lambda p: p.add_reactors(plain)),
    "sent twice": in_plant(lambda p: p.run_reactor(sends_twice), sends_twice),
    "config write": in_plant(lambda p: p.run_reactor(writes_config), writes_config),
    "send of an unknown type": in_plant(lambda p: p.run_reactor(unknown_type), unknown_type),
    "allocate of an unknown type": in_plant(lambda p: p.run_reactor(allocates_unknown),
                                            allocates_unknown),
    "allocate of Ingredient.Type.simple": in_plant(lambda p: p.run_reactor(allocates_simple),
                                                   allocates_simple),
    "allocate of a spec without isAllocatable": in_plant(lambda p: p.run_reactor(allocates_text),
                                                         allocates_text),
    "get_ingredient_object of an unknown name": in_plant(lambda p: p.get_ingredient_object("x")),
    "config.peek of an unknown param": in_plant(lambda p: p.get_config_object().peek("x")),
    "store_reactor_inputs_to_dir of an unknown reactor": in_plant(
        lambda p: utils.store_reactor_inputs_to_dir(p, "nope", tempfile.mkdtemp()), make_a),
    "PipeworkMock: a missing ingredient": lambda: test.run_reactor_to_completion(
        needs_missing, test.PipeworkMock({{}}, {{}})),
    "PipeworkMock: a missing param": lambda: test.run_reactor_to_completion(
        reads_missing, test.PipeworkMock({{}}, {{}})),
}}
for case, action in CASES.items():
    probe(f"caught as: {{case}}", caught(action))

# -- names -------------------------------------------------------------------------------------
star = {{}}
exec("from {lib}.pyplant import *", star)
probe("from pyplant.pyplant import *", sorted(n for n in star if not n.startswith("__")))
with Plant(tempfile.mkdtemp(), logger=quiet) as plant:
    probe("Plant attributes", [n for n in ("plantDir", "logger", "config", "executionHistory",
                                           "warehouse") if hasattr(plant, n)])
    probe("fetch_ingredient of an unknown name", caught(lambda: plant.fetch_ingredient("nope")))
    probe("warehouse.fetch of an unknown name", plant.warehouse.fetch("nope"))
"""


def run(lib: str, folder: Path) -> dict[str, object]:
    script = folder / f"probe_{lib}.py"
    script.write_text(textwrap.dedent(PROBES.format(lib=lib)))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=folder
    )
    found: dict[str, object] = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            found[record["probe"]] = record["value"]
    if done.returncode != 0:
        found["(exit)"] = done.stderr.strip().splitlines()[-1:]
    return found


def show(value: object) -> str:
    """Event lists one per line; anything else as JSON."""
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "<br>".join(value)
    return json.dumps(value)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        pyplant, pyplantd = run("pyplant", Path(folder)), run("pyplantd", Path(folder))
    print("| probe | PyPlant 0.6.0 | pyplantd | same |\n| --- | --- | --- | --- |")
    for probe in dict.fromkeys([*pyplant, *pyplantd]):
        a, b = pyplant.get(probe, "-"), pyplantd.get(probe, "-")
        print(f"| {probe} | {show(a)} | {show(b)} | {'yes' if a == b else 'no'} |")


if __name__ == "__main__":
    main()
