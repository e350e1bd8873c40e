"""The manifest: all plant metadata in one SQLite database (WAL) inside the plant dir.

Reactor records, ingredient records, earlier versions, run history and the format version. A
reactor's results are committed in one transaction as soon as its payloads are durable, so a
crash loses at most what was still being computed or written. One connection, shared by the
engine and the background writer, with every use serialized by a lock.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from ..errors import PlantDirError, StoreError
from .failures import explain_os_error, explain_sqlite
from .lazy import LazyRecords
from .records import HistoryEntry, IngredientRecord, ReactorRecord, Version
from .versions import Payloads, Row, payloads_of

T = TypeVar("T")
DB_NAME = "pyplantd.db"
MANIFEST_FILES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal")
FORMAT_VERSION = "2"
# Formats this pyplantd opens: an older one is brought up to date once, on its first writable open
# (1: kept versions without their payloads column).
READABLE_FORMATS = ("1", FORMAT_VERSION)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reactors (id TEXT PRIMARY KEY, name TEXT NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ingredients (
    name TEXT PRIMARY KEY, producer TEXT NOT NULL, type TEXT NOT NULL, fingerprint TEXT NOT NULL,
    path TEXT NOT NULL, size INTEGER NOT NULL, meta TEXT NOT NULL, created_at REAL NOT NULL,
    checksum TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    reactor TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, used_at REAL NOT NULL,
    payloads TEXT NOT NULL DEFAULT '[]', PRIMARY KEY (reactor, key));
-- what opening a plant reads of its kept versions, without their bodies (a covering index)
CREATE INDEX IF NOT EXISTS versions_kept ON versions (reactor, key, used_at, payloads);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started_at REAL NOT NULL, finished_at REAL,
    targets TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    run_id INTEGER NOT NULL, reactor TEXT NOT NULL, status TEXT NOT NULL, duration REAL NOT NULL,
    reasons TEXT NOT NULL, started_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS history_by_reactor ON history (reactor, run_id);
CREATE INDEX IF NOT EXISTS history_by_run ON history (run_id);
CREATE TABLE IF NOT EXISTS code_index (
    content_hash TEXT PRIMARY KEY, body TEXT NOT NULL, used_at REAL NOT NULL);
"""
# History: every run adds a row per reactor (a daemon, one per save), so only the last runs' are
# kept, and of older ones each reactor's latest entry and latest real run (plans use its
# duration); pruned once every PRUNE_EVERY runs, so that a run pays for it rarely.
HISTORY_RUNS = 100
PRUNE_EVERY = 20
# Indexes of source files (see code_index.py), one per content: each save in a watched session
# adds one, so keep only those used in the last 30 days, and at most the 200 last used.
CODE_INDEX_DAYS = 30
CODE_INDEX_ROWS = 200


def _serialized(method: Callable[..., T]) -> Callable[..., T]:
    """One use of the connection at a time; a failure of SQLite becomes a StoreError that says
    what happened (a full disk, no permission) and what to do."""

    @functools.wraps(method)
    def locked(self: Manifest, *args: Any, **kwargs: Any) -> T:
        with self.lock:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as err:
                raise self.failure(err) from err

    return locked


