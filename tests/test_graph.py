"""The picture of a pipeline: the static scan of receive/send names and the renderers as tables
of small cases, then `pyplantd graph` on a real pipeline through its life (before any run,
after a run, after an edit, after a failure) in every format, and `pyplant graph` against a real
`pyplantd watch` daemon. Each format is parsed back and its nodes, edges and states checked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import LOG_HELPER, REPO, SUBPROCESS_TIMEOUT, Project
from pyplant_client import graph_render
from pyplant_client.errors import GraphError
from test_daemon import Daemon

from pyplantd.graph import model as model_notes
from pyplantd.graph.model import Node, NodeState, build
from pyplantd.graph.scan import SourceScan
from pyplantd.graph.states import live_states, planned_states
from pyplantd.run.judge import NEW_REACTOR
from pyplantd.run.planner import PlannedStep
from pyplantd.store.records import HistoryEntry, IngredientRecord, ReactorRecord

# The commands import the client package, which lives beside pyplantd (client/).
PYTHONPATH = os.pathsep.join([str(REPO), str(REPO / "client")])


# -- the static scan ----------------------------------------------------------------------------
SCANNED = """
import helpers
from pyplantd import ReactorFunc, SubreactorFunc
import pyplantd


@SubreactorFunc
def smooth(p, width):
    raw = yield p.receive("raw")
    p.send("smooth", raw)


def store_all(q, items):
    for name in items:
        q.send(name, 1)
    q.send("stored", items)


@ReactorFunc
def literal(pipe):
    a = yield pipe.receive("a")
    b = yield pipe.receive(name="b")
    pipe.send("c", a + b)
    pipe.send("c", a - b)  # the same name again counts once


@pyplantd.ReactorFunc
def through_helpers(pipe, config):
    yield from smooth(pipe, 3)
    store_all(q=pipe, items=["x"])
    helpers.unknown(pipe)
    print(pipe)


@ReactorFunc
def computed(pipe):
    name = "dyn"
    value = yield pipe.receive(f"{name}_in")
    pipe.send(name, value)


@ReactorFunc
def other_objects(pipe):
    socket.send("not-an-ingredient")
    other.receive("neither")
    pipe.read_config("n")
"""


@dataclass
class ScanCase:
    reactor: str
    receives: list[str]
    sends: list[str]
    hidden: list[str]


SCAN_CASES = [
    ScanCase("literal", ["a", "b"], ["c"], []),
    # into a subreactor (its own parameter name) and a helper given the pipe by keyword; the
    # helper's loop over names is computed; a module's function not scanned is said so
    ScanCase(
        "through_helpers",
        ["raw"],
        ["smooth", "stored"],
        [
            "a name computed at run time (send, line 14)",
            "what unknown() does with the pipe (line 30)",
        ],
    ),
    ScanCase(
        "computed",
        [],
        [],
        [
            "a name computed at run time (receive, line 37)",
            "a name computed at run time (send, line 38)",
        ],
    ),
    ScanCase("other_objects", [], [], []),
]


@pytest.mark.parametrize("case", SCAN_CASES, ids=lambda c: c.reactor)
def test_static_scan_reads_the_names_a_reactor_receives_and_sends(
    tmp_path: Path, case: ScanCase
) -> None:
    source = tmp_path / "pipeline.py"
    source.write_text(textwrap.dedent(SCANNED).lstrip("\n"))
    found = SourceScan([source]).reactor(case.reactor)
    assert found is not None
    assert (found.receives, found.sends, found.hidden) == (case.receives, case.sends, case.hidden)


def test_static_scan_sees_a_reactor_decorated_with_arguments(tmp_path: Path) -> None:
    source = tmp_path / "pipeline.py"
    source.write_text(
        "from pyplantd import ReactorFunc\n\n"
        "@ReactorFunc(main_thread=True)\n"
        "def drawn(pipe):\n"
        "    values = yield pipe.receive('values')\n"
        "    pipe.send('drawn', values)\n"
    )
    found = SourceScan([source]).reactor("drawn")
    assert found is not None and (found.receives, found.sends) == (["values"], ["drawn"])


def test_static_scan_follows_helpers_across_scanned_files_and_survives_recursion(
    tmp_path: Path,
) -> None:
    (tmp_path / "helpers.py").write_text(
        "def send_twice(pipe, n):\n"
        "    pipe.send('twice', n)\n"
        "    if n:\n"
        "        send_twice(pipe, n - 1)\n"
    )
    (tmp_path / "pipeline.py").write_text(
        "from helpers import send_twice\n\n"
        "@ReactorFunc\n"
        "def caller(pipe):\n"
        "    send_twice(pipe, 2)\n"
    )
    scan = SourceScan([tmp_path / "pipeline.py", tmp_path / "helpers.py"])
    found = scan.reactor("caller")
    assert found is not None and found.sends == ["twice"] and found.hidden == []
    assert scan.reactor("missing") is None


def test_static_scan_reports_a_file_it_cannot_parse_and_reparses_it_once_fixed(
    tmp_path: Path,
) -> None:
    source = tmp_path / "pipeline.py"
    source.write_text("@ReactorFunc\ndef r(pipe):\n    pipe.send('a', 1\n")
    scan = SourceScan([source])
    assert scan.reactor("r") is None
    assert len(scan.problems) == 1 and str(source) in scan.problems[0]
    source.write_text("@ReactorFunc\ndef r(pipe):\n    pipe.send('a', 1)\n  \n")
    fixed = SourceScan([source]).reactor("r")
    assert fixed is not None and fixed.sends == ["a"]


# -- states and the model -----------------------------------------------------------------------
def record(name: str, inputs: tuple[str, ...] = (), outputs: tuple[str, ...] = ()) -> ReactorRecord:
    """A reactor's record as the manifest keeps it, 0.5 s long."""
    inputs_seen = dict.fromkeys(inputs, "fp")
    return ReactorRecord(
        f"m:{name}", name, "digest", {}, {}, inputs_seen, list(outputs), duration=0.5
    )


