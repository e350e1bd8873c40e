"""Source files are read by Python's own rules (PEP 263 coding cookie, UTF-8 BOM): a pipeline or
one of the user's modules that `python pipeline.py` runs, `pyplantd run` and `pyplantd watch` run
too, with the same values, and an edit of one of them re-runs what it changed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import Project
from test_daemon import Daemon, start_daemon  # noqa: F401 - the fixture

BOM = b"\xef\xbb\xbf"

# The reactor writes what it computed to out.txt (UTF-8), so no terminal encoding is involved.
PIPELINE = """\
{cookie}from helpers import SUFFIX

from pyplantd import Plant, ReactorFunc

LABEL = "caf{e_acute}"


@ReactorFunc
def make(pipe):
    with open("out.txt", "w", encoding="utf-8") as handle:
        handle.write(LABEL + SUFFIX)
    pipe.send("label", LABEL + SUFFIX)


if __name__ == "__main__":
    with Plant("plant") as plant:
        plant.run_reactor(make)
"""

HELPERS = '# -*- coding: latin-1 -*-\nSUFFIX = "{suffix}"\n'

# How each pipeline file is encoded: (bytes of the file, what LABEL holds)
ENCODINGS: dict[str, Callable[[str], bytes]] = {
    "latin1_cookie": lambda label: PIPELINE.format(
        cookie="# -*- coding: latin-1 -*-\n", e_acute=label
    ).encode("latin-1"),
    "utf8_bom": lambda label: BOM + PIPELINE.format(cookie="", e_acute=label).encode("utf-8"),
}


def write_project(project: Project, encoding: str, accent: str, suffix: str) -> None:
    (project.root / "pipeline.py").write_bytes(ENCODINGS[encoding](accent))
    (project.root / "helpers.py").write_bytes(HELPERS.format(suffix=suffix).encode("latin-1"))


def out(project: Project) -> str:
    return (project.root / "out.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_pyplantd_run_reads_sources_as_python_does(project: Project, encoding: str) -> None:
    write_project(project, encoding, "é", "ñ")
    oracle = project.python()
    assert oracle.returncode == 0, oracle.stderr
    assert out(project) == "caféñ"

    (project.root / "out.txt").unlink()
    result = project.cli("run", "pipeline.py", "--plant-dir", "fresh")
    assert result.returncode == 0, result.stdout + result.stderr
    assert out(project) == "caféñ"


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_watch_runs_and_reruns_sources_in_any_declared_encoding(
    project: Project,
    start_daemon: Callable[..., Daemon],  # noqa: F811 - the fixture imported above
    encoding: str,
) -> None:
    write_project(project, encoding, "é", "ñ")
    daemon = start_daemon()
    start = daemon.next_run()
    assert start.states == {"make": "ran"}, start
    assert out(project) == "caféñ"

    # an edit of the latin-1 helper module, then of the pipeline itself
    write_project(project, encoding, "é", "ü")
    run = daemon.next_run()
    assert run.states == {"make": "ran"}, run
    assert out(project) == "caféü"

    write_project(project, encoding, "è", "ü")
    run = daemon.next_run()
    assert run.states == {"make": "ran"}, run
    assert out(project) == "cafèü"


def test_undeclared_non_utf8_source_names_the_line_and_the_fix(project: Project) -> None:
    source = PIPELINE.format(cookie="", e_acute="é").encode("latin-1")
    (project.root / "pipeline.py").write_bytes(source)
    (project.root / "helpers.py").write_bytes(HELPERS.format(suffix="ñ").encode("latin-1"))
    result = project.cli("run", "pipeline.py")
    message = " ".join(result.stderr.split())
    assert result.returncode == 1, message
    path = project.root / "pipeline.py"
    assert f"{path}:5:" in message, message  # LABEL's line
    assert "Save the file as UTF-8, or declare its encoding" in message, message
