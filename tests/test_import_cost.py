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
