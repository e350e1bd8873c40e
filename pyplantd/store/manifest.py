"""The manifest: all plant metadata in one SQLite database (WAL) inside the plant dir.

Reactor records, ingredient records, earlier versions, run history and the format version. A
reactor's results are committed in one transaction as soon as its payloads are durable, so a
crash loses at most what was still being computed or written. One connection, shared by the
engine and the background writer, with every use serialized by a lock.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import PlantDirError
from .records import HistoryEntry, IngredientRecord, ReactorRecord, Version

T = TypeVar("T")
DB_NAME = "pyplantd.db"
FORMAT_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reactors (id TEXT PRIMARY KEY, name TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ingredients (
    name TEXT PRIMARY KEY, producer TEXT NOT NULL, type TEXT NOT NULL, fingerprint TEXT NOT NULL,
    path TEXT NOT NULL, size INTEGER NOT NULL, meta TEXT NOT NULL, created_at REAL NOT NULL,
    checksum TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    reactor TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, used_at REAL NOT NULL,
    PRIMARY KEY (reactor, key));
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started_at REAL NOT NULL, finished_at REAL,
    targets TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    run_id INTEGER NOT NULL, reactor TEXT NOT NULL, status TEXT NOT NULL, duration REAL NOT NULL,
    reasons TEXT NOT NULL, started_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS history_by_reactor ON history (reactor, run_id);
CREATE TABLE IF NOT EXISTS code_index (
    content_hash TEXT PRIMARY KEY, body TEXT NOT NULL, used_at REAL NOT NULL);
"""
# Indexes of source files (see code_index.py), one per content: each save in a watched session
# adds one, so keep only those used in the last 30 days, and at most the 200 last used.
CODE_INDEX_DAYS = 30
CODE_INDEX_ROWS = 200


def _serialized(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def locked(self: Manifest, *args: Any, **kwargs: Any) -> T:
        with self.lock:
            return method(self, *args, **kwargs)

    return locked


class Manifest:
    def __init__(self, plant_dir: Path) -> None:
        path = plant_dir / DB_NAME
        existed = path.exists()
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.lock = threading.RLock()
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

    @classmethod
    def read_only(cls, plant_dir: Path) -> Manifest:
        """A reader that takes no lock and writes nothing (listings while a run goes on)."""
        path = plant_dir / DB_NAME
        if not path.exists():
            raise PlantDirError(f"{plant_dir} is not a plant dir (it has no {DB_NAME}).")
        manifest = cls.__new__(cls)
        manifest.db = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        manifest.lock = threading.RLock()
        manifest._check_version(path)
        return manifest

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

    @_serialized
    def close(self) -> None:
        self.db.close()

    # -- reading ----------------------------------------------------------------------------
    @_serialized
    def reactors(self) -> dict[str, ReactorRecord]:
        rows = self.db.execute("SELECT body FROM reactors")
        records = (ReactorRecord.from_json(json.loads(body)) for (body,) in rows)
        return {record.id: record for record in records}

    @_serialized
    def ingredients(self) -> dict[str, IngredientRecord]:
        columns = "name, producer, type, fingerprint, path, size, meta, created_at, checksum"
        rows = self.db.execute(f"SELECT {columns} FROM ingredients")
        return {
            name: IngredientRecord(
                name, producer, kind, fingerprint, path, size, json.loads(meta), created, checksum
            )
            for name, producer, kind, fingerprint, path, size, meta, created, checksum in rows
        }

    @_serialized
    def versions(self) -> list[Version]:
        rows = self.db.execute("SELECT key, body, used_at FROM versions ORDER BY used_at")
        return [Version.from_json(key, json.loads(body), used) for key, body, used in rows]

    @_serialized
    def last_durations(self) -> dict[str, float]:
        """Duration of each reactor's most recent real run (for plans)."""
        rows = self.db.execute(
            "SELECT reactor, duration FROM history WHERE status='ran' ORDER BY rowid"
        )
        return dict(rows.fetchall())

    @_serialized
    def last_outcomes(self) -> dict[str, HistoryEntry]:
        """Each reactor's most recent history entry (ran, cached or failed), by short name."""
        rows = self.db.execute(
            "SELECT reactor, status, duration, reasons, started_at FROM history "
            "WHERE rowid IN (SELECT MAX(rowid) FROM history GROUP BY reactor)"
        )
        return {
            name: HistoryEntry(name, status, duration, json.loads(reasons), started)
            for name, status, duration, reasons, started in rows
        }

    @_serialized
    def code_index(self, content_hash: str) -> tuple[str, float] | None:
        """The JSON index of a source file with this content hash, and when it was last used."""
        row = self.db.execute(
            "SELECT body, used_at FROM code_index WHERE content_hash = ?", (content_hash,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    # -- writing ----------------------------------------------------------------------------
    @_serialized
    def put_code_indexes(self, bodies: dict[str, str], used: Iterable[str] = ()) -> None:
        """Store new file indexes, mark `used` ones as used now, and prune, all at once."""
        now = time.time()
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO code_index VALUES (?, ?, ?)",
                [(key, body, now) for key, body in bodies.items()],
            )
            self.db.executemany(
                "UPDATE code_index SET used_at = ? WHERE content_hash = ?",
                [(now, key) for key in used],
            )
            self.db.execute(
                "DELETE FROM code_index WHERE used_at < ? OR content_hash NOT IN "
                "(SELECT content_hash FROM code_index ORDER BY used_at DESC LIMIT ?)",
                (now - CODE_INDEX_DAYS * 86400, CODE_INDEX_ROWS),
            )

    @_serialized
    def commit_reactor(self, version: Version) -> None:
        """Store a finished reactor and the ingredients it sent as current, all or nothing."""
        with self._transaction():
            self._put_reactor(version.record)
            self._put_outputs(version.outputs)
            self._put_version(version)

    def restore_version(self, version: Version) -> None:
        """Make an earlier version current again."""
        self.commit_reactor(version)

    def _put_outputs(self, outputs: list[IngredientRecord]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO ingredients VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(o.name, o.producer, o.type, o.fingerprint, o.path, o.size, json.dumps(o.meta),
              o.created_at, o.checksum) for o in outputs],
        )  # fmt: skip

    def _put_version(self, version: Version) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO versions VALUES (?, ?, ?, ?)",
            (version.record.id, version.key, json.dumps(version.to_json()), time.time()),
        )

    @_serialized
    def forget_versions(self, keys: list[tuple[str, str]]) -> None:
        with self._transaction():
            self.db.executemany("DELETE FROM versions WHERE reactor = ? AND key = ?", keys)

    @_serialized
    def put_reactor(self, record: ReactorRecord) -> None:
        with self._transaction():
            self._put_reactor(record)

    def _put_reactor(self, record: ReactorRecord) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO reactors VALUES (?, ?, ?)",
            (record.id, record.name, json.dumps(record.to_json())),
        )

    @_serialized
    def forget_ingredients(self, names: Iterable[str]) -> None:
        with self._transaction():
            self.db.executemany("DELETE FROM ingredients WHERE name = ?", [(n,) for n in names])

    @_serialized
    def forget_reactor(self, reactor_id: str) -> None:
        with self._transaction():
            self.db.execute("DELETE FROM reactors WHERE id = ?", (reactor_id,))

    @_serialized
    def start_run(self, targets: list[str]) -> int:
        cursor = self.db.execute(
            "INSERT INTO runs (started_at, targets, status) VALUES (?, ?, 'running')",
            (time.time(), json.dumps(targets)),
        )
        return int(cursor.lastrowid or 0)

    @_serialized
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
