"""Kept versions: every result of every reactor that is still on disk, indexed by reactor, with
the bytes their payloads take (a payload shared by several versions counted once), and which of
them to forget first when the disk budget is exceeded. Plain bookkeeping: no I/O, no locking.

A version read from the manifest is decoded only when it is asked for: the bookkeeping needs
only its payloads' paths and sizes, which the manifest keeps beside it. Its body comes from a
function the index is given (the manifest's version_body).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator

from .records import Version

Key = tuple[str, str]  # (reactor id, version key)
Payloads = list[tuple[str, int]]  # (path, size) of each output
# A version as the manifest lists it: reactor id, key, last used, payloads.
Row = tuple[str, str, float, Payloads]
Body = Callable[[str, str], str]  # (reactor id, key) -> the JSON body of that version


class _Kept:
    """One kept version: what the bookkeeping needs, and the version, decoded when asked."""

    __slots__ = ("_version", "key", "payloads", "reactor_id", "used_at")

    def __init__(
        self, reactor_id: str, key: str, used_at: float, payloads: Payloads, version: Version | None
    ) -> None:
        self.reactor_id = reactor_id
        self.key = key
        self.used_at = used_at
        self.payloads = payloads
        self._version = version

    def version(self, body: Body) -> Version:
        if self._version is None:
            data = json.loads(body(self.reactor_id, self.key))
            self._version = Version.from_json(self.key, data, self.used_at)
        return self._version


def payloads_of(version: Version) -> Payloads:
    return [(o.path, o.size) for o in version.outputs]


class VersionIndex:
    def __init__(self, versions: Iterable[Version] = (), body: Body | None = None) -> None:
        self._body = body or _no_body
        self._kept: dict[Key, _Kept] = {}
        self._by_reactor: dict[str, dict[str, _Kept]] = {}
        self._refs: dict[str, list[int]] = {}  # payload path -> [size, versions using it]
        self.stored_bytes = 0  # of every payload some version refers to
        for version in versions:
            self.add(version)

    @classmethod
    def from_rows(cls, rows: Iterable[Row], body: Body) -> VersionIndex:
        """An index of stored versions, each decoded (from `body`) when first asked for."""
        index = cls(body=body)
        kept_by_key, by_reactor, refs = index._kept, index._by_reactor, index._refs
        stored = 0
        for reactor_id, key, used_at, payloads in rows:  # unique keys: nothing replaced
            kept = kept_by_key[(reactor_id, key)] = _Kept(reactor_id, key, used_at, payloads, None)
            by_reactor.setdefault(reactor_id, {})[key] = kept
            for path, size in payloads:
                counted = refs.get(path)
                if counted is None:
                    refs[path] = [size, 1]
                    stored += size
                else:
                    counted[1] += 1
        index.stored_bytes = stored
        return index

    def __getitem__(self, key: Key) -> Version:
        return self._kept[key].version(self._body)

    def __contains__(self, key: object) -> bool:
        return key in self._kept

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._kept))

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: Key) -> Version | None:
        kept = self._kept.get(key)
        return kept.version(self._body) if kept is not None else None

    def add(self, version: Version) -> list[str] | None:
        """Index `version`; returns the payload paths of the version it replaces (same
        reactor, same inputs), if any. (Not that version: its stored body is now this one's.)"""
        kept = _Kept(version.record.id, version.key, version.used_at, payloads_of(version), version)
        return self._index(kept)

    def _index(self, kept: _Kept) -> list[str] | None:
        key = (kept.reactor_id, kept.key)
        replaced = self.remove(key)
        self._kept[key] = kept
        self._by_reactor.setdefault(kept.reactor_id, {})[kept.key] = kept
        for path, size in kept.payloads:
            refs = self._refs.setdefault(path, [size, 0])
            if refs[1] == 0:
                self.stored_bytes += size
            refs[1] += 1
        return replaced

    def remove(self, key: Key) -> list[str] | None:
        """Forget a version; returns its payload paths (None if it was not kept)."""
        kept = self._kept.pop(key, None)
        if kept is None:
            return None
        self._by_reactor.get(key[0], {}).pop(key[1], None)
        for path, _ in kept.payloads:
            refs = self._refs[path]
            refs[1] -= 1
            if refs[1] == 0:
                del self._refs[path]
                self.stored_bytes -= refs[0]
        return [path for path, _ in kept.payloads]

    def of(self, reactor_id: str) -> list[Version]:
        """A reactor's versions, most recently used first."""
        found = sorted(self._by_reactor.get(reactor_id, {}).values(), key=lambda k: k.used_at)
        return [kept.version(self._body) for kept in reversed(found)]

    def has(self, reactor_id: str) -> bool:
        """Whether any version of this reactor is kept (nothing decoded)."""
        return bool(self._by_reactor.get(reactor_id))

    def using(self, paths: set[str]) -> list[Key]:
        """Versions that refer to any of these payloads."""
        return [
            key for key, kept in self._kept.items() if any(p in paths for p, _ in kept.payloads)
        ]

    def _not_current(self, current: set[str]) -> list[_Kept]:
        old = [k for k in self._kept.values() if any(p not in current for p, _ in k.payloads)]
        return sorted(old, key=lambda k: k.used_at)

    def not_current(self, current: set[str]) -> list[Version]:
        """Versions with an output that is not current, least recently used first."""
        return [kept.version(self._body) for kept in self._not_current(current)]

    def over_budget(self, current: set[str], budget: int) -> list[Version]:
        """The least recently used old versions to forget to bring the bytes under `budget`."""
        used, chosen = self.stored_bytes, []
        for kept in self._not_current(current):
            if used <= budget:
                break
            chosen.append(kept.version(self._body))
            used -= sum(size for path, size in kept.payloads if path not in current)
        return chosen

    def paths(self) -> set[str]:
        return set(self._refs)


def _no_body(reactor_id: str, key: str) -> str:
    raise KeyError(f"no body for version {key} of {reactor_id}")  # every version came whole
