"""A process that runs the pipeline, changes a value in place and runs it again (a notebook, a
parameter sweep in a script) is served what the code computes with the value as it is now,
never a result made with the old one; what a run does to values itself (a list a reactor
appends to, a cache it fills) re-runs nothing. Real processes, real plant dirs, a real kernel."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import Project
from test_change_detection import run_notebook

HELPERS = """
import numpy as np

SETTINGS = {"offset": 1}
WEIGHTS = np.array([1.0, 2.0])
"""

# Every run prints what the pipeline served next to what the same expression gives computed
# directly now: the oracle is plain Python, with no plant at all.
SCRIPT = """
import numpy as np
from pyplantd import Plant, ReactorFunc

import helpers


class Model:
    SCALE = 2
    STEPS = [1, 2]


class Params:
    def __init__(self, alpha):
        self.alpha = alpha


CFG = {"k": 1}
PARAMS = Params(0.5)
SEEN = []


def direct():
    return float(
        Model.SCALE * sum(Model.STEPS) + CFG["k"] + helpers.SETTINGS["offset"]
        + helpers.WEIGHTS.sum() + PARAMS.alpha
    )


@ReactorFunc
def produce(pipe):
    SEEN.append("produce")  # the run's own change to a value: never counts
    pipe.send("value", direct())


@ReactorFunc
def report(pipe):
    value = yield pipe.receive("value")
    print("RESULT", value, direct())


CHANGES = [
    "pass",
    "Model.SCALE = 3",
    "Model.STEPS.append(10)",
    "CFG['k'] = 5",
    "helpers.SETTINGS['offset'] = 7",
    "helpers.WEIGHTS[0] = 4.0",
    "PARAMS.alpha = 0.25",
    "Model.STEPS.remove(10)",
    "CFG['k'] = 1; Model.SCALE = 2; helpers.SETTINGS['offset'] = 1; helpers.WEIGHTS[0] = 1.0",
    "PARAMS.alpha = 0.5",
    "pass",
]

with Plant("plant") as plant:
    for change in CHANGES:
        exec(change)
        plant.run_reactor(report)
        ran = [d.reactor for d in plant.last_run if d.status == "ran"]
        print("RAN", ",".join(ran), "|", change)
"""


def served_and_ran(stdout: str) -> tuple[list[tuple[str, str]], list[str]]:
    results = re.findall(r"^RESULT (\S+) (\S+)$", stdout, re.M)
    ran = re.findall(r"^RAN (\S*) \|", stdout, re.M)
    return results, ran


def test_values_changed_in_place_between_runs_are_served_as_they_are_now(
    project: Project,
) -> None:
    project.write("helpers.py", HELPERS)
    project.write("pipeline.py", SCRIPT)
    first = project.python()
    assert first.returncode == 0, first.stdout + first.stderr
    results, ran = served_and_ran(first.stdout)
    assert len(results) == 11
    assert all(served == direct for served, direct in results), results
    # produce runs for each change (a run's own append to SEEN re-runs nothing); with every
    # value put back as first seen, the first run's result is found again
    assert ran == ["produce,report"] * 9 + ["report"] * 2, ran
    # A new process goes through the same states: each one's result is found, none re-made
    again = project.python()
    results, ran = served_and_ran(again.stdout)
    assert all(served == direct for served, direct in results), results
    assert ran == ["report"] * 11, ran


def test_what_a_run_does_to_values_itself_re_runs_nothing(project: Project) -> None:
    """A reactor that appends to a module's list, fills a class's cache or bumps its counter at
    every run: a process running the pipeline again and again runs it once."""
    project.write(
        "pipeline.py",
        """
from pyplantd import Plant, ReactorFunc

LOG = []


class Memo:
    table = {}
    calls = 0


@ReactorFunc
def produce(pipe):
    LOG.append(len(LOG))
    Memo.table[len(Memo.table)] = 1.0
    Memo.calls += 1
    pipe.send("value", 7)


@ReactorFunc
def report(pipe):
    value = yield pipe.receive("value")
    print("RESULT", value, len(LOG), len(Memo.table))


with Plant("plant") as plant:
    for _ in range(4):
        plant.run_reactor(report)
        print("RAN", ",".join(d.reactor for d in plant.last_run if d.status == "ran"), "|")
    LOG.append("the script's own")  # a change between runs: counts once
    for _ in range(2):
        plant.run_reactor(report)
        print("RAN", ",".join(d.reactor for d in plant.last_run if d.status == "ran"), "|")