class Manifest:
    def __init__(self, plant_dir: Path) -> None:
        self.path = path = plant_dir / DB_NAME
        self.lock = threading.RLock()
        try:
            created = _create_exclusively(path)
        except OSError as err:
            reason = explain_os_error(err, plant_dir, path) or str(err)
            raise StoreError(f"Could not create the manifest {path}: {reason}.") from err
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives process kills
            if created or self._empty():
                self._create()
            else:
                if self._check_version(path) != FORMAT_VERSION:
                    self._upgrade()
                self.db.executescript(_SCHEMA)  # tables added since this plant was made
        except sqlite3.DatabaseError as err:
            raise self._open_failure(err) from err

    def _empty(self) -> bool:
        """No table at all: a database we created whose first transaction never finished."""
        return self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0

    def _create(self) -> None:
        now = str(time.time())
        self.db.executescript(
            f"BEGIN IMMEDIATE;{_SCHEMA}"
            f"INSERT OR REPLACE INTO meta VALUES ('format_version', '{FORMAT_VERSION}');"
            f"INSERT OR REPLACE INTO meta VALUES ('created_at', '{now}');COMMIT;"
        )  # all or nothing: a kill leaves an empty database, created again next time

    def _open_failure(self, err: sqlite3.Error) -> StoreError:
        with contextlib.suppress(AttributeError, sqlite3.Error):
            self.db.close()
        reason = explain_sqlite(err, self.path.parent, self.path)
        if reason is None:
            return PlantDirError(
                f"{self.path} is not a readable pyplantd manifest ({err}). Move it away or "
                "use another plant dir; nothing was deleted."
            )
        return StoreError(f"Could not open the manifest {self.path}: {reason}.")

    def failure(self, err: sqlite3.Error) -> StoreError:
        """A read or write of the open manifest failed."""
        reason = explain_sqlite(err, self.path.parent, self.path)
        if reason is None:
            reason = f"it is damaged ({err}). Move the plant dir away and run again"
        return StoreError(f"Could not update the manifest {self.path}: {reason}.")

    @classmethod
    def read_only(cls, plant_dir: Path) -> Manifest:
        """A reader that takes no lock and writes nothing (listings while a run goes on)."""
        path = plant_dir / DB_NAME
        if not path.exists():
            raise PlantDirError(f"{plant_dir} is not a plant dir (it has no {DB_NAME}).")
        manifest = cls.__new__(cls)
        manifest.path = path
        manifest.lock = threading.RLock()
        try:
            manifest.db = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
            )
            manifest._check_version(path)
        except sqlite3.DatabaseError as err:
            raise manifest._open_failure(err) from err
        return manifest

    def _check_version(self, path: Path) -> str:
        found = self.db.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()
        if found is None or found[0] not in READABLE_FORMATS:
            version = found[0] if found else "unknown"
            raise PlantDirError(
                f"{path} has plant format version {version}, this pyplantd reads version "
                f"{FORMAT_VERSION}. Use another plant dir (or remove this one to start over); "
                "nothing was deleted."
            )
        return str(found[0])

    def _upgrade(self) -> None:
        """Format 1 to 2, all or nothing: each kept version gets the paths and sizes of its
        payloads in a column of their own, so that opening the plant decodes no version. A
        version whose body cannot be read is forgotten (it only served undos; its payloads go
        at the next sweep)."""
        with self._transaction():
            self.db.execute("ALTER TABLE versions ADD COLUMN payloads TEXT NOT NULL DEFAULT '[]'")
            rows = self.db.execute("SELECT reactor, key, body, used_at FROM versions").fetchall()
            filled, unreadable = [], []
            for reactor_id, key, body, used_at in rows:
                try:
                    version = Version.from_json(key, json.loads(body), used_at)
                except (ValueError, TypeError, KeyError):
                    unreadable.append((reactor_id, key))
                    continue
                filled.append((json.dumps(payloads_of(version)), reactor_id, key))
            self.db.executemany(
                "UPDATE versions SET payloads = ? WHERE reactor = ? AND key = ?", filled
            )
            self.db.executemany("DELETE FROM versions WHERE reactor = ? AND key = ?", unreadable)
            self.db.execute(
                "UPDATE meta SET value = ? WHERE key = 'format_version'", (FORMAT_VERSION,)
            )

    @_serialized
    def close(self) -> None:
        self.db.close()

    # -- reading ----------------------------------------------------------------------------
    # Records are read whole but decoded only when asked for (see lazy.LazyRecords).
    @_serialized
    def reactors(self) -> LazyRecords[ReactorRecord]:
        rows = self.db.execute("SELECT id, body FROM reactors")
        return LazyRecords(dict(rows.fetchall()), str, _reactor_record)

    @_serialized
    def ingredients(self) -> LazyRecords[IngredientRecord]:
        columns = "name, producer, type, fingerprint, path, size, meta, created_at, checksum"
        rows = self.db.execute(f"SELECT {columns} FROM ingredients").fetchall()
        return LazyRecords({row[0]: row for row in rows}, tuple, _ingredient_record)

    @_serialized
    def versions(self) -> Iterator[Row]:
        """Every kept version, without its body (see version_body): read from an index that
        holds all the rest, so that none of the bodies' pages is read."""
        rows = self.db.execute(
            "SELECT reactor, key, used_at, payloads FROM versions INDEXED BY versions_kept"
        ).fetchall()
        try:  # one decode for all (each is a short JSON list)
            payloads: list[Payloads | None] = json.loads(
                "[" + ",".join(row[3] for row in rows) + "]"
            )
        except ValueError:
            payloads = [self._payloads(reactor_id, key, text) for reactor_id, key, _, text in rows]
        return (
            (reactor_id, key, used_at, outputs)
            for (reactor_id, key, used_at, _), outputs in zip(rows, payloads, strict=True)
            if outputs is not None
        )

    def _payloads(self, reactor_id: str, key: str, text: str) -> Payloads | None:
        """The payloads column of one version, or (damaged) what its body says; None if
        neither can be read (that version is left out: it only served undos)."""
        try:
            return list(json.loads(text))
        except ValueError:
            pass
        try:
            body = self.version_body(reactor_id, key)
            return payloads_of(Version.from_json(key, json.loads(body), 0.0))
        except (ValueError, TypeError, KeyError):
            return None

    @_serialized
    def version_body(self, reactor_id: str, key: str) -> str:
        """The JSON body of a kept version (Version.to_json)."""
        row = self.db.execute(
            "SELECT body FROM versions WHERE reactor = ? AND key = ?", (reactor_id, key)
        ).fetchone()
        if row is None:
            raise StoreError(
                f"Version {key} of reactor {reactor_id} is no longer in the manifest "
                f"{self.path}: was the plant dir changed by hand? Run again."
            )
        return str(row[0])

    @_serialized
    def version_counts(self) -> dict[str, int]:
        """How many versions of each reactor are kept."""
        rows = self.db.execute("SELECT reactor, count(*) FROM versions GROUP BY reactor")
        return dict(rows.fetchall())

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
            "INSERT OR REPLACE INTO versions (reactor, key, body, used_at, payloads) "
            "VALUES (?, ?, ?, ?, ?)",
            (version.record.id, version.key, json.dumps(version.to_json()), time.time(),
             json.dumps(payloads_of(version))),
        )  # fmt: skip

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
                [(run_id, e.reactor, e.status, e.duration, _reasons_json(e.reasons), e.started_at)
                 for e in entries],
            )  # fmt: skip
            if run_id % PRUNE_EVERY == 0:
                self._prune_history(run_id - HISTORY_RUNS)

    def _prune_history(self, last_old_run: int) -> None:
        self.db.execute(
            "DELETE FROM history WHERE run_id <= ? AND rowid NOT IN ("
            " SELECT MAX(rowid) FROM history GROUP BY reactor UNION"
            " SELECT MAX(rowid) FROM history WHERE status = 'ran' GROUP BY reactor)",
            (last_old_run,),
        )
        self.db.execute(
            "DELETE FROM runs WHERE id <= ? AND id NOT IN (SELECT run_id FROM history)",
            (last_old_run,),
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:  # SQLite may have rolled back already (a full disk)
            with contextlib.suppress(sqlite3.Error):  # the first error is the one to report
                self.db.execute("ROLLBACK")


def _reasons_json(reasons: list[str]) -> str:
    """Most entries of a run (the cached reactors) give no reason: no json.dumps for those."""
    return json.dumps(reasons) if reasons else "[]"


def _reactor_record(body: str) -> ReactorRecord:
    return ReactorRecord.from_json(json.loads(body))


def _ingredient_record(row: tuple[Any, ...]) -> IngredientRecord:
    name, producer, kind, fingerprint, path, size, meta, created, checksum = row
    return IngredientRecord(
        name, producer, kind, fingerprint, path, size, json.loads(meta), created, checksum
    )


def ingredient_path(row: tuple[Any, ...]) -> str:
    """The payload path of an ingredient row not decoded yet."""
    return str(row[4])


def _create_exclusively(path: Path) -> bool:
    """Create an empty manifest file (True), or find one (False). O_EXCL: a manifest is made
    by this process or is one the plant dir checks found of ours, never a planted link."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True
