"""What `import pyplantd` and a one-shot run load: nothing they do not use."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from conftest import REPO, SUBPROCESS_TIMEOUT

HEAVY = ("h5py", "rich", "typer", "zmq", "watchdog")


def loaded_after(code: str, cwd=None) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(m for m in sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=SUBPROCESS_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_import_pyplantd_loads_only_its_import_hook():
    modules = loaded_after("import pyplantd")
    assert not {*HEAVY, "numpy"} & set(modules)
    assert {m for m in modules if m.startswith("pyplantd")} == {
        "pyplantd", "pyplantd.errors", "pyplantd.signatures", "pyplantd.signatures.origins",
        "pyplantd.signatures.sources",
    }  # fmt: skip


def test_the_whole_api_loads_no_h5py_rich_typer_or_zmq():
    modules = loaded_after("from pyplantd import *\nPlant, ReactorFunc, specs, test, utils")
    assert not set(HEAVY) & set(modules)


def test_the_star_import_loads_no_engine():
    """A script's `from pyplantd import *` (or a module of reactors) binds every public name
    but imports the store, the scheduler and the signatures only when a Plant is made."""
    modules = set(loaded_after("import numpy\nfrom pyplantd import *\nPlant, Pipework, utils"))
    engine = {
        "pyplantd.store.plant_store", "pyplantd.store.manifest", "pyplantd.store.writer",
        "pyplantd.store.reader", "pyplantd.run.scheduler", "pyplantd.run.judge",
        "pyplantd.run.executors", "pyplantd.signatures.signature", "pyplantd.hosting.host",
        "pyplantd.compat.allocation", "logging", "sqlite3", "difflib",
    }  # fmt: skip
    assert not engine & modules


PIPELINE = """
import os, sys
import numpy as np
from pyplantd import *

@ReactorFunc
def load(pipe):
    pipe.send("raw", np.arange(6.0), Ingredient.Type.array)
    pipe.send("meta", {"rows": 6})

@ReactorFunc
def scale(pipe):
    raw = yield pipe.receive("raw")
    meta = yield pipe.receive("meta")
    pipe.send("scaled", raw * meta["rows"], Ingredient.Type.array)

@ReactorFunc
def total(pipe):
    scaled = yield pipe.receive("scaled")
    pipe.send("total", float(scaled.sum()))

with Plant(os.path.join(os.path.dirname(os.path.abspath(__file__)), "plant")) as plant:
    plant.run_reactor(total)
    print("total", plant.fetch_ingredient("total"), [d.status for d in plant.last_run])
print("MODULES", " ".join(sorted(sys.modules)))
"""

# What a one-shot `python pipeline.py` never uses: the daemon, the CLI and its terminal views,
# other executors and their transports, dry-run planning, the read-only reader, PyPlant-spec
# allocations, and the third-party packages only those bring in...
UNUSED_PARTS = {
    "zmq", "rich", "typer", "watchdog", "dask", "distributed", "pyplant_client",
    "pyplantd.daemon", "pyplantd.cli", "pyplantd.graph", "pyplantd.terminal", "pyplantd.settings",
    "pyplantd.run.remote", "pyplantd.run.planner", "pyplantd.run.walk",
    "pyplantd.run.executors.threads", "pyplantd.run.executors.dask",
    "pyplantd.run.executors.dask_worker", "pyplantd.run.executors.dask_cluster",
    "pyplantd.hosting.oneshot", "pyplantd.hosting.daemon_link", "pyplantd.hosting.probe",
    "pyplantd.hosting.script", "pyplantd.compat.allocation", "pyplantd.compat.spec_adapter",
    "pyplantd.store.reader", "pyplantd.store.listing",
}  # fmt: skip
# ...nor the stdlib modules only those use.
UNUSED_STDLIB = {
    "asyncio", "multiprocessing", "concurrent.futures", "email", "http", "urllib.request",
    "socket", "argparse", "tarfile", "tempfile", "difflib",
}  # fmt: skip


def one_shot_modules(script) -> tuple[str, set[str]]:
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=SUBPROCESS_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result, modules = done.stdout.strip().splitlines()
    return result, set(modules.split()[1:])


def test_a_one_shot_run_loads_nothing_it_does_not_use(tmp_path):
    script = tmp_path / "pipeline.py"
    script.write_text(PIPELINE)
    result, cold = one_shot_modules(script)
    assert result == "total 90.0 ['ran', 'ran', 'ran']"
    result, again = one_shot_modules(script)  # nothing changed: only the target runs
    assert result == "total 90.0 ['cached', 'cached', 'ran']"
    assert not {m for m in cold if m in UNUSED_PARTS or m.startswith("pyplantd.daemon.")}
    # The first run on a machine fills the package-version cache, reading installed packages'
    # metadata (importlib.metadata needs email and socket, the cache file tempfile): the stdlib
    # is checked on the run after it, unless a folder of sys.path changed too recently to be
    # cached (a package installed in the last 2 seconds), when it is read again.
    unused = UNUSED_PARTS | UNUSED_STDLIB
    if "importlib.metadata" in again:
        unused -= {"email", "socket", "tempfile"}
    assert not {m for m in again if m in unused}
    # Arrays of common dtypes are written from header templates and read by memory maps
    assert "h5py" not in cold and "h5py" not in again


BROKEN_ENGINE = """
import os, sys
sys.modules["sqlite3"] = None  # an interpreter built without it: the store cannot load
from pyplantd import *

@ReactorFunc
def make(pipe):
    print("make ran")
    pipe.send("x", 1)

print("imported")
try:
    Plant(sys.argv[1])
except ImportError as err:
    print("Plant:", type(err).__name__, err.name, os.path.exists(sys.argv[1]))
"""


def test_an_engine_that_cannot_load_fails_at_plant_with_the_import_error(tmp_path):
    """The engine loads at `Plant(...)`: an import it needs that fails is Python's own error
    there, before any reactor runs or the plant dir is made, not a later, stranger failure."""
    script = tmp_path / "pipeline.py"
    script.write_text(BROKEN_ENGINE)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "plant")], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=SUBPROCESS_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["imported", "Plant: ModuleNotFoundError sqlite3 False"]


SCRIPT = """
import sys
from pyplantd.signatures import sources

def f():
    return 1

print(sources._key(__file__) in sources._EXACT, sources._key(__file__) in sources._LATE)
"""


def run_script(path) -> str:
    done = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=SUBPROCESS_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_script_unchanged_since_its_process_started_is_not_compiled_again(tmp_path):
    """Python compiled it from that very file: no second compile to check it."""
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT)
    back = time.time() - 5
    os.utime(script, (back, back))
    time.sleep(0.1)  # its ctime too must be older than the process
    assert run_script(script) == "True False"


EDITS_ITSELF = """
import os, sys, time
here = os.path.abspath(__file__)
with open(here) as handle:
    text = handle.read()
with open(here, "w") as handle:  # saved again after Python read it: the code that runs differs
    handle.write(text.replace("return 1", "return 2"))
from pyplantd.signatures import sources
from pyplantd.errors import SourceChangedError

def f():
    return 1

try:
    sources.check(f.__code__)
    print("accepted")
except SourceChangedError:
    print("refused")
"""


def test_a_script_saved_after_python_read_it_is_still_checked(tmp_path):
    script = tmp_path / "pipeline.py"
    script.write_text(EDITS_ITSELF)
    assert run_script(script) == "refused"
