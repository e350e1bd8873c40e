"""End to end, the oracle of change detection: after each edit, the value served by a one-shot
`python pipeline.py` and by a real `pyplantd watch` after a real save equals what
`python pipeline.py` computes in an empty plant dir.

Every case is a small project whose reactors send 'value'; the `report` reactor prints it as
`RESULT <repr>`. The daemon serves the value its latest run printed (a warm `report` keeps it).
"""

from __future__ import annotations

import json
import os
import py_compile
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO, Project, Result
from test_daemon import Daemon, save_atomic, start_daemon  # noqa: F401 (a fixture)

MAIN = """

@ReactorFunc
def report(pipe):
    value = yield pipe.receive('value')
    print('RESULT', repr(value.tolist() if hasattr(value, 'tolist') else value))


if __name__ == '__main__':
    import os

    with Plant(os.environ.get('PLANT', 'plant')) as plant:
        plant.run_reactor(report)
"""
HEAD = "from pyplantd import Plant, ReactorFunc, SubreactorFunc\n"
RESULT = re.compile(r"RESULT (.*)$")


@dataclass
class Edit:
    file: str
    old: str
    new: str
    why: str = ""  # a reason the daemon must give for this save, if any


@dataclass
class Case:
    name: str
    pipeline: str  # the reactors sending 'value'; imports, report and main are added
    edits: list[Edit]
    modules: dict[str, str] = field(default_factory=dict)  # file name -> text
    # modules in a folder outside the project, on sys.path: "outside/name.py" in an Edit
    outside: dict[str, str] = field(default_factory=dict)


def _text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def outside_folder(project: Project) -> Path:
    return project.root.parent / f"{project.root.name}-outside"


def path_of(project: Project, name: str) -> Path:
    folder, _, rest = name.partition("/")
    return outside_folder(project) / rest if folder == "outside" else project.root / name


def setup(project: Project, case: Case) -> None:
    head = HEAD
    if case.outside:
        head = f"import sys\nsys.path.insert(0, {str(outside_folder(project))!r})\n" + head
    project.write("pipeline.py", head + _text(case.pipeline) + MAIN)
    for name, text in case.modules.items():
        project.write(name, _text(text))
    for name, text in case.outside.items():
        path_of(project, f"outside/{name}").parent.mkdir(exist_ok=True)
        path_of(project, f"outside/{name}").write_text(_text(text))


def apply(project: Project, edit: Edit, save: Callable[[Path, str], None]) -> None:
    path = path_of(project, edit.file)
    text = path.read_text()
    assert edit.old in text, f"{edit.old!r} not in {edit.file}"
    save(path, text.replace(edit.old, _text(edit.new) if "\n" in edit.new else edit.new))


def result_of(run: Result) -> str:
    found = [m[1] for line in run.stdout.splitlines() if (m := RESULT.search(line))]
    assert run.returncode == 0 and found, run.stdout + run.stderr
    return found[-1]


def fresh(project: Project, case: Case, tmp: Path) -> str:
    """What `python pipeline.py` computes now, in an empty plant dir."""
    tmp.mkdir(parents=True, exist_ok=True)
    count = len(list(tmp.iterdir()))
    empty = tmp / f"fresh-{count}"
    return result_of(project.python(env={"PLANT": str(empty)}))


def write_now(path: Path, text: str) -> None:
    path.write_text(text)


