"""The manifest: all plant metadata in one SQLite database (WAL) inside the plant dir.

Reactor records, ingredient records, run history and the format version. A reactor's results are
committed in one transaction when it finishes, so a crash loses at most the running reactor.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from ..errors import PlantDirError
from .records import HistoryEntry, IngredientRecord, ReactorRecord

DB_NAME = "pyplantd.db"
FORMAT_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reactors (id TEXT PRIMARY KEY, name TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ingredients (
    name TEXT PRIMARY KEY, producer TEXT NOT NULL, type TEXT NOT NULL, fingerprint TEXT NOT NULL,
    path TEXT NOT NULL, size INTEGER NOT NULL, meta TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started_at REAL NOT NULL, finished_at REAL,
    targets TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    run_id INTEGER NOT NULL, reactor TEXT NOT NULL, status TEXT NOT NULL, duration REAL NOT NULL,
    reasons TEXT NOT NULL, started_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS history_by_reactor ON history (reactor, run_id);
"""


class Manifest:
    def __init__(self, plant_dir: Path) -> None:
        path = plant_dir / DB_NAME
        existed = path.exists()
        try:
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives process kills
            if existed:
                self._check_version(path)
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise PlantDirError(
                f"{path} is not a readable pyplantd manifest ({err}). Move it away or use "
                "another plant dir; nothing was deleted."
            ) from err
        if not existed:
            self._set_meta("format_version", FORMAT_VERSION)
            self._set_meta("created_at", str(time.time()))

    def _check_version(self, path: Path) -> None:
        found = self.db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()
        if found is None or found[0] != FORMAT_VERSION:
            version = found[0] if found else "unknown"
            raise PlantDirError(
                f"{path} has plant format version {version}, this pyplantd reads version "
                f"{FORMAT_VERSION}. Use another plant dir (or remove this one to start over); "
                "nothing was deleted."
            )

    def _set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def close(self) -> None:
        self.db.close()

    # -- reading ----------------------------------------------------------------------------
    def reactors(self) -> dict[str, ReactorRecord]:
        rows = self.db.execute("SELECT body FROM reactors")
        records = (ReactorRecord.from_json(json.loads(body)) for (body,) in rows)
        return {record.id: record for record in records}

    def ingredients(self) -> dict[str, IngredientRecord]:
        columns = "name, producer, type, fingerprint, path, size, meta, created_at"
        rows = self.db.execute(f"SELECT {columns} FROM ingredients")
        return {
            row[0]: IngredientRecord(*row[:6], meta=json.loads(row[6]), created_at=row[7])
            for row in rows
        }

    def history(self, reactor: str | None = None, limit: int = 1000) -> list[HistoryEntry]:
        query = "SELECT reactor, status, duration, reasons, started_at FROM history"
        args: tuple[object, ...] = ()
        if reactor is not None:
            query += " WHERE reactor = ?"
            args = (reactor,)
        rows = self.db.execute(query + " ORDER BY rowid DESC LIMIT ?", (*args, limit))
        return [HistoryEntry(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def last_durations(self) -> dict[str, float]:
        """Duration of each reactor's most recent real run (for plans)."""
        rows = self.db.execute(
            "SELECT reactor, duration FROM history WHERE status='ran' ORDER BY rowid"
        )
        return dict(rows.fetchall())

    # -- writing ----------------------------------------------------------------------------
    def commit_reactor(self, record: ReactorRecord, outputs: Iterable[IngredientRecord]) -> None:
        """Store a finished reactor and the ingredients it sent, all or nothing."""
        with self._transaction():
            self._put_reactor(record)
            for ing in outputs:
                self.db.execute(
                    "INSERT OR REPLACE INTO ingredients VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (ing.name, ing.producer, ing.type, ing.fingerprint, ing.path, ing.size,
                     json.dumps(ing.meta), ing.created_at),
                )  # fmt: skip

    def put_reactor(self, record: ReactorRecord) -> None:
        with self._transaction():
            self._put_reactor(record)

    def _put_reactor(self, record: ReactorRecord) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO reactors VALUES (?, ?, ?)",
            (record.id, record.name, json.dumps(record.to_json())),
        )

    def forget_ingredients(self, names: Iterable[str]) -> None:
        with self._transaction():
            self.db.executemany("DELETE FROM ingredients WHERE name = ?", [(n,) for n in names])

    def forget_reactor(self, reactor_id: str) -> None:
        with self._transaction():
            self.db.execute("DELETE FROM reactors WHERE id = ?", (reactor_id,))

    def start_run(self, targets: list[str]) -> int:
        cursor = self.db.execute(
            "INSERT INTO runs (started_at, targets, status) VALUES (?, ?, 'running')",
            (time.time(), json.dumps(targets)),
        )
        return int(cursor.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, entries: list[HistoryEntry]) -> None:
        with self._transaction():
            self.db.execute(
                "UPDATE runs SET finished_at = ?, status = ? WHERE id = ?",
                (time.time(), status, run_id),
            )
            self.db.executemany(
                "INSERT INTO history VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, e.reactor, e.status, e.duration, json.dumps(e.reasons), e.started_at)
                 for e in entries],
            )  # fmt: skip

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
