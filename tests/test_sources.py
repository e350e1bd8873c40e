"""What signatures hash is what runs: sources recorded at import, checked when read later."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import linecache
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyplantd.errors import SourceChangedError
from pyplantd.signatures import sources


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("recorded_mod", "late_mod"):
        sys.modules.pop(name, None)


def test_an_imported_user_module_is_compiled_from_the_bytes_it_records(folder: Path) -> None:
    path = folder / "recorded_mod.py"
    path.write_text("def f():\n    return 1\n")
    module = importlib.import_module("recorded_mod")
    path.write_text("def f():\n    return 2\n")  # a later save: not what runs
    assert sources.source_of(str(path)) == b"def f():\n    return 1\n"
    assert module.f() == 1
    sources.check(module.f.__code__)  # recorded at import: nothing to check


def test_code_loaded_before_the_hook_is_checked_against_its_file(folder: Path) -> None:
    path = folder / "late_mod.py"
    path.write_text("def f():\n    return 1\n\n\ndef g():\n    return 1\n")
    spec = importlib.util.spec_from_file_location("late_mod", path)  # no finder: no hook
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path.write_text("def f():\n    return 1\n\n\ndef g():\n    return 2\n")
    sources.read_after_load(str(path))
    sources.check(module.f.__code__)  # f is the same in the file: its code is what runs
    with pytest.raises(SourceChangedError, match=r"late_mod\.py changed after it was loaded"):
        sources.check(module.g.__code__)


def test_a_cell_source_comes_from_linecache(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "<ipython-input-7-0123456789ab>"
    monkeypatch.setitem(linecache.cache, name, (20, None, ["x = 1\n", "y = 2\n"], name))
    assert sources.source_of(name) == "x = 1\ny = 2\n"
    monkeypatch.setitem(linecache.cache, "/a/file.py", (6, 1.0, ["x = 1\n"], "/a/file.py"))
    assert sources.cell_source("/a/file.py") is None  # a file's lines: read the file


def test_docstring_examples_run() -> None:
    assert doctest.testmod(sources).failed == 0