CASES = [
    # -- A1: module-level values built from other names ----------------------------------------
    Case(
        "array_built_from_a_constant",
        """
        import settings

        @ReactorFunc
        def compute(pipe):
            pipe.send('value', settings.GRID * 2)
        """,
        [Edit("settings.py", "N = 3", "N = 5", "compute: constant N in settings.py changed")],
        {"settings.py": "import numpy as np\nN = 3\nGRID = np.linspace(0, 1, N)\n"},
    ),
    Case(
        "value_made_by_a_helper_that_calls_another",
        """
        from helpers import CFG

        @ReactorFunc
        def compute(pipe):
            pipe.send('value', CFG['scale'])
        """,
        [Edit("helpers.py", "return 2", "return 3", "compute: helper base() in helpers.py")],
        {
            "helpers.py": """
            def base():
                return 2
            def make_cfg():
                return {'scale': base()}
            CFG = make_cfg()
            """
        },
    ),
    Case(
        "dispatch_table",
        """
        from ops import OPS

        @ReactorFunc
        def compute(pipe):
            pipe.send('value', [OPS[k](10) for k in ('step', 'other', 'extra')])
        """,
        [
            Edit("ops.py", "x + 1", "x + 2", "compute: helper inc() in ops.py changed"),
            Edit("ops.py", "OPS['other'] = dec", "OPS['other'] = inc"),
            Edit("ops.py", "OPS.update(extra=inc)", "OPS.update(extra=dec)"),
        ],
        {
            "ops.py": """
            def inc(x):
                return x + 1
            def dec(x):
                return x - 1
            OPS = {'step': inc}
            OPS['other'] = dec
            OPS.update(extra=inc)
            """
        },
    ),
    Case(
        "instance_of_a_user_class_built_from_a_constant",
        """
        from params import P

        @ReactorFunc
        def compute(pipe):
            pipe.send('value', P.size)
        """,
        [
            Edit(
                "params.py", "SIZE = 3", "SIZE = 4", "compute: constant SIZE in params.py changed"
            ),
            Edit("params.py", "size * 2", "size * 3", "compute: class Params in params.py changed"),
        ],
        {
            "params.py": """
            class Params:
                def __init__(self, size):
                    self.size = size * 2
            SIZE = 3
            P = Params(SIZE)
            """
        },
    ),
    Case(
        "nested_containers_comprehensions_and_statements_after_the_definition",
        """
        import tables

        @ReactorFunc
        def compute(pipe):
            pipe.send('value', [tables.TABLE, tables.ACC, tables.FILLED])
        """,
        [
            Edit("tables.py", "BASE = 2", "BASE = 3", "constant BASE in tables.py changed"),
            Edit("tables.py", "ACC += [STEP]", "ACC += [STEP, STEP]"),
            Edit("tables.py", "STEP = 5", "STEP = 6", "constant STEP in tables.py changed"),
            Edit("tables.py", "for k in range(2):", "for k in range(3):"),
            Edit("tables.py", "FACTOR = 10", "FACTOR = 11", "constant FACTOR in tables.py"),
        ],
        {
            "tables.py": """
            BASE = 2
            STEP = 5
            FACTOR = 10
            TABLE = {k: [BASE * k, (BASE,)] for k in range(3)}
            ACC = [0]
            ACC += [STEP]
            FILLED = {}
            for k in range(2):
                FILLED[k] = k * FACTOR
            """
        },
    ),
    Case(
        "constant_imported_by_name_is_explained_where_it_lives",
        """
        from helpers import SCALE

        @ReactorFunc
        def compute(pipe):
            pipe.send('value', SCALE * 2)
        """,
        [Edit("helpers.py", "SCALE = 2", "SCALE = 3", "compute: constant SCALE in helpers.py")],
        {"helpers.py": "SCALE = 2\n"},
    ),
    # -- A2: factories and closures ------------------------------------------------------------
    Case(
        "reactor_made_by_a_factory",
        """
        BASE = 1

        def make_loader(n):
            data = [n] * 3
            def loader(pipe):
                pipe.send('value', [n, data])
            return loader

        compute = ReactorFunc(make_loader(2 + BASE))
        """,
        [
            Edit(
                "pipeline.py",
                "make_loader(2 + BASE)",
                "make_loader(3 + BASE)",
                "loader: compute in pipeline.py changed (type function: counted by the statements",
            ),
            Edit("pipeline.py", "[n] * 3", "[n] * 4", "helper make_loader() in pipeline.py"),
            Edit("pipeline.py", "BASE = 1", "BASE = 5", "constant BASE in pipeline.py changed"),
        ],
    ),
    Case(
        "default_values_given_by_a_factory",
        """
        from helpers import SCALE, smooth

        @ReactorFunc
        def compute(pipe):
            smoothed = yield from smooth(pipe, 5)
            pipe.send('value', [SCALE(5), smoothed])
        """,
        [
            Edit(
                "helpers.py",
                "make_scaler(2)",
                "make_scaler(3)",
                "compute: SCALE in helpers.py changed (type function",
            ),
            Edit(
                "helpers.py",
                "make_sub(7)",
                "make_sub(8)",
                "compute: smooth in helpers.py changed (type function",
            ),
        ],
        {
            "helpers.py": """
            from pyplantd import SubreactorFunc

            def make_scaler(k):
                def scale(x, factor=k):
                    return x * factor
                return scale

            def make_sub(k):
                @SubreactorFunc
                def sub(pipe, x, *, factor=k):
                    return x * factor
                return sub

            SCALE = make_scaler(2)
            smooth = make_sub(7)
            """
        },
    ),
    # a constant rebound after a value was made from its earlier binding
    Case(
        "value_made_from_a_constant_that_is_rebound_later",
        """
        K = 34
        A = [K * 2, 1]

        @ReactorFunc
        def compute(pipe):
            pipe.send('value', sum(A))

        K = 87
        """,
        [Edit("pipeline.py", "K = 34", "K = 49", "compute: constant K in pipeline.py changed")],
    ),
    # a class attribute set through a dotted path in another module, after the class
    Case(
        "class_attribute_set_through_a_package_path_after_the_class",
        """
        import pkg.tools

        pkg.tools.Scaled.SCALE = 78

        @ReactorFunc
        def compute(pipe):
            pipe.send('value', pkg.tools.Scaled(2).value())
        """,
        [Edit("pipeline.py", "SCALE = 78", "SCALE = 79", "compute: class Scaled in tools.py")],
        {
            "pkg/__init__.py": "",
            "pkg/tools.py": """
            class Scaled:
                SCALE = 90

                def __init__(self, v):
                    self.v = v

                def value(self):
                    return self.v * self.SCALE
            """,
        },
    ),
    # -- A5: what is hashed is what runs ---------------------------------------------------------
    Case(
        "helper_module_outside_the_project_on_sys_path",
        """
        from shared import scale

        @ReactorFunc
        def compute(pipe):
            pipe.send('value', scale(10))
        """,
        [
            Edit("outside/shared.py", "x * 2", "x * 3", "compute: helper scale() in shared.py"),
            Edit("outside/shared.py", "x * 3", "x * 4", "compute: helper scale() in shared.py"),
        ],
        outside={"shared.py": "def scale(x):\n    return x * 2\n"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_one_shot_serves_what_a_fresh_run_computes(
    project: Project, case: Case, tmp_path_factory: pytest.TempPathFactory
) -> None:
    setup(project, case)
    scratch = tmp_path_factory.mktemp("fresh")
    assert result_of(project.python()) == fresh(project, case, scratch)
    for edit in case.edits:
        apply(project, edit, write_now)
        served = result_of(project.python())
        assert served == fresh(project, case, scratch), f"stale after {edit}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_daemon_serves_what_a_fresh_run_computes(
    project: Project,
    case: Case,
    start_daemon: Callable[..., Daemon],  # noqa: F811 (the fixture imported above)
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    setup(project, case)
    scratch = tmp_path_factory.mktemp("fresh")
    daemon = start_daemon()
    served = ""
    run = daemon.next_run()
    served = _served(run.lines, served)
    assert served == fresh(project, case, scratch), run
    if case.outside:  # it says which folders it watches
        outside = re.escape(str(outside_folder(project)))
        daemon.wait_for(rf"^watching your modules in {re.escape(str(project.root))} and, "
                        rf"outside the project, in {outside}$")  # fmt: skip
    for edit in case.edits:
        apply(project, edit, save_atomic)
        run = daemon.next_run()
        served = _served(run.lines, served)
        assert served == fresh(project, case, scratch), f"stale after {edit}:\n{run}"
        assert edit.why in run.summary, run
    daemon.stop()
    # What the daemon recorded is what a later one-shot serves.
    assert result_of(project.python()) == fresh(project, case, scratch)


def _served(lines: list[str], before: str) -> str:
    found = [m[1] for line in lines if line.startswith("[report]") and (m := RESULT.search(line))]
    return found[-1] if found else before


# -- A5: code loaded from a stale .pyc (same size, same mtime) ---------------------------------
STALE_PIPELINE = """
{before}from pyplantd import Plant, ReactorFunc
{after}

@ReactorFunc
def compute(pipe):
    pipe.send('value', helpers.scale(10))
"""


def _make_stale(project: Project, import_before_pyplantd: bool) -> Path:
    """helpers.py with a .pyc of `x * 2` while the file, same size and mtime, says `x * 3`."""
    imports = ("import helpers\n", "") if import_before_pyplantd else ("", "import helpers\n")
    before, after = imports
    case = Case("stale", STALE_PIPELINE.format(before=before, after=after), [])
    setup(project, case)
    project.write("pipeline.py", (project.root / "pipeline.py").read_text().replace(HEAD, ""))
    helpers = project.write("helpers.py", "def scale(x):\n    return x * 2\n")
    stamp = helpers.stat().st_mtime_ns
    py_compile.compile(str(helpers), doraise=True)  # a timestamp .pyc, as Python writes them
    helpers.write_text("def scale(x):\n    return x * 3\n")
    os.utime(helpers, ns=(stamp, stamp))
    return helpers


def test_module_imported_after_pyplantd_runs_its_file_not_a_stale_pyc(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    helpers = _make_stale(project, import_before_pyplantd=False)
    scratch = tmp_path_factory.mktemp("fresh")
    case = Case("stale", "", [])
    assert result_of(project.python()) == "30"
    later = helpers.stat().st_mtime_ns + 2_000_000_000  # .pyc files keep whole seconds
    os.utime(helpers, ns=(later, later))  # a later save: the .pyc is stale for Python too
    assert result_of(project.python()) == fresh(project, case, scratch) == "30"


def test_stale_code_imported_before_pyplantd_is_refused_not_recorded(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    helpers = _make_stale(project, import_before_pyplantd=True)
    scratch = tmp_path_factory.mktemp("fresh")
    refused = project.python()
    assert refused.returncode != 0
    assert "SourceChangedError" in refused.stderr and "helpers.py changed" in refused.stderr
    later = helpers.stat().st_mtime_ns + 2_000_000_000  # .pyc files keep whole seconds
    os.utime(helpers, ns=(later, later))
    assert result_of(project.python()) == fresh(project, Case("stale", "", []), scratch) == "30"


# -- A6: notebooks -----------------------------------------------------------------------------
NOTEBOOK = [
    "from pyplantd import Plant, ReactorFunc",
    "SCALE = 2\nCFG = {'k': 1}",
    "@ReactorFunc\ndef load(pipe):\n    pipe.send('value', [1, SCALE, CFG['k']])\n\n"
    "@ReactorFunc\ndef report(pipe):\n    value = yield pipe.receive('value')\n"
    "    print('RESULT', value)",
    "plant = Plant('plant')\nplant.run_reactor(report)",
    "@ReactorFunc\ndef load(pipe):\n    pipe.send('value', [10, SCALE, CFG['k']])",
    "plant.run_reactor(report)",  # the same Plant
    "plant.close()\nwith Plant('plant') as again:\n    again.run_reactor(report)",  # a new one
    "SCALE = 3\nCFG = {'k': 5}",
    "with Plant('plant') as again:\n    again.run_reactor(report)",
    "W = [1]\n\n@ReactorFunc\ndef load(pipe):\n    pipe.send('value', [100, SCALE, CFG['k'], W])",
    "with Plant('plant') as again:\n    again.run_reactor(report)",
    "W = [2]",  # cells run in any order: the statements of load's own cell are not the truth
    "with Plant('plant') as again:\n    again.run_reactor(report)",
]


# Runs the notebook in a real kernel, from a child process: jupyter's client keeps threads.
NOTEBOOK_DRIVER = """
import json, sys
import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

folder, cells = sys.argv[1], json.loads(sys.argv[2])
notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
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


def run_notebook(folder: Path, cells: list[str]) -> list[str]:
    """Each cell's printed text, the cells run in order in a real kernel in `folder`."""
    for module in ("nbformat", "nbclient", "ipykernel"):
        pytest.importorskip(module, reason=f"needs {module} (in the test extra)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-c", NOTEBOOK_DRIVER, str(folder), json.dumps(cells)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    outputs: list[str] = json.loads(run.stdout.splitlines()[-1])
    return outputs


def test_notebook_runs_the_latest_definition_of_a_reactor_and_the_current_values(
    tmp_path: Path,
) -> None:
    outputs = run_notebook(tmp_path, NOTEBOOK)
    results = [m[1] for text in outputs for line in text.splitlines() if (m := RESULT.search(line))]
    assert results == [
        "[1, 2, 1]", "[10, 2, 1]", "[10, 2, 1]", "[10, 3, 5]", "[100, 3, 5, [1]]",
        "[100, 3, 5, [2]]",
    ]  # fmt: skip
    told = [i for i, text in enumerate(outputs) if "'load' was defined again" in text]
    assert told == [4], outputs  # once, at the first redefinition