""",
    )
    run = project.python()
    assert run.returncode == 0, run.stdout + run.stderr
    _, ran = served_and_ran(run.stdout)
    assert ran == ["produce,report", "report", "report", "report", "produce,report", "report"]


NOTEBOOK_CELLS = [
    "from pyplantd import Plant, ReactorFunc",
    "class C:\n    X = 1\n    ARR = [1, 2]\nCFG = {'k': 1}",
    "def k(cfg):\n    return cfg['k'] if isinstance(cfg, dict) else cfg.k\n\n"
    "@ReactorFunc\ndef load(pipe):\n    pipe.send('value', [C.X, sum(C.ARR), k(CFG)])\n\n"
    "@ReactorFunc\ndef report(pipe):\n    value = yield pipe.receive('value')\n"
    "    print('RESULT', value, [C.X, sum(C.ARR), k(CFG)])",
    "plant = Plant('plant')\nplant.run_reactor(report)",
    "C.X = 5",
    "plant.run_reactor(report)",
    "C.ARR.append(10)",
    "plant.run_reactor(report)",
    "CFG['k'] = 7",
    "plant.run_reactor(report)",
    "plant.close()\nwith Plant('plant') as again:\n    again.run_reactor(report)",
    "class C:\n    X = 5\n    ARR = [1, 2, 10, 20]",  # the class defined again, a list edited
    "with Plant('plant') as again:\n    again.run_reactor(report)",
    "class Params:\n    def __init__(self, k):\n        self.k = k\nCFG = Params(3)",
    "with Plant('plant') as again:\n    again.run_reactor(report)",
    "CFG = Params(4)",  # another instance: by what it holds, not by its type
    "with Plant('plant') as again:\n    again.run_reactor(report)",
    "CFG.k = 9",
    "with Plant('plant') as again:\n    again.run_reactor(report)",
]


def test_a_notebook_cell_changing_a_class_attribute_a_dict_or_an_instance_is_seen(
    tmp_path: Path,
) -> None:
    outputs = run_notebook(tmp_path, NOTEBOOK_CELLS)
    lines = [line for text in outputs for line in text.splitlines() if line.startswith("RESULT")]
    served = [re.findall(r"\[[^\]]*\]", line) for line in lines]
    assert [s[0] for s in served] == [
        "[1, 3, 1]", "[5, 3, 1]", "[5, 13, 1]", "[5, 13, 7]", "[5, 13, 7]", "[5, 33, 7]",
        "[5, 33, 3]", "[5, 33, 4]", "[5, 33, 9]",
    ]  # fmt: skip
    assert all(received == direct for received, direct in served), served


FACTORY_CELLS = [
    "from pyplantd import Plant, ReactorFunc",
    "def make(cfg, scale=[1]):\n    @ReactorFunc\n    def load(pipe):\n"
    "        pipe.send('value', [cfg['k'], scale[0]])\n    return load\n\n"
    "@ReactorFunc\ndef report(pipe):\n    value = yield pipe.receive('value')\n"
    "    print('RESULT', value)",
    "load = make({'k': 1})\nwith Plant('plant') as plant:\n    plant.run_reactor(report)",
    "load = make({'k': 2})\nwith Plant('plant') as plant:\n    plant.run_reactor(report)",
    "load = make({'k': 2}, [5])\nwith Plant('plant') as plant:\n    plant.run_reactor(report)",
    "load = make({'k': 1})\nwith Plant('plant') as plant:\n    plant.run_reactor(report)\n"
    "    print('RAN', [d.reactor for d in plant.last_run if d.status == 'ran'])",
]


def test_a_reactor_a_notebook_makes_again_with_other_closure_values_runs_with_them(
    tmp_path: Path,
) -> None:
    """No statement in a file says how a notebook's factory-made reactor was made: its closure
    variables and defaults count by what they hold."""
    text = "".join(run_notebook(tmp_path, FACTORY_CELLS))
    assert re.findall(r"RESULT (\[.*\])", text) == ["[1, 1]", "[2, 1]", "[2, 5]", "[1, 1]"]
    assert "RAN ['report']" in text  # the first closure values again: their result is found
