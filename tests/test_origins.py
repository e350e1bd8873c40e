"""Origins of code: which files are the user's own, and which package versions count."""

from __future__ import annotations

import doctest
import os
from pathlib import Path

import numpy as np
import pytest

from pyplantd.signatures import origins, signature
from pyplantd.signatures.origins import is_user_file, package_version


@pytest.mark.parametrize(
    "path",
    [
        np.__file__,
        os.__file__,
        signature.__file__,
        "/somewhere/.venv/lib/python3.11/site-packages/thing.py",
        "/usr/lib/python3/dist-packages/thing.py",
    ],
)
def test_is_user_file_rejects_library_files(path: str) -> None:
    assert not is_user_file(path)


def test_no_module_of_pyplantd_counts_as_user_code() -> None:
    """Every file of the package, in every subpackage, is pyplantd's, never the user's: a
    daemon that took one for the user's would purge and re-import it between runs."""
    package = Path(signature.__file__).parents[1]
    files = sorted(package.rglob("*.py"))
    assert len({f.parent for f in files}) > 3  # the subpackages are in the sample
    assert [str(f) for f in files if is_user_file(str(f))] == []


def test_is_user_file_accepts_project_files(tmp_path: Path) -> None:
    assert is_user_file(str(tmp_path / "pipeline.py"))
    assert not is_user_file(str(tmp_path / "data.txt"))


def test_package_version() -> None:
    assert package_version("numpy") == np.__version__
    assert package_version("numpy.linalg") == np.__version__
    assert package_version("math") is None


def test_docstring_examples_run() -> None:
    assert doctest.testmod(origins).failed == 0
