"""End to end, a real `pyplantd watch`: the file a user must fix stays watched. A module whose
import fails (a syntax error, an exception at import time, in a module it imports, in a module
newly imported, in a module a reactor imports while it runs, or a module not written yet) is not
in sys.modules, yet the daemon must notice its fix and serve what a fresh run computes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Project
from test_change_detection import RESULT, fresh, result_of
from test_daemon import Daemon, save_atomic, save_in_place, start_daemon  # noqa: F401

NOT_LOADED = r"^saved {}: the script did not load; keeping the last good state$"
FAILED = r"^saved {}: .* ran .*failed"

PIPELINE = """
from pyplantd import Plant, ReactorFunc
IMPORTS


@ReactorFunc
def compute(pipe):
    pipe.send('value', VALUE)


@ReactorFunc
def report(pipe):
    value = yield pipe.receive('value')
    print('RESULT', repr(value))


if __name__ == '__main__':
    import os

    with Plant(os.environ.get('PLANT', 'plant')) as plant:
        plant.run_reactor(report)
"""


def pipeline(imports: str, value: str) -> str:
    return PIPELINE.replace("IMPORTS", imports).replace("VALUE", value)


@dataclass
class Breakage:
    """A project that loads, a save that breaks it, then a save that fixes it."""

    files: dict[str, str]  # file -> text at start
    broken: tuple[str, str]  # (file, text) saved to break it
    fixed: tuple[str, str]  # (file, text) saved to fix it
    failure: str = NOT_LOADED  # what the daemon says after the breaking save


SCALE = "from inner import base\n\ndef scale(x):\n    return x * base()\n"
USES_SCALE = pipeline("from helpers import scale", "scale(10)")
LAZY = pipeline("", "lazy.K").replace("    pipe.send", "    import lazy\n\n    pipe.send")
BREAKAGES = {
    "syntax_error": Breakage(
        {
            "pipeline.py": pipeline("from helpers import scale", "scale(10)"),
            "helpers.py": "def scale(x):\n    return x * 2\n",
        },
        ("helpers.py", "def scale(x):\n    return x * (2\n"),
        ("helpers.py", "def scale(x):\n    return x * 3\n"),
    ),
    "exception_at_import": Breakage(
        {"pipeline.py": USES_SCALE, "helpers.py": "def scale(x):\n    return x * 2\n"},
        ("helpers.py", "def scale(x):\n    return x * 2\n\nscale(None) + 1\n"),
        ("helpers.py", "def scale(x):\n    return x * 3\n"),
    ),
    "in_a_module_it_imports": Breakage(
        {"pipeline.py": USES_SCALE, "helpers.py": SCALE, "inner.py": "def base():\n    return 2\n"},
        ("inner.py", "def base(:\n    return 2\n"),
        ("inner.py", "def base():\n    return 4\n"),
    ),
    "newly_imported": Breakage(
        {"pipeline.py": pipeline("", "10"), "extra.py": "K = (1\n"},
        ("pipeline.py", pipeline("import extra", "extra.K")),
        ("extra.py", "K = 7\n"),
    ),
    "newly_imported_and_raising": Breakage(
        {"pipeline.py": pipeline("", "10"), "extra.py": "K = 1 / 0\n"},
        ("pipeline.py", pipeline("import extra", "extra.K")),
        ("extra.py", "K = 7\n"),
    ),
    "not_written_yet": Breakage(
        {"pipeline.py": pipeline("", "10")},
        ("pipeline.py", pipeline("import later", "later.K")),
        ("later.py", "K = 8\n"),
    ),
    "not_written_yet_in_a_package": Breakage(
        {"pipeline.py": pipeline("", "10"), "pkg/__init__.py": ""},
        ("pipeline.py", pipeline("from pkg import later", "later.K")),
        ("pkg/later.py", "K = 9\n"),
    ),
    "imported_by_a_reactor": Breakage(
        {"pipeline.py": LAZY, "lazy.py": "K = 1\n"},
        ("lazy.py", "K = (1\n"),
        ("lazy.py", "K = 5\n"),
        FAILED,
    ),
}


@pytest.mark.parametrize("case", list(BREAKAGES))
@pytest.mark.parametrize("save", [save_atomic, save_in_place], ids=["atomic", "in_place"])
def test_the_file_that_broke_the_load_stays_watched_until_it_is_fixed(
    project: Project,
    start_daemon: Callable[..., Daemon],  # noqa: F811 (the fixture imported above)
    tmp_path_factory: pytest.TempPathFactory,
    case: str,
    save: Callable[[Path, str], None],
) -> None:
    breakage = BREAKAGES[case]
    for name, text in breakage.files.items():
        project.write(name, text)
    scratch = tmp_path_factory.mktemp("fresh")
    daemon = start_daemon()
    run = daemon.next_run()
    assert _served(run.lines) == fresh(project, None, scratch), run

    name, text = breakage.broken
    since = daemon.mark()
    save(project.root / name, text)
    daemon.wait_for(breakage.failure.format(name.replace(".", r"\.")), since=since)
    if breakage.failure == FAILED:
        daemon.next_run()

    name, text = breakage.fixed
    path = project.root / name
    path.parent.mkdir(exist_ok=True)
    save(path, text)
    run = daemon.next_run()
    assert _served(run.lines) == fresh(project, None, scratch), run
    daemon.stop()
    assert result_of(project.python()) == fresh(project, None, scratch)


def _served(lines: list[str]) -> str:
    found = [m[1] for line in lines if line.startswith("[report]") and (m := RESULT.search(line))]
    assert found, "\n".join(lines)
    return found[-1]


def test_while_the_script_does_not_load_its_modules_stay_watched(
    project: Project,
    start_daemon: Callable[..., Daemon],  # noqa: F811 (the fixture imported above)
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    project.write("pipeline.py", USES_SCALE)
    project.write("helpers.py", "def scale(x):\n    return x * 2\n")
    scratch = tmp_path_factory.mktemp("fresh")
    daemon = start_daemon()
    assert _served(daemon.next_run().lines) == "20"

    since = daemon.mark()
    save_atomic(project.root / "pipeline.py", USES_SCALE.replace("scale(10)", "scale(10"))
    daemon.wait_for(NOT_LOADED.format(r"pipeline\.py"), since=since)
    since = daemon.mark()  # the script is broken, but a save of its module is a reload
    save_atomic(project.root / "helpers.py", "def scale(x):\n    return x * 3\n")
    daemon.wait_for(NOT_LOADED.format(r"helpers\.py"), since=since)

    save_atomic(project.root / "pipeline.py", USES_SCALE)
    run = daemon.next_run()
    assert _served(run.lines) == fresh(project, None, scratch) == "30", run


# The reactor saves the module the script newly imports while the run goes on, as a user would.
SAVED_DURING_THE_RUN = """
import os

from pyplantd import Plant, ReactorFunc
import extra


@ReactorFunc
def compute(pipe):
    if extra.K == 1:
        with open('extra.py.tmp', 'w') as handle:
            handle.write('K = 2\\n')
        os.replace('extra.py.tmp', 'extra.py')
    pipe.send('value', extra.K)


@ReactorFunc
def report(pipe):
    value = yield pipe.receive('value')
    print('RESULT', repr(value))


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(report)
"""


def test_a_module_saved_during_the_run_that_first_imported_it_is_seen(
    project: Project,
    start_daemon: Callable[..., Daemon],  # noqa: F811 (the fixture imported above)
) -> None:
    project.write("pipeline.py", pipeline("", "10"))
    project.write("extra.py", "K = 1\n")
    daemon = start_daemon()
    assert _served(daemon.next_run().lines) == "10"

    save_atomic(project.root / "pipeline.py", SAVED_DURING_THE_RUN)
    assert _served(daemon.next_run().lines) == "1"  # what extra.py held when it was imported
    run = daemon.next_run()  # extra.py changed since: a run of its own
    assert run.summary.startswith("saved extra.py"), run
    assert _served(run.lines) == "2", run
