"""Which installed distribution provides a top-level import name, and its version: what
importlib.metadata answers, kept on disk per folder of sys.path, since reading every package's
metadata costs ~50 ms per process. A folder's entry holds while the folder's mtime (a package
added or removed) and each of its packages' metadata file (a package upgraded in place) are as
they were. Depends on nothing in pyplantd.

The cache is `$PYPLANTD_CACHE_DIR`, else `$XDG_CACHE_HOME/pyplantd`, else `~/.cache/pyplantd`;
a cache file that is not the user's own, or that others may write to, is ignored.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import stat
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: most runs find everything in the cache
    import importlib.metadata

_FORMAT = 1
_KEPT = 64  # folders kept at most: the most recently scanned (temporary ones come and go)
# A folder changed this recently may change again within the same tick of its mtime: such an
# entry is computed, not kept (otherwise a package installed right after could go unseen).
_SETTLED_NS = 2 * 10**9
_METADATA_DIR = re.compile(r".+\.(dist-info|egg-info)$")

# One distribution as kept: [name, version, top-level names, metadata file, its [mtime_ns, size]]
Dist = list[Any]


def distribution(top: str) -> str | None:
    """The installed distribution providing a top-level import name (the first in sorted
    order if several do), or None."""
    dists = _index().providers.get(top)
    return sorted(set(dists))[0] if dists else None


def version(dist: str) -> str | None:
    """The version of the distribution of that name found first on sys.path, or None."""
    return _index().versions.get(_normalize(dist))


class _Index:
    def __init__(self, folders: list[list[Dist]]) -> None:
        self.providers: dict[str, list[str]] = {}
        self.versions: dict[str, str] = {}
        for dists in folders:  # in sys.path order: the first of a name wins, as for imports
            for name, found_version, tops, _file, _stamp in dists:
                for top in tops:
                    self.providers.setdefault(top, []).append(name)
                self.versions.setdefault(_normalize(name), found_version)


@functools.cache
def _index() -> _Index:
    """The index for this process's sys.path (once: what runs is what was imported first)."""
    cache = _Cache.load()
    folders = []
    for entry in dict.fromkeys(os.path.abspath(p or ".") for p in sys.path):
        folders.append(cache.folder(entry))
    cache.save()
    return _Index(folders)


class _Cache:
    def __init__(self, path: Path | None, entries: dict[str, Any]) -> None:
        self.path = path
        self.entries = entries
        self.changed = False

    @classmethod
    def load(cls) -> _Cache:
        path = _cache_file()
        entries: dict[str, Any] = {}
        if path is not None:
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(_read_own(path))
                if data.get("format") == _FORMAT and isinstance(data.get("folders"), dict):
                    entries = data["folders"]
        return cls(path, entries)

    def folder(self, entry: str) -> list[Dist]:
        """The distributions in one sys.path entry, from the cache when it still holds."""
        try:
            st = os.stat(entry)
        except OSError:
            return []
        kept = self.entries.get(entry)
        if kept is not None and kept.get("mtime") == st.st_mtime_ns and _unchanged(kept["dists"]):
            return list(kept["dists"])
        if stat.S_ISDIR(st.st_mode) and not _holds_metadata(entry):
            self._forget(entry)
            return []  # no package here (a project folder): nothing worth keeping
        dists = _scan(entry)
        stamps = [st.st_mtime_ns] + [stamp[0] for *_, stamp in dists if stamp is not None]
        if time.time_ns() - max(stamps) >= _SETTLED_NS:
            self.entries.pop(entry, None)  # to the end: the most recent
            self.entries[entry] = {"mtime": st.st_mtime_ns, "dists": dists}
            self.changed = True
        else:
            self._forget(entry)
        return dists

    def _forget(self, entry: str) -> None:
        if self.entries.pop(entry, None) is not None:
            self.changed = True

    def save(self) -> None:
        if not self.changed or self.path is None:
            return
        kept = [key for key in self.entries if os.path.exists(key)][-_KEPT:]
        self.entries = {key: self.entries[key] for key in kept}
        with contextlib.suppress(OSError):
            _write_own(self.path, json.dumps({"format": _FORMAT, "folders": self.entries}))


def _scan(entry: str) -> list[Dist]:
    """importlib.metadata's view of one folder (or zip file) of sys.path."""
    import importlib.metadata

    dists = []
    for dist in importlib.metadata.distributions(path=[entry]):
        name = dist.metadata["Name"]
        if not name:
            continue
        tops = sorted(set(_top_level_declared(dist) or _top_level_inferred(dist)))
        file = _metadata_file(dist)
        dists.append([name, dist.version, tops, file, _stamp(file)])
    return dists


def _top_level_declared(dist: importlib.metadata.Distribution) -> list[str]:
    return (dist.read_text("top_level.txt") or "").split()


def _top_level_inferred(dist: importlib.metadata.Distribution) -> set[str]:
    # as importlib.metadata.packages_distributions infers them
    return {
        f.parts[0] if len(f.parts) > 1 else f.with_suffix("").name
        for f in dist.files or ()
        if f.suffix == ".py"
    }


def _metadata_file(dist: importlib.metadata.Distribution) -> str | None:
    folder = getattr(dist, "_path", None)  # PathDistribution's metadata folder
    if folder is None:
        return None
    for name in ("METADATA", "PKG-INFO"):
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    return str(folder)  # an egg-info file, not a folder


def _stamp(file: str | None) -> list[int] | None:
    if file is None:
        return None
    try:
        st = os.stat(file)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


def _unchanged(dists: Iterable[Dist]) -> bool:
    return all(stamp is not None and _stamp(file) == stamp for *_, file, stamp in dists)


def _holds_metadata(folder: str) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(_METADATA_DIR.match(e.name) for e in entries)
    except OSError:
        return True  # let importlib.metadata say


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


# -- the cache file ---------------------------------------------------------------------------
def _cache_file() -> Path | None:
    root = os.environ.get("PYPLANTD_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "pyplantd")
    tag = f"{sys.implementation.cache_tag or sys.implementation.name}"
    return Path(root) / f"distributions-{tag}.json"


def _read_own(path: Path) -> str:
    """The file's text, if it is a regular file of this user that nobody else may write."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "r", encoding="utf-8") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise ValueError(f"{path} is not a private file of this user")
        return handle.read()


def _write_own(path: Path, text: str) -> None:
    """Write the file anew, owner-only, through a temporary file renamed into place."""
    import tempfile

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".distributions-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
