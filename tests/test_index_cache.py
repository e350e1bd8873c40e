"""The manifest as code index cache: writes wait for the end of the run, old indexes go."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyplantd.store.index_cache import ManifestIndexCache
from pyplantd.store.manifest import CODE_INDEX_DAYS, CODE_INDEX_ROWS, Manifest


@pytest.fixture
def manifest(tmp_path: Path) -> Iterator[Manifest]:
    opened = Manifest(tmp_path)
    yield opened
    opened.close()


def _used_at(manifest: Manifest, key: str) -> float:
    found = manifest.code_index(key)
    assert found is not None
    return found[1]


def test_puts_are_written_only_at_flush_in_one_go(manifest: Manifest) -> None:
    cache = ManifestIndexCache(manifest)
    made: list[str] = []
    cache.put("h1", lambda: made.append("h1") or '{"a":1}')
    cache.put("h2", lambda: made.append("h2") or '{"b":2}')
    assert cache.get("h1") is None and made == []  # not serialized before the flush
    cache.flush()
    assert made == ["h1", "h2"]
    assert cache.get("h1") == '{"a":1}' and cache.get("h2") == '{"b":2}'
    cache.flush()  # nothing pending: nothing written


def test_an_index_used_again_is_marked_at_most_daily(manifest: Manifest) -> None:
    now = time.time()
    manifest.put_code_indexes({"old": "{}", "recent": "{}"})
    manifest.db.execute(
        "UPDATE code_index SET used_at = ? WHERE content_hash = 'old'", (now - 2e5,)
    )
    recent = _used_at(manifest, "recent")
    cache = ManifestIndexCache(manifest)
    assert cache.get("old") == "{}" and cache.get("recent") == "{}"
    cache.flush()
    assert _used_at(manifest, "old") >= now and _used_at(manifest, "recent") == recent


def test_indexes_unused_for_long_or_beyond_the_limit_are_pruned(manifest: Manifest) -> None:
    now = time.time()
    rows = [(f"h{i}", "{}", now - 1000 + i) for i in range(CODE_INDEX_ROWS + 5)]
    rows.append(("stale", "{}", now - (CODE_INDEX_DAYS + 1) * 86400))
    manifest.db.executemany("INSERT INTO code_index VALUES (?, ?, ?)", rows)
    manifest.put_code_indexes({"new": "{}"})
    kept = {key for (key,) in manifest.db.execute("SELECT content_hash FROM code_index")}
    assert len(kept) == CODE_INDEX_ROWS and "new" in kept
    assert "stale" not in kept and not kept & {f"h{i}" for i in range(6)}  # the least recent
