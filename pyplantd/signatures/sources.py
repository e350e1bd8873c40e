"""The source text the running code was compiled from, so that a signature hashes the code that
runs, not what the file holds by the time it is read.

- User modules imported after pyplantd: an import hook records the bytes each one is compiled
  from (and compiles from those bytes: a stale .pyc is never used).
- Scripts run by pyplantd (`run`, `watch`): the text they compiled, noted by the runner.
- Notebook and console cells: the text IPython keeps in `linecache`.
- Modules loaded before pyplantd (and `python pipeline.py` itself): read when pyplantd is
  imported, and checked function by function against the code that runs (compiling them again);
  a mismatch is a `SourceChangedError` rather than a result recorded under the wrong code. A
  script Python ran (always compiled from its file, never from a .pyc) whose file last changed
  before this process started needs no check: it was compiled from the bytes read.

Depends on origins and errors only.
"""

from __future__ import annotations

import importlib.machinery
import linecache
import os
import sys
import threading
import time
from collections.abc import Sequence
from types import CodeType, ModuleType

import xxhash

from ..errors import SourceChangedError
from .origins import is_user_file

Source = bytes | str  # bytes as read from a file, or text already decoded

# path -> the source its loaded code was compiled from; `_LATE` ones were read afterwards
_EXACT: dict[str, Source] = {}
_LATE: dict[str, bytes] = {}
_lock = threading.Lock()
# compiled code of late sources, by content: (qualname, first line) -> code object
_COMPILED: dict[str, dict[tuple[str, int], CodeType]] = {}
_CODES: dict[tuple[str, str], CodeType] = {}  # (path, content digest) -> module code
_CODES_KEPT = 512


# path -> (the value of `_noted` once its source was last noted, the xxh3_128 hex digest of
# the bytes noted if known): which files a load read, and what it read (see noted_since)
_NOTED: dict[str, tuple[int, str | None]] = {}
_noted = 0  # how many sources were noted so far


def note_source(path: str, source: Source, digest: str | None = None) -> None:
    """Record that the code loaded from `path` was compiled from `source` (whose xxh3_128 hex
    digest is `digest`, if the caller knows it)."""
    global _noted
    with _lock:
        _EXACT[_key(path)] = source
        _LATE.pop(_key(path), None)
        _noted += 1
        _NOTED[_key(path)] = (_noted, digest)


def noted_clock() -> int:
    """A mark to pass to `noted_since` later."""
    return _noted


def noted_since(clock: int) -> dict[str, str | None]:
    """The files whose source was noted after `clock`, with the digest of the bytes noted if
    known: every user module imported since, also one whose import then failed (a syntax
    error, an exception), which sys.modules lacks."""
    with _lock:
        return {path: digest for path, (noted, digest) in _NOTED.items() if noted > clock}


def source_of(path: str) -> Source | None:
    """What the code from `path` was compiled from, if known (see the module docstring)."""
    key = _key(path)
    found = _EXACT.get(key)
    if found is None:
        found = _LATE.get(key)
    return found if found is not None else cell_source(path)


def cell_source(filename: str) -> str | None:
    """The text of a notebook or console cell: a linecache entry that no file backs."""
    entry = linecache.cache.get(filename)
    if entry is None or len(entry) != 4 or entry[1] is not None:  # mtime None: interactive
        return None
    lines: Sequence[str] = entry[2]
    return "".join(lines)


def check(code: CodeType) -> None:
    """Raise SourceChangedError if `code` was not compiled from the source known for its file
    (a file read after it was loaded, and edited in between)."""
    if not _LATE:  # nothing was read after it was loaded (the common case)
        return
    path = code.co_filename
    late = _LATE.get(_key(path))
    if late is None:
        return
    compiled = _compiled(path, late)
    qualname = getattr(code, "co_qualname", code.co_name)
    if compiled is None or compiled.get((qualname, code.co_firstlineno)) != code:
        raise SourceChangedError(
            f"{path} changed after it was loaded, so the code that runs is not the code in "
            f"the file ({qualname} differs). Nothing is recorded for it; run again."
        )


