"""LazyRecords: records decoded on first read, never overwriting one stored meanwhile."""

from __future__ import annotations

import json
import threading

from pyplantd.store.lazy import LazyRecords


def test_records_are_decoded_once_on_first_read_and_rows_give_fields_undecoded():
    decoded: list[str] = []

    def decode(row: str) -> dict[str, int]:
        decoded.append(row)
        return json.loads(row)

    records = LazyRecords({"a": '{"n": 1}', "b": '{"n": 2}'}, str, decode)
    assert len(records) == 2 and "a" in records and decoded == []
    assert records.each(lambda r: r["n"], lambda row: -1) == [-1, -1]
    assert records["a"] == {"n": 1} and records.get("a") == {"n": 1} and records.get("x") is None
    assert decoded == ['{"n": 1}']
    assert records.each(lambda r: r["n"], lambda row: -1) == [1, -1]
    assert dict(records) == {"a": {"n": 1}, "b": {"n": 2}}


def test_a_record_stored_while_its_row_is_decoded_is_kept_not_the_decoded_row():
    """A commit (another thread) that stores a reactor's new record while the engine decodes
    the old row: the new record stays, and the reader gets it, never the stale one."""
    records: LazyRecords[dict[str, int]]
    committed = {"n": 2}

    def decode_while_a_commit_lands(row: str) -> dict[str, int]:
        if row == '{"n": 1}':
            thread = threading.Thread(target=records.__setitem__, args=("a", committed))
            thread.start()
            thread.join(timeout=30)
        return json.loads(row)

    records = LazyRecords({"a": '{"n": 1}'}, str, decode_while_a_commit_lands)
    assert records.get("a") is committed
    assert records["a"] is committed


def test_a_record_removed_while_its_row_is_decoded_stays_removed():
    records: LazyRecords[dict[str, int]]

    def decode_while_removed(row: str) -> dict[str, int]:
        thread = threading.Thread(target=records.__delitem__, args=("a",))
        thread.start()
        thread.join(timeout=30)
        return json.loads(row)

    records = LazyRecords({"a": '{"n": 1}'}, str, decode_while_removed)
    assert records["a"] == {"n": 1}  # as it was when read
    assert "a" not in records
