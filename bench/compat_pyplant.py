"""Side by side with PyPlant 0.6.0: the same PyPlant-spelled scripts run with `pyplant` and with
`pyplantd`, and what each observable behaviour gives (events in order, what `run_reactor` raises,
useCache=False, PipeworkMock). Not a test and not run by CI: it needs PyPlant installed.

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