@dataclass
class PlanCase:
    name: str
    step: PlannedStep
    recorded: bool
    last: str | None  # the status of its last history entry
    expected: NodeState


PLAN_CASES = [
    PlanCase("cached", PlannedStep("r", "cached", []), True, "cached", NodeState("fresh", [], 0.5)),
    PlanCase("run", PlannedStep("r", "run", ["code changed (r)"]), True, "ran",
             NodeState("stale", ["code changed (r)"], 0.5)),
    PlanCase("may run", PlannedStep("r", "may run", ["input 'a' may change (q runs)"]), True,
             None, NodeState("stale", ["input 'a' may change (q runs)"], 0.5)),
    PlanCase("new", PlannedStep("r", "run", [NEW_REACTOR]), False, None, NodeState("never ran")),
    # failed last time: the failure, then what has changed since (not the message twice)
    PlanCase("failed", PlannedStep("r", "run", ["code changed (r)", "ValueError: no"]), True,
             "failed", NodeState("failed", ["last run failed: ValueError: no",
                                            "code changed (r)"], 0.25)),
    PlanCase("failed first", PlannedStep("r", "run", [NEW_REACTOR]), False, "failed",
             NodeState("failed", ["last run failed: ValueError: no"], 0.25)),
]  # fmt: skip


@pytest.mark.parametrize("case", PLAN_CASES, ids=lambda c: c.name)
def test_planned_states_follow_the_plan_and_the_last_outcome(case: PlanCase) -> None:
    case.step.reactor_id = "m:r"
    records = {"m:r": record("r")} if case.recorded else {}
    outcomes = {}
    if case.last is not None:
        reasons = ["code changed (r)", "ValueError: no"] if case.last == "failed" else []
        outcomes["r"] = HistoryEntry("r", case.last, 0.25, reasons, 0.0)
    assert planned_states([case.step], records, outcomes) == {"m:r": case.expected}


@dataclass
class LiveCase:
    name: str
    info: dict[str, Any] | None  # what the daemon's snapshot says of the reactor
    recorded: bool
    daemon: dict[str, Any]  # the rest of the snapshot
    expected: NodeState


IDLE_OK = {"state": "idle", "last_run": {"status": "ok"}}
LIVE_CASES = [
    LiveCase("running", {"state": "running", "elapsed": 1.5}, True, {"state": "running"},
             NodeState("running", [], 0.5, 1.5)),
    LiveCase("ran", {"state": "ran", "duration": 0.75, "why": "code changed (r)"}, True, IDLE_OK,
             NodeState("fresh", ["ran: code changed (r)"], 0.75)),
    LiveCase("warm", {"state": "warm", "duration": 0.0, "why": "cached"}, True, IDLE_OK,
             NodeState("fresh", [], 0.5)),
    LiveCase("restored", {"state": "warm", "why": "restored an earlier result (x)"}, True,
             IDLE_OK, NodeState("fresh", ["restored an earlier result (x)"], 0.5)),
    LiveCase("failed", {"state": "failed", "duration": 0.1, "why": "target; KeyError: 'k'"},
             True, IDLE_OK, NodeState("failed", ["target; KeyError: 'k'"], 0.1)),
    LiveCase("never ran", None, False, IDLE_OK, NodeState("never ran")),
    LiveCase("not reached", None, True, {"state": "running"},
             NodeState("stale", ["not reached yet by the run in progress"], 0.5)),
    LiveCase("after a failure", None, True, {"state": "idle", "last_run": {"status": "failed"}},
             NodeState("stale", ["not checked: the last run stopped at a failure"], 0.5)),
    LiveCase("cancelled", None, True, {"state": "idle", "last_run": {"status": "cancelled"}},
             NodeState("stale", ["not checked: the last run was cancelled"], 0.5)),
    LiveCase("not needed", None, True, IDLE_OK,
             NodeState("stale", ["not checked by the last run (its targets do not need it)"],
                       0.5)),
]  # fmt: skip


@pytest.mark.parametrize("case", LIVE_CASES, ids=lambda c: c.name)
def test_live_states_read_the_daemons_snapshot(case: LiveCase) -> None:
    snapshot = {**case.daemon, "reactors": {"r": case.info} if case.info else {}}
    records = {"m:r": record("r")} if case.recorded else {}
    assert live_states(snapshot, [Node("m:r", "r")], records) == {"m:r": case.expected}


