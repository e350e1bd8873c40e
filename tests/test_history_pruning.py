"""Run history stays bounded: every run adds a row per reactor (a daemon, one per save), so only
the last runs' rows are kept, plus each reactor's latest entry and latest real run, which plans
and the graph read. A real manifest in a temp dir."""

from __future__ import annotations

import sqlite3

from pyplantd.store import manifest
from pyplantd.store.manifest import Manifest
from pyplantd.store.records import HistoryEntry


def entry(reactor: str, status: str, duration: float) -> HistoryEntry:
    return HistoryEntry(reactor, status, duration, [], 0.0)


def history_rows(tmp_path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(tmp_path / manifest.DB_NAME) as db:
        return db.execute("SELECT run_id, reactor, status FROM history ORDER BY rowid").fetchall()


def test_history_keeps_the_last_runs_and_each_reactors_latest_entries(tmp_path) -> None:
    book = Manifest(tmp_path)
    runs = 3 * manifest.HISTORY_RUNS
    for n in range(1, runs + 1):
        run_id = book.start_run(["work"])
        entries = [entry("work", "ran", float(n))]
        if n == 1:  # a reactor that ran once, long ago, then left the pipeline
            entries.append(entry("once", "ran", 42.0))
        if n == 2:  # one that ran, then was only ever cached until it left
            entries.append(entry("rare", "ran", 7.0))
        if 2 < n <= 5:
            entries.append(entry("rare", "cached", 0.0))
        book.finish_run(run_id, "ok", entries)
    rows = history_rows(tmp_path)
    kept_runs = {run for run, _, _ in rows}
    # Never more than the last HISTORY_RUNS, plus the runs since the last pruning
    assert len(kept_runs) <= manifest.HISTORY_RUNS + manifest.PRUNE_EVERY + 3
    assert set(range(runs - manifest.HISTORY_RUNS + 1, runs + 1)) <= kept_runs
    assert book.last_durations() == {"work": float(runs), "once": 42.0, "rare": 7.0}
    outcomes = book.last_outcomes()
    assert outcomes["rare"].status == "cached" and outcomes["once"].duration == 42.0
    assert ("rare", "cached") in {(r, s) for _, r, s in rows}  # its latest entry, cached
    book.close()
