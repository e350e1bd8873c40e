"""Values that a process's own code changed in place between two runs.

Most values count in a signature by the code that made them: the statements that bind and
change them. That describes a fresh process, where the module code has just run. A process
that keeps running (a notebook, a script that runs the pipeline, changes a setting and runs it
again) can change a value between runs with no new statement to show for it: `C.ARR.append(3)`
in a later cell, `CFG["k"] = 2` or `params.alpha = 2` between two `run_reactor` calls. Such a
change must count.

Changes a run makes itself must not: a list a reactor appends to, a cache a helper fills. A
run's reactors cannot depend on what they are about to do to a value, and counting it would
re-run them at every run of a long-lived process. So each value a signature reaches is noted
as each run left it (the first such note stands for the value as first seen); when the next run
starts, a value that differs from how the last run left it was changed by the process's own
code, and from then on it counts by what it was at that run's start (until it is put back as
first seen). A fresh process signs every value as before: its module code decides them. The
cost: a digest of each such value at the start and end of each run (an array's: a read of it).
"""

from __future__ import annotations

import pickle
import threading
import weakref
from typing import Any

import xxhash

from .canonical import canonical_text
from .code_index import hash_text

_MISSING = object()


class _Entry:
    """One value's texts (as digests): as first noted, as the last run left it, and as the
    process's own code set it between runs (None: never, or put back). First noted when the
    run that first signed it ends: one digest less for a process that runs once (a digest
    reads all of an array)."""

    __slots__ = ("first", "left", "set_between_runs")

    def __init__(self) -> None:
        self.first: str | None = None
        self.left: str | None = None
        self.set_between_runs: str | None = None


class ChangesBetweenRuns:
    """Values signed in this process, by their owner (a module or a class, held weakly: a
    reloaded script's module is a new owner) and name."""

    def __init__(self) -> None:
        self._owners: weakref.WeakKeyDictionary[Any, dict[str, _Entry]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()  # signatures may be computed on several threads

    def changed(self, owner: object, name: str, value: object) -> str | None:
        """What `name` of `owner` was set to between runs, if the process's own code changed
        it since its first signature here (see the module's text); else None."""
        with self._lock:
            try:
                entries = self._owners.setdefault(owner, {})
            except TypeError:  # an owner with no weak reference: nothing to compare with
                return None
            entry = entries.get(name)
            if entry is None:
                entries[name] = _Entry()
                return None
            return entry.set_between_runs

    def run_starts(self) -> None:
        """Note what the process's own code changed since the last run ended."""
        current = self._current()
        with self._lock:
            for entry, now in current:
                if entry.first is None:  # signed outside a run: as it is now
                    entry.first = entry.left = now
                elif now != entry.left:
                    entry.set_between_runs = None if now == entry.first else now
                    entry.left = now

    def run_ended(self) -> None:
        """Note each value as the run left it: what the run itself did to it never counts."""
        current = self._current()
        with self._lock:
            for entry, now in current:
                entry.left = now
                if entry.first is None:
                    entry.first = now

    def _current(self) -> list[tuple[_Entry, str]]:
        with self._lock:
            owned = [(owner, dict(entries)) for owner, entries in self._owners.items()]
        return [
            (entry, _text(vars(owner).get(name, _MISSING)))
            for owner, entries in owned
            for name, entry in entries.items()
        ]


def content_text(value: object) -> str | None:
    """A digest of what a value holds: its canonical text (plain data, arrays), else its
    pickle (an instance's attributes, a data frame); None for a value pickle cannot write.
    Big buffers (arrays inside) are hashed where they are, never copied into the pickle."""
    text = canonical_text(value)
    if text is not None:
        return hash_text(text)
    hasher = xxhash.xxh3_128()

    def hash_buffer(buffer: pickle.PickleBuffer) -> None:
        try:
            hasher.update(buffer.raw())
        except BufferError:  # not contiguous: its bytes, copied
            hasher.update(memoryview(buffer).tobytes())

    try:
        data = pickle.dumps(value, protocol=5, buffer_callback=hash_buffer)
    except Exception:  # a lock, an open connection, a lambda: nothing to compare
        return None
    hasher.update(data)
    return hasher.hexdigest()


def _text(value: object) -> str:
    """`content_text` of the value; one text for every value that has none. Never raises: it
    runs as a run starts and ends, where a value's odd pickling must not fail the run."""
    if value is _MISSING:
        return "missing"
    try:
        return content_text(value) or "unwritable"
    except Exception:  # e.g. a container whose items raise when compared or iterated
        return "unwritable"


CHANGES = ChangesBetweenRuns()