def test_model_edges_come_from_records_then_the_scan_and_never_loop_on_a_reactors_own_output(
    tmp_path: Path,
) -> None:
    source = tmp_path / "pipeline.py"
    source.write_text(
        textwrap.dedent("""
        @SubreactorFunc
        def scale(pipe):
            raw = yield pipe.receive('raw')
            pipe.send('scaled', raw)

        @ReactorFunc
        def load(pipe):
            pipe.send('raw', 1)

        @ReactorFunc
        def fit(pipe):
            yield from scale(pipe)
            scaled = yield pipe.receive('scaled')  # its own output, through the subreactor
            extra = yield pipe.receive('extra')  # new since its last run
            pipe.send('model', scaled)

        @ReactorFunc
        def fresh_idea(pipe):
            model = yield pipe.receive('model')
    """)
    )
    nodes = [Node("m:load", "load"), Node("m:fit", "fit"), Node("m:fresh_idea", "fresh_idea")]
    records = {
        "m:load": record("load", outputs=("raw",)),
        "m:fit": record("fit", ("raw",), ("scaled", "model")),
    }
    sizes = {"raw": 10, "scaled": 20, "model": 30}
    ingredients = {name: IngredientRecord(name, "m:load" if name == "raw" else "m:fit", "simple",
                                          "fp", f"payloads/{name}", size)
                   for name, size in sizes.items()}  # fmt: skip
    model = build("p.py", "/plant", nodes, {}, records, ingredients, SourceScan([source]))
    edges = {(e["ingredient"], e["source"], e["target"], e["size"], e["static"])
             for e in model["edges"]}  # fmt: skip
    assert edges == {
        ("raw", "m:load", "m:fit", 10, False),
        ("extra", None, "m:fit", None, True),
        ("model", "m:fit", "m:fresh_idea", 30, True),
        ("scaled", "m:fit", None, 20, False),
    }
    assert model["notes"] == [model_notes.SOME_STATIC]
    assert [r["state"] for r in model["reactors"]] == ["never ran"] * 3  # no states given
    assert json.loads(json.dumps(model)) == model


# -- reading each format back -------------------------------------------------------------------
@dataclass
class Drawn:
    """A drawn graph read back: node name -> its label lines, and (source, target, label) edges
    with None for a missing producer or consumer; static edges listed apart."""

    nodes: dict[str, list[str]]
    edges: set[tuple[str | None, str | None, str]]
    static: set[tuple[str | None, str | None, str]]

    def state(self, name: str) -> str:
        return self.nodes[name][1]


def read_text(text: str) -> Drawn:
    nodes: dict[str, list[str]] = {}
    edges, static = set(), set()
    current = ""
    row = re.compile(
        r"^ ?\d*\s+(.+?)\s{2,}(fresh|stale|failed|never ran|running)\s+"
        r"(-|(?:for )?[\d.]+ m?s)(?:\s{2}(.*))?$"
    )
    for line in text.splitlines()[1:]:
        match = row.match(line)
        if match:
            current = match[1]
            timing = [match[3]] if match[3] != "-" else []
            nodes[current] = [current, match[2], *timing, *([match[4]] if match[4] else [])]
            continue
        output = re.match(
            r"^\s+-> (\S+)( [\d.]+ \S+)? (?:to (.*)|\((not received)(, static)?\))$", line
        )
        if output:
            label = output[1] + (output[2] or "")
            if output[3]:
                for target in output[3].split(", "):
                    name = target.removesuffix(" (static)")
                    (static if target.endswith(" (static)") else edges).add((current, name, label))
            else:
                (static if output[5] else edges).add((current, None, label))
    return Drawn(nodes, edges, static)


def _label_edge(label: str) -> str:
    parts = [p for p in label.split("\n") if p != "(static)"]
    return " ".join(parts)


def read_dot(text: str) -> Drawn:
    ids: dict[str, str | None] = {}
    nodes: dict[str, list[str]] = {}
    edges, static = set(), set()
    for line in text.splitlines():
        node = re.match(r'^  (r\d+) \[label="((?:[^"\\]|\\.)*)"', line)
        if node:
            lines = node[2].replace('\\"', '"').split("\\n")
            ids[node[1]] = lines[0]
            nodes[lines[0]] = lines
        elif re.match(r"^  x\d+ \[", line):
            ids[line.split()[0]] = None
        edge = re.match(r'^  (\w+) -> (\w+) \[label="((?:[^"\\]|\\.)*)"(, style=dashed)?\];$', line)
        if edge:
            triple = (ids[edge[1]], ids[edge[2]], _label_edge(edge[3].replace("\\n", "\n")))
            (static if edge[4] else edges).add(triple)
    for name, lines in nodes.items():
        nodes[name] = [lines[0], *lines[1].split(" · "), *lines[2:]]
    return Drawn(nodes, edges, static)


