"""A signature does not depend on which reactor's signature the same computer made first: the
cache of visited names keys each by how it is counted, not only by where it lives."""

from __future__ import annotations

import runpy
import sys
import textwrap
from pathlib import Path

import pytest

from pyplantd.signatures.signature import SignatureComputer

PIPELINE = """
from pyplantd import ReactorFunc
from consts_for_cache import *


@ReactorFunc
def imports_inside(pipe):
    from consts_for_cache import T2
    pipe.send('a', sum(T2))


@ReactorFunc
def star_imported(pipe):
    pipe.send('b', sum(T2))
"""


@pytest.fixture
def namespace(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "consts_for_cache.py").write_text("T2 = [i * 45 for i in range(3)] + [0]\n")
    (tmp_path / "pipeline.py").write_text(textwrap.dedent(PIPELINE))
    sys.path.insert(0, str(tmp_path))
    try:
        yield runpy.run_path(str(tmp_path / "pipeline.py"), run_name="pipeline_for_cache")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("consts_for_cache", None)


def test_a_constant_counts_for_a_reactor_whatever_was_signed_before(namespace) -> None:  # type: ignore[no-untyped-def]
    alone = SignatureComputer().signature(namespace["star_imported"]).parts
    computer = SignatureComputer()
    computer.signature(namespace["imports_inside"])
    after_another = computer.signature(namespace["star_imported"]).parts
    assert "const:T2@consts_for_cache.py" in alone
    assert after_another == alone
