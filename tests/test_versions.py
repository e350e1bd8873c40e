"""VersionIndex: kept versions, shared payloads counted once, what to forget first."""

from __future__ import annotations

from pyplantd.store.records import IngredientRecord, ReactorRecord, Version
from pyplantd.store.versions import VersionIndex


def version(reactor: str, key: str, used_at: float, *outputs: tuple[str, int]) -> Version:
    record = ReactorRecord(reactor, reactor, "code", {}, {}, {}, [n for n, _ in outputs])
    made = [IngredientRecord(f"{reactor}.{i}", reactor, "object", "fp", path, size)
            for i, (path, size) in enumerate(outputs)]  # fmt: skip
    return Version(key, record, made, used_at)


def test_shared_payloads_are_counted_once_and_released_with_the_last_user():
    index = VersionIndex([version("a", "k1", 1, ("p1", 100)), version("b", "k1", 2, ("p1", 100))])
    assert index.stored_bytes == 100 and index.paths() == {"p1"}
    index.remove(("a", "k1"))
    assert index.stored_bytes == 100
    index.remove(("b", "k1"))
    assert index.stored_bytes == 0 and index.paths() == set()


def test_adding_the_same_key_replaces_and_returns_the_old_one():
    index = VersionIndex([version("a", "k", 1, ("old", 10))])
    replaced = index.add(version("a", "k", 2, ("new", 30)))
    assert replaced == ["old"]
    assert index.stored_bytes == 30 and len(index) == 1


def test_versions_of_a_reactor_come_most_recent_first():
    index = VersionIndex([version("a", "k1", 5), version("a", "k2", 9), version("b", "k3", 7)])
    assert [v.key for v in index.of("a")] == ["k2", "k1"]


def test_over_budget_forgets_least_recently_used_old_versions_only():
    index = VersionIndex(
        [
            version("a", "old1", 1, ("a1", 400)),
            version("a", "old2", 2, ("a2", 400)),
            version("a", "now", 3, ("a3", 400)),
        ]
    )
    assert index.over_budget({"a3"}, budget=1200) == []
    chosen = index.over_budget({"a3"}, budget=900)
    assert [v.key for v in chosen] == ["old1"]
    assert [v.key for v in index.over_budget({"a3"}, budget=0)] == ["old1", "old2"]  # never now


def test_using_finds_versions_that_refer_to_payloads():
    index = VersionIndex([version("a", "k1", 1, ("x", 1)), version("b", "k2", 1, ("y", 1))])
    assert index.using({"y"}) == [("b", "k2")]