def read_mermaid(text: str) -> Drawn:
    ids: dict[str, str | None] = {}
    nodes: dict[str, list[str]] = {}
    edges, static = set(), set()
    decode = {"#quot;": '"', "#lt;": "<", "#gt;": ">", "#amp;": "&"}

    def plain(label: str) -> list[str]:
        for code, char in decode.items():
            label = label.replace(code, char)
        return label.split("<br/>")

    for line in text.splitlines():
        node = re.match(r'^  (r\d+)\["([^"]*)"\]:::(\w+)$', line)
        if node:
            lines = plain(node[2])
            ids[node[1]] = lines[0]
            nodes[lines[0]] = [lines[0], *lines[1].split(" · "), *lines[2:]]
        elif re.match(r"^  x\d+\(\(", line):
            ids[line.split("((")[0].strip()] = None
        edge = re.match(r'^  (\w+) (-->|-\.->)\|"([^"]*)"\| (\w+)$', line)
        if edge:
            triple = (ids[edge[1]], ids[edge[4]], _label_edge("\n".join(plain(edge[3]))))
            (static if edge[2] == "-.->" else edges).add(triple)
    return Drawn(nodes, edges, static)


READERS = {"text": read_text, "dot": read_dot, "mermaid": read_mermaid}


# -- the renderers, on models written by hand ---------------------------------------------------
def model_of(reactors: list[dict[str, Any]], edges: list[dict[str, Any]], **extra: Any) -> dict:
    base = {"v": 1, "pipeline": "p.py", "plant_dir": "/plant", "static": False, "notes": []}
    full = [
        {"id": f"m:{r['name']}", "why": [], "duration": None, "elapsed": None, "hidden": [], **r}
        for r in reactors
    ]
    return {**base, **extra, "reactors": full, "edges": edges}


def edge(
    ingredient: str,
    source: str | None,
    target: str | None,
    size: int | None = None,
    static: bool = False,
) -> dict[str, Any]:
    return {
        "ingredient": ingredient, "source": source and f"m:{source}",
        "target": target and f"m:{target}", "size": size, "static": static,
    }  # fmt: skip


AWKWARD = model_of(
    [
        {"name": "load", "state": "fresh", "duration": 1.5},
        {"name": 'say "hi"', "state": "stale", "duration": 0.012,
         "why": ["param 'n' changed 1 -> 2", "code changed (say)"]},
        {"name": "new", "state": "never ran", "hidden": ["what f() does with the pipe (line 3)"]},
        {"name": "live", "state": "running", "elapsed": 2.25},
        {"name": "broken", "state": "failed", "duration": 0.0004,
         "why": ["last run failed: ValueError: a<b & \"c\""]},
    ],
    [
        edge("data", "load", 'say "hi"', 3 * 2**20),
        edge("data", "load", "broken", 3 * 2**20),
        edge("extra", "load", "new", static=True),
        edge("raw", None, "load"),
        edge("total", 'say "hi"', None, 24),
        edge("guess", "new", None, static=True),
        edge("loop", "live", "live"),
    ],
)  # fmt: skip
AWKWARD_EDGES = {
    ("load", 'say "hi"', "data 3.0 MiB"), ("load", "broken", "data 3.0 MiB"),
    (None, "load", "raw"), ('say "hi"', None, "total 24 B"), ("live", "live", "loop"),
}  # fmt: skip
AWKWARD_STATIC = {("load", "new", "extra"), ("new", None, "guess")}


@pytest.mark.parametrize("fmt", ["dot", "mermaid"])
def test_drawn_formats_show_every_node_state_and_edge_escaped(fmt: str) -> None:
    drawn = READERS[fmt](graph_render.render(AWKWARD, fmt).decode())
    assert drawn.nodes == {
        "load": ["load", "fresh", "1.50 s"],
        'say "hi"': ['say "hi"', "stale", "12.0 ms", "param 'n' changed 1 -> 2",
                     "code changed (say)"],
        "new": ["new", "never ran", "+1 not shown (see the text format)"],
        "live": ["live", "running", "for 2.25 s"],
        "broken": ["broken", "failed", "0.4 ms", 'last run failed: ValueError: a<b & "c"'],
    }  # fmt: skip
    # the sink's receiver and the unknown sender are drawn as small extra nodes
    none_edges = {e for e in drawn.edges | drawn.static if None in e[:2]}
    assert none_edges == {(None, "load", "raw"), ('say "hi"', None, "total 24 B"),
                          ("new", None, "guess")}  # fmt: skip
    assert drawn.edges == AWKWARD_EDGES
    assert drawn.static == AWKWARD_STATIC


def test_text_format_lists_reactors_by_layer_with_state_duration_why_and_edges() -> None:
    text = graph_render.render_text(AWKWARD)
    assert text.splitlines()[0] == "p.py: 5 reactors, 6 ingredients (plant /plant)"
    drawn = read_text(text)
    assert drawn.nodes == {
        "load": ["load", "fresh", "1.50 s"],
        'say "hi"': ['say "hi"', "stale", "12.0 ms",
                     "param 'n' changed 1 -> 2; code changed (say)"],
        "new": ["new", "never ran"],
        "live": ["live", "running", "for 2.25 s"],
        "broken": ["broken", "failed", "0.4 ms", 'last run failed: ValueError: a<b & "c"'],
    }  # fmt: skip
    assert drawn.edges == AWKWARD_EDGES - {(None, "load", "raw")}
    assert drawn.static == AWKWARD_STATIC
    assert "     <- raw (no reactor is known to send it)" in text.splitlines()
    assert "     ? not shown: what f() does with the pipe (line 3)" in text.splitlines()
    numbers = [line.split()[0] for line in text.splitlines() if re.match(r"^\d", line)]
    assert numbers == ["1", "2"]  # load (and live) first, then its receivers


