"""The one walk over dependencies, as a table: what is reached, in which order."""

from __future__ import annotations

import pytest

from pyplantd.run.walk import reached

# node -> what it depends on (or, read the other way, what it feeds)
GRAPH = {"sink": ["b", "a"], "b": ["a"], "a": [], "c": ["c"], "lone": []}


@pytest.mark.parametrize(
    ("starts", "post_order", "expected"),
    [
        (["sink"], True, ["a", "b", "sink"]),  # every node after what it depends on
        (["sink"], False, ["sink", "b", "a"]),  # pre-order, neighbours in the order given
        (["b", "sink"], True, ["a", "b", "sink"]),
        (["c"], True, ["c"]),  # a node reaching itself is listed once
        (["lone", "a"], False, ["lone", "a"]),
        ([], True, []),
    ],
)
def test_reached(starts: list[str], post_order: bool, expected: list[str]) -> None:
    assert reached(starts, GRAPH.__getitem__, post_order=post_order) == expected


def test_a_chain_thousands_deep_does_not_recurse() -> None:
    chain = {i: [i - 1] if i else [] for i in range(50_000)}
    assert reached([49_999], chain.__getitem__, post_order=True) == list(range(50_000))
