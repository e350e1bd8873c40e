"""Kept versions: every result of every reactor that is still on disk, indexed by reactor, with
the bytes their payloads take (a payload shared by several versions counted once), and which of
them to forget first when the disk budget is exceeded. Plain bookkeeping: no I/O, no locking.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .records import Version

Key = tuple[str, str]  # (reactor id, version key)


class VersionIndex:
    def __init__(self, versions: Iterable[Version] = ()) -> None:
        self._versions: dict[Key, Version] = {}
        self._by_reactor: dict[str, dict[str, Version]] = {}
        self._refs: dict[str, list[int]] = {}  # payload path -> [size, versions using it]
        self.stored_bytes = 0  # of every payload some version refers to
        for version in versions:
            self.add(version)

    def __getitem__(self, key: Key) -> Version:
        return self._versions[key]

    def __contains__(self, key: object) -> bool:
        return key in self._versions

    def __iter__(self) -> Iterator[Key]:
        return iter(list(self._versions))

    def __len__(self) -> int:
        return len(self._versions)

    def get(self, key: Key) -> Version | None:
        return self._versions.get(key)

    def add(self, version: Version) -> Version | None:
        """Index `version`; returns the one it replaces (same reactor, same inputs), if any."""
        key = (version.record.id, version.key)
        replaced = self.remove(key)
        self._versions[key] = version
        self._by_reactor.setdefault(version.record.id, {})[version.key] = version
        for output in version.outputs:
            refs = self._refs.setdefault(output.path, [output.size, 0])
            if refs[1] == 0:
                self.stored_bytes += output.size
            refs[1] += 1
        return replaced

    def remove(self, key: Key) -> Version | None:
        version = self._versions.pop(key, None)
        if version is None:
            return None
        self._by_reactor.get(key[0], {}).pop(key[1], None)
        for output in version.outputs:
            refs = self._refs[output.path]
            refs[1] -= 1
            if refs[1] == 0:
                del self._refs[output.path]
                self.stored_bytes -= refs[0]
        return version

    def of(self, reactor_id: str) -> list[Version]:
        """A reactor's versions, most recently used first."""
        found = self._by_reactor.get(reactor_id, {}).values()
        return sorted(found, key=lambda v: v.used_at, reverse=True)

    def using(self, paths: set[str]) -> list[Key]:
        """Versions that refer to any of these payloads."""
        return [k for k, v in self._versions.items() if any(o.path in paths for o in v.outputs)]

    def not_current(self, current: set[str]) -> list[Version]:
        """Versions with an output that is not current, least recently used first."""
        old = [v for v in self._versions.values() if any(o.path not in current for o in v.outputs)]
        return sorted(old, key=lambda v: v.used_at)

    def over_budget(self, current: set[str], budget: int) -> list[Version]:
        """The least recently used old versions to forget to bring the bytes under `budget`."""
        used, chosen = self.stored_bytes, []
        for version in self.not_current(current):
            if used <= budget:
                break
            chosen.append(version)
            used -= sum(o.size for o in version.outputs if o.path not in current)
        return chosen

    def paths(self) -> set[str]:
        return set(self._refs)