def test_layers_put_each_reactor_after_what_it_receives_and_cycles_last() -> None:
    chain = model_of(
        [{"name": n, "state": "fresh"} for n in ("c", "b", "a", "x", "y")],
        [edge("ab", "a", "b"), edge("bc", "b", "c"), edge("ac", "a", "c"),
         edge("xy", "x", "y"), edge("yx", "y", "x")],
    )  # fmt: skip
    names = [[r["name"] for r in layer] for layer in graph_render.layers(chain)]
    assert names == [["a"], ["b"], ["c"], ["x", "y"]]


def test_focus_keeps_a_reactor_and_what_it_needs_and_suggests_close_names() -> None:
    focused = graph_render.focus(AWKWARD, ["total"])  # an ingredient: its producer
    assert [r["name"] for r in focused["reactors"]] == ["load", 'say "hi"']
    assert {e["ingredient"] for e in focused["edges"]} == {"data", "raw", "total"}
    assert graph_render.focus(AWKWARD, []) is AWKWARD
    with pytest.raises(GraphError, match=r"'lod' is not a reactor .* Did you mean load\?"):
        graph_render.focus(AWKWARD, ["lod"])
    with pytest.raises(GraphError, match=r"'totl' .* Did you mean total\?"):
        graph_render.focus(AWKWARD, ["totl"])
    with pytest.raises(GraphError, match=r"No reactor of p\.py is known to send 'raw'"):
        graph_render.focus(AWKWARD, ["raw"])


def test_format_comes_from_the_option_else_the_suffix_and_unknown_ones_are_refused() -> None:
    assert graph_render.choose_format(None, None) == "text"
    assert graph_render.choose_format(None, Path("g.SVG")) == "svg"
    assert graph_render.choose_format(None, Path("g.mmd")) == "mermaid"
    assert graph_render.choose_format("dot", Path("g.svg")) == "dot"
    with pytest.raises(GraphError, match=r"Unknown graph format 'png'\. Use one of text"):
        graph_render.choose_format("png", None)
    with pytest.raises(GraphError, match=r"format of g\.png from its suffix"):
        graph_render.choose_format(None, Path("g.png"))


# -- `pyplantd graph` on a real pipeline, through its life --------------------------------------
PIPELINE = """
import os
import time

import numpy as np
from sidefx import log_run

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def load(pipe, config):
    log_run('load')
    pipe.send('data', np.arange(config.n, dtype=float))


@ReactorFunc
def process(pipe):
    data = yield pipe.receive('data')
    log_run('process')
    pipe.send('result', data * 2)


@ReactorFunc
def report(pipe):
    result = yield pipe.receive('result')
    log_run('report')
    deadline = time.monotonic() + 60
    while os.path.exists('hold.flag') and time.monotonic() < deadline:
        time.sleep(0.01)
    if os.path.exists('fail.flag'):
        raise ValueError('report failed on purpose')
    pipe.send('total', float(result.sum()))


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.set_config({'n': 1000})
        plant.run_reactor(report)
"""
STATIC_EDGES = {("load", "process", "data"), ("process", "report", "result"),
                ("report", None, "total")}  # fmt: skip


@pytest.fixture
def pipeline(project: Project) -> Project:
    project.write("sidefx.py", LOG_HELPER)
    project.write("pipeline.py", PIPELINE)
    return project


def pyplantd_graph(project: Project, *args: str, env: dict[str, str] | None = None) -> Any:
    return project.cli("graph", *args, env={"PYTHONPATH": PYTHONPATH, **(env or {})})


def draw(project: Project, *args: str) -> tuple[Drawn, str]:
    """`pyplantd graph` in text (stdout), DOT and Mermaid (-o, format from the suffix), read back
    and checked to agree on every node's state and timing and on every edge; the text read back
    and as printed."""
    text = pyplantd_graph(project, "pipeline.py", *args)
    assert text.returncode == 0, text.stderr
    drawn = {"text": read_text(text.stdout)}
    for fmt, name in (("dot", "graph.dot"), ("mermaid", "graph.mmd")):
        written = pyplantd_graph(project, "pipeline.py", "-o", name, *args)
        assert written.returncode == 0, written.stderr
        assert written.stdout.startswith(f"{name}: 3 reactors, 3 ingredients ({fmt})")
        drawn[fmt] = READERS[fmt]((project.root / name).read_text())
    first = drawn["text"]
    for fmt in ("dot", "mermaid"):
        other = drawn[fmt]
        assert {n: v[1:3] for n, v in other.nodes.items()} == {
            n: v[1:3] for n, v in first.nodes.items()
        }, fmt
        assert (other.edges, other.static) == (first.edges, first.static), fmt
    return first, text.stdout