def _compiled(path: str, source: bytes) -> dict[tuple[str, int], CodeType] | None:
    digest = xxhash.xxh3_128_hexdigest(source)
    if digest not in _COMPILED:
        try:
            module = compile(source, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            return None
        found: dict[tuple[str, int], CodeType] = {}
        stack = [module]
        while stack:
            current = stack.pop()
            found[(getattr(current, "co_qualname", current.co_name), current.co_firstlineno)] = (
                current
            )
            stack.extend(c for c in current.co_consts if isinstance(c, CodeType))
        _COMPILED[digest] = found
    return _COMPILED[digest]


def _key(path: str) -> str:
    return os.path.abspath(path)


class _RecordingLoader(importlib.machinery.SourceFileLoader):
    """Compiles a user module from the bytes it read, and records them."""

    def get_code(self, fullname: str) -> CodeType:
        source = self.get_data(self.path)
        key = (self.path, xxhash.xxh3_128_hexdigest(source))
        note_source(self.path, source, key[1])
        code = _CODES.get(key)
        if code is None:  # the daemon re-imports unchanged modules: compile them once
            code = self.source_to_code(source, self.path)
            _CODES[key] = code
            if len(_CODES) > _CODES_KEPT:
                del _CODES[next(iter(_CODES))]
        return code


class _RecordingFinder:
    """First on sys.meta_path: asks the other finders, and gives user modules found as plain
    source files the recording loader. Other loaders (pytest's, zipimport...) are left alone.
    (A meta path finder needs only `find_spec`; importlib.abc would cost ~4 ms to import.)"""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if type(loader) is importlib.machinery.SourceFileLoader and is_user_file(loader.path):
            spec.loader = _RecordingLoader(loader.name, loader.path)
        return spec


def install() -> None:
    """Install the import hook (once), and read the sources of user modules loaded before."""
    if any(isinstance(finder, _RecordingFinder) for finder in sys.meta_path):
        return
    sys.meta_path.insert(0, _RecordingFinder())
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        loader = getattr(module, "__loader__", None)
        plain = type(loader) is importlib.machinery.SourceFileLoader or name == "__main__"
        if isinstance(path, str) and plain and is_user_file(path):
            script = name == "__main__" and getattr(module, "__spec__", None) is None
            read_after_load(path, script)


def read_after_load(path: str, script: bool = False) -> None:
    """Record the source of code loaded before the hook: read now, so checked before use. A
    `script` (run by `python path`: compiled from the file itself, never from a .pyc) whose
    file did not change since this process started was compiled from these very bytes."""
    try:
        with open(path, "rb") as handle:
            before = os.fstat(handle.fileno())
            source = handle.read()
        after = os.stat(path)
    except OSError:
        return
    settled = script and _unchanged_since_start(before) and _unchanged_since_start(after)
    same = (before.st_ino, before.st_ctime_ns) == (after.st_ino, after.st_ctime_ns)
    with _lock:
        if settled and same and _key(path) not in _EXACT:
            _EXACT[_key(path)] = source
        else:
            _LATE.setdefault(_key(path), source)


# A file changed this long before the process's start (as /proc gives it, to 10 ms) was last
# changed before the process read it, even with file times stamped by a clock a tick behind.
_START_MARGIN_NS = 50_000_000


def _unchanged_since_start(st: os.stat_result) -> bool:
    start = _process_start_ns()
    changed = max(st.st_mtime_ns, st.st_ctime_ns)
    return start is not None and changed < start - _START_MARGIN_NS


def _process_start_ns() -> int | None:
    """When this process started, on the wall clock (Linux; elsewhere None)."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rpartition(b")")[2].split()
        ticks, hertz = int(fields[19]), os.sysconf("SC_CLK_TCK")  # starttime, field 22
        running = time.clock_gettime_ns(time.CLOCK_BOOTTIME) - ticks * 10**9 // hertz
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.time_ns() - running


# User modules are imported right after pyplantd, in the same script: hook them from now on.
install()
