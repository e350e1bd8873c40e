"""One computer signs many reactors of a run and reuses what it walked for one in the next
(see SignatureComputer._walk_closure): every signature must equal the one a fresh computer
makes, whatever was signed before, through shared helpers, cycles and colliding names."""

from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pyplantd.signatures.signature import SignatureComputer

HELPERS = """
from pkg_one import util as one
from pkg_two import util as two

K = 3
TABLE = {"k": 1}


def a(x):
    return b(x) + c(x) + one.g(x)


def b(x):
    return c(x) + K


def c(x):  # a -> b -> c -> a: a cycle
    return a(x) if x > 9 else d(x)


def d(x):
    return K + TABLE["k"] + two.g(x)


def e(x):
    return d(x) + b(x)


def f(x):
    return e(x) + a(x) + one.g(x) + two.g(x)


def lone(x):
    return one.g(x) + two.g(x)


TABLE["k"] = e(0)
"""

# the same qualname in two files named util.py: one component key, two values merged
UTIL = "def g(x):\n    return x * {factor}\n"


@pytest.fixture
def helpers(tmp_path: Path) -> Iterator[ModuleType]:
    for package, factor in (("pkg_one", 2), ("pkg_two", 3)):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "util.py").write_text(UTIL.format(factor=factor))
    (tmp_path / "walk_helpers.py").write_text(textwrap.dedent(HELPERS))
    sys.path.insert(0, str(tmp_path))
    try:
        import walk_helpers

        yield walk_helpers
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("walk_helpers", "pkg_one", "pkg_one.util", "pkg_two", "pkg_two.util"):
            sys.modules.pop(name, None)


NAMES = ("a", "b", "c", "d", "e", "f", "lone")


def test_a_shared_computer_signs_as_fresh_ones_in_any_order(helpers: ModuleType) -> None:
    fresh = {name: SignatureComputer().signature(getattr(helpers, name)) for name in NAMES}
    assert fresh["f"].parts["helper:g@util.py"] == fresh["lone"].parts["helper:g@util.py"]
    orders = [NAMES, NAMES[::-1], *itertools.islice(itertools.permutations(NAMES), 0, 720, 97)]
    for order in orders:
        computer = SignatureComputer()
        for name in order:
            assert computer.signature(getattr(helpers, name)) == fresh[name], (order, name)
        for name in order:  # again, from what the computer keeps
            assert computer.signature(getattr(helpers, name)) == fresh[name], (order, name)


def test_a_shared_computer_signs_reactors_with_subreactors_as_fresh_ones(
    helpers: ModuleType,
) -> None:
    cases = [("a", ["e"]), ("e", ["a", "lone"]), ("lone", ["f"]), ("d", [])]

    def sign(computer: SignatureComputer, name: str, extra: list[str]) -> object:
        return computer.signature(getattr(helpers, name), [getattr(helpers, x) for x in extra])

    fresh = [sign(SignatureComputer(), name, extra) for name, extra in cases]
    for order in itertools.permutations(range(len(cases))):
        computer = SignatureComputer()
        for number in order:
            assert sign(computer, *cases[number]) == fresh[number]


def test_a_namespace_added_and_imported_is_mapped_once() -> None:
    """A script's globals are added by the computer and are also __main__'s: each name of
    them is one name, not two."""
    import types

    from pyplantd.signatures.namespaces import NameMap

    module = types.ModuleType("script_for_names")
    module.__file__ = __file__  # a user's file
    module.CFG = {}
    sys.modules["script_for_names"] = module
    try:
        names = NameMap()
        names.add(vars(module))
        assert [name for _, name in names.names_of(module.CFG)] == ["CFG"]
    finally:
        del sys.modules["script_for_names"]