def stored(project: Project) -> tuple[dict[str, int], dict[str, float]]:
    """Ingredient sizes and reactors' last durations, as the manifest records them."""
    with sqlite3.connect(project.plant_dir / "pyplantd.db") as db:
        sizes = dict(db.execute("SELECT name, size FROM ingredients").fetchall())
        bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM reactors")]
    return sizes, {body["name"]: body["duration"] for body in bodies}


def test_pyplantd_graph_before_any_run_draws_static_edges_and_creates_nothing(
    pipeline: Project,
) -> None:
    text, printed = draw(pipeline)
    assert {name: node[1:] for name, node in text.nodes.items()} == {
        name: ["never ran"] for name in ("load", "process", "report")
    }
    assert text.edges == set() and text.static == STATIC_EDGES
    assert f"note: {model_notes.ALL_STATIC}" in printed.splitlines()
    assert not pipeline.plant_dir.exists(), "drawing the graph created the plant dir"
    assert not (pipeline.root / "ran.log").exists(), "drawing the graph ran a reactor"


def test_pyplantd_graph_after_runs_edits_and_a_failure_says_what_is_fresh_stale_or_failed(
    pipeline: Project,
) -> None:
    assert pipeline.python().ran == ["load", "process", "report"]
    sizes, durations = stored(pipeline)
    size = {name: graph_render.size_text(value) for name, value in sizes.items()}
    text, printed = draw(pipeline)
    assert text.nodes == {
        name: [name, "fresh", graph_render.duration_text(durations[name])]
        for name in ("load", "process", "report")
    }
    assert text.static == set()
    assert text.edges == {
        ("load", "process", f"data {size['data']}"),
        ("process", "report", f"result {size['result']}"),
        ("report", None, f"total {size['total']}"),
    }
    assert "note:" not in printed

    # an edit: the graph says what a run will redo, and the run redoes exactly that
    pipeline.edit("pipeline.py", "data * 2", "data * 3")
    text = draw(pipeline)[0]
    assert [text.nodes[n][1] for n in ("load", "process", "report")] == ["fresh", "stale", "stale"]
    assert text.nodes["process"][3] == "code changed (process)"
    assert text.nodes["report"][3] == "input 'result' may change (process runs)"
    assert pipeline.python().ran == ["process", "report"]

    pipeline.edit("pipeline.py", "{'n': 1000}", "{'n': 2000}")
    text = draw(pipeline)[0]
    assert text.nodes["load"][1:] == [
        "stale", graph_render.duration_text(durations["load"]), "param 'n' changed 1000 -> 2000"
    ]  # fmt: skip
    assert text.nodes["process"][3] == "input 'data' may change (load runs)"
    assert pipeline.python().ran == ["load", "process", "report"]

    # a failure, and its fix
    (pipeline.root / "fail.flag").write_text("")
    assert pipeline.python().returncode != 0
    text = draw(pipeline)[0]
    assert [text.nodes[n][1] for n in ("load", "process", "report")] == ["fresh", "fresh", "failed"]
    assert text.nodes["report"][3] == "last run failed: ValueError: report failed on purpose"
    (pipeline.root / "fail.flag").unlink()
    assert pipeline.python().ran == ["report"]
    assert read_text(pyplantd_graph(pipeline, "pipeline.py").stdout).nodes["report"][1] == "fresh"


def test_a_reactor_whose_input_changed_since_it_ran_is_stale_in_the_graph_and_the_dry_run(
    pipeline: Project,
) -> None:
    assert pipeline.python().returncode == 0
    pipeline.edit("pipeline.py", "{'n': 1000}", "{'n': 2000}")
    assert pipeline.cli("run", "pipeline.py", "--target", "load").ran == ["load"]
    text = draw(pipeline)[0]  # load is fresh, but process received its old data
    assert {name: node[1] for name, node in text.nodes.items()} == {
        "load": "fresh", "process": "stale", "report": "stale"
    }  # fmt: skip
    assert text.nodes["process"][3] == "input 'data' changed"
    assert text.nodes["report"][3] == "input 'result' may change (process may run)"
    plan = pipeline.cli("run", "pipeline.py", "--dry-run")
    assert re.search(r"process\s+│ may run │.*│ input 'data' changed", plan.stdout), plan.stdout
    assert pipeline.python().ran == ["process", "report"]


def test_pyplantd_graph_of_a_new_reactor_mixes_recorded_and_static_edges(
    pipeline: Project,
) -> None:
    assert pipeline.python().returncode == 0
    pipeline.edit("pipeline.py", "\n\nif __name__", """

@ReactorFunc
def audit(pipe):
    total = yield pipe.receive('total')
    pipe.send('audit', total > 0)


if __name__""")  # fmt: skip
    result = pyplantd_graph(pipeline, "pipeline.py")
    text = read_text(result.stdout)
    assert text.nodes["audit"][1:] == ["never ran"]
    assert text.nodes["report"][1] == "fresh"
    size = {k: graph_render.size_text(v) for k, v in stored(pipeline)[0].items()}
    assert text.static == {("report", "audit", f"total {size['total']}"), ("audit", None, "audit")}
    assert ("process", "report", f"result {size['result']}") in text.edges
    assert f"note: {model_notes.SOME_STATIC}" in result.stdout.splitlines()


def test_pyplantd_graph_target_narrows_the_picture_and_suggests_close_names(
    pipeline: Project,
) -> None:
    focused = read_text(pyplantd_graph(pipeline, "pipeline.py", "-t", "process").stdout)
    assert set(focused.nodes) == {"load", "process"}
    wrong = pyplantd_graph(pipeline, "pipeline.py", "--target", "reprot")
    assert wrong.returncode == 2
    assert (
        "Error: 'reprot' is not a reactor or an ingredient of pipeline.py. Did you mean report?"
    ) in wrong.stderr
    bad = pyplantd_graph(pipeline, "pipeline.py", "-o", "graph.png")
    assert bad.returncode == 2 and "Name it .txt, .mmd, .dot, .svg or .json" in bad.stderr
    assert not (pipeline.root / "graph.png").exists()
    missing = pyplantd_graph(pipeline, "nowhere.py")
    assert missing.returncode == 2 and "pipeline script nowhere.py does not exist" in missing.stderr


def read_svg(path: Path) -> dict[str, list[str]]:
    """The text lines of every node and edge group of an SVG that Graphviz drew, by title."""
    space = {"svg": "http://www.w3.org/2000/svg"}
    groups = ET.parse(path).getroot().iterfind(".//svg:g[@class]", space)
    return {
        f"{g.get('class')} {g.findtext('svg:title', '', space)}": [
            t.text or "" for t in g.iterfind("svg:text", space)
        ]
        for g in groups
        if g.get("class") in ("node", "edge")
    }


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_pyplantd_graph_svg_is_drawn_by_graphviz_with_states_and_sizes(pipeline: Project) -> None:
    assert pipeline.python().returncode == 0
    sizes, durations = stored(pipeline)
    result = pyplantd_graph(pipeline, "pipeline.py", "--format", "svg", "-o", "pipeline.svg")
    assert result.returncode == 0, result.stderr
    groups = read_svg(pipeline.root / "pipeline.svg")
    duration = graph_render.duration_text
    assert groups["node r0"] == ["load", f"fresh · {duration(durations['load'])}"]
    assert groups["node r2"] == ["report", f"fresh · {duration(durations['report'])}"]
    assert groups["edge r0->r1"] == ["data", graph_render.size_text(sizes["data"])]
    assert groups["edge r1->r2"] == ["result", graph_render.size_text(sizes["result"])]
    assert groups["edge r2->x0"] == ["total", graph_render.size_text(sizes["total"])]


def test_pyplantd_graph_svg_without_graphviz_says_how_to_get_it(
    pipeline: Project, tmp_path: Path
) -> None:
    empty = tmp_path / "bin-without-dot"
    empty.mkdir()
    result = pyplantd_graph(pipeline, "pipeline.py", "-o", "g.svg", env={"PATH": str(empty)})
    assert result.returncode == 2
    assert "Error: Graphviz's `dot` is not installed (not found on PATH)" in result.stderr
    assert "sudo apt-get install graphviz" in result.stderr
    assert "--format dot" in result.stderr
    assert not (pipeline.root / "g.svg").exists()


# -- `pyplant graph`: live, from a real daemon ---------------------------------------------------
def pyplant(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """The client alone on the path: it must draw without pyplantd."""
    return subprocess.run(
        [sys.executable, "-m", "pyplant_client.cli", *args, "--dir", str(project.root)],
        cwd=project.root, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
        env={**os.environ, "PYTHONPATH": str(REPO / "client"), "COLUMNS": "200"},
    )  # fmt: skip


def live_model(project: Project) -> dict[str, Any]:
    result = pyplant(project, "graph", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def live_text(project: Project) -> tuple[Drawn, str]:
    result = pyplant(project, "graph")
    assert result.returncode == 0, result.stderr
    return read_text(result.stdout), result.stdout


@pytest.fixture
def daemon(pipeline: Project) -> Iterator[Daemon]:
    """A real `pyplantd watch pipeline.py --target process`, stopped (and shown) at teardown."""
    started = Daemon(pipeline.root, "--target", "process")
    try:
        yield started
    finally:
        code = started.stop()
        print(f"--- daemon {started.proc.pid} (exit {code}) printed:\n{started.transcript()}")


def test_pyplant_graph_draws_the_daemons_live_states(pipeline: Project, daemon: Daemon) -> None:
    daemon.next_run()
    text, printed = live_text(pipeline)
    assert [text.nodes[n][1] for n in ("load", "process", "report")] == [
        "fresh", "fresh", "never ran"
    ]  # fmt: skip
    assert text.nodes["process"][3] == "ran: target; new reactor (never ran)"
    sizes = {k: graph_render.size_text(v) for k, v in stored(pipeline)[0].items()}
    assert text.edges == {("load", "process", f"data {sizes['data']}")}
    assert text.static == {("process", "report", f"result {sizes['result']}"),
                           ("report", None, "total")}  # fmt: skip
    assert f"note: {model_notes.SOME_STATIC}" in printed.splitlines()

    # running, live: report holds until hold.flag goes
    (pipeline.root / "hold.flag").write_text("")
    running = subprocess.Popen(
        [sys.executable, "-m", "pyplant_client.cli", "run", "report", "--dir", str(pipeline.root)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "client")},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while (report := reactor_of(live_model(pipeline), "report"))["state"] != "running":
            assert time.monotonic() < deadline, report
            time.sleep(0.05)
        assert report["elapsed"] >= 0
        assert "Run 2 in progress (run requested)." in live_model(pipeline)["notes"]
    finally:
        (pipeline.root / "hold.flag").unlink()
        output, _ = running.communicate(timeout=SUBPROCESS_TIMEOUT)
    assert running.returncode == 0, output
    text, printed = live_text(pipeline)
    assert text.nodes["report"][1] == "fresh"
    sizes = {k: graph_render.size_text(v) for k, v in stored(pipeline)[0].items()}
    assert text.static == set()
    assert ("report", None, f"total {sizes['total']}") in text.edges

    # the one-shot command cannot open a plant the daemon holds, and says where to look
    held = pyplantd_graph(pipeline, "pipeline.py")
    assert held.returncode == 2
    assert "in use by another process" in held.stderr and "`pyplant graph`" in held.stderr

    # a failure, then a save that does not load
    (pipeline.root / "fail.flag").write_text("")
    assert pyplant(pipeline, "run", "report").returncode == 1
    text, _ = live_text(pipeline)
    assert text.nodes["report"][1] == "failed"
    assert text.nodes["report"][-1].endswith("ValueError: report failed on purpose")
    mark = daemon.mark()
    pipeline.edit("pipeline.py", "def report(pipe):", "def report(pipe)")
    daemon.wait_for("the script did not load", since=mark)
    model = live_model(pipeline)
    assert any(
        note.startswith("The last save did not load (") and "pipeline.py:" in note
        for note in model["notes"]
    ), model["notes"]
    assert reactor_of(model, "report")["state"] == "failed"  # the last good run's states

    # the other formats, and names
    mermaid = pyplant(pipeline, "graph", "-o", "live.mmd")
    assert mermaid.returncode == 0, mermaid.stderr
    drawn = read_mermaid((pipeline.root / "live.mmd").read_text())
    assert {n: v[1] for n, v in drawn.nodes.items()} == {
        "load": "fresh", "process": "fresh", "report": "failed"
    }  # fmt: skip
    assert drawn.edges == text.edges
    wrong = pyplant(pipeline, "graph", "-t", "proces")
    assert wrong.returncode == 2 and "Did you mean process?" in wrong.stderr


def reactor_of(model: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in model["reactors"] if r["name"] == name)


def test_pyplant_graph_without_a_daemon_exits_2(tmp_path: Path) -> None:
    project = Project(tmp_path)
    result = pyplant(project, "graph")
    assert result.returncode == 2 and "Error: " in result.stderr


def test_readme_sample_is_what_pyplantd_graph_prints_for_the_quickstart(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## A picture of the pipeline") :]
    start = section.index("```\nquickstart.py") + len("```\n")
    sample = section[start:].split("```")[0].splitlines()
    script = tmp_path / "quickstart.py"
    shutil.copy(REPO / "examples" / "quickstart.py", script)
    plant = str(tmp_path / "plant")
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "PYPLANTD_QUICKSTART_DIR": plant}
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                         capture_output=True, timeout=SUBPROCESS_TIMEOUT)  # fmt: skip
    assert run.returncode == 0, run.stderr
    script.write_text(script.read_text().replace('self.color = "green"', 'self.color = "red"'))
    graph = subprocess.run(
        [sys.executable, "-m", "pyplantd.cli", "graph", "quickstart.py"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
    )  # fmt: skip
    assert graph.returncode == 0, graph.stderr

    def shape(line: str) -> str:  # durations and the plant dir vary
        line = line.replace(plant, "/tmp/pyplantd-quickstart")
        return re.sub(r"\s+[\d.]+ (ms|s)\b", " <duration>", line)

    assert [shape(line) for line in graph.stdout.splitlines()] == [shape(s) for s in sample]


def test_pyplantd_graph_colours_states_on_a_terminal_only(pipeline: Project) -> None:
    import pty

    def on_a_terminal(env: dict[str, str]) -> str:
        leader, follower = pty.openpty()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "pyplantd.cli", "graph", "pipeline.py"],
                cwd=pipeline.root, stdout=follower, stderr=subprocess.PIPE, timeout=60,
                env={**os.environ, "PYTHONPATH": PYTHONPATH, **env},
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            os.close(follower)
            follower = -1
            chunks = []
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the terminal's other side is closed and drained
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks).decode()
        finally:
            os.close(leader)
            if follower >= 0:
                os.close(follower)

    coloured = on_a_terminal({})
    assert "\x1b[2mnever ran\x1b[0m" in coloured
    assert "\x1b[" not in on_a_terminal({"NO_COLOR": "1"})
    assert "\x1b[" not in pyplantd_graph(pipeline, "pipeline.py").stdout  # a pipe
    unwritable = pyplantd_graph(pipeline, "pipeline.py", "-o", "missing/graph.txt")
    assert unwritable.returncode == 2
    assert "Cannot write the graph to missing/graph.txt: No such file or directory" in (
        unwritable.stderr
    )
