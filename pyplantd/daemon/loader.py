"""Runs the pipeline script fresh on every reload, as `python pipeline.py` would, and tells which
of the user's own files it used (the files to watch): the modules it imported, also those whose
import failed, code it loaded by path, and, after a failed load, the files to fix.

The user's modules (every .py file that is not a library: not the standard library, not in
site-packages, not pyplantd; inside the project or elsewhere on sys.path) are dropped from
sys.modules before each run so they are imported fresh, exactly the ones whose code signatures
hash their source; third-party modules stay loaded.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from pyplant_client.protocol import project_root

from ..errors import ScriptError
from ..hosting.script import run_script, syntax_error_position, syntax_message
from ..run.scheduler import failure_message
from ..signatures import code_index, sources
from ..signatures.origins import is_user_file

# `from pkg import name` of a submodule not written yet (ImportError.name_from is 3.12+)
_CANNOT_IMPORT = re.compile(r"^cannot import name '(\w+)'")


@dataclass(frozen=True)
class LoadError:
    """A script that could not be loaded: where and why, for editors and the console."""

    path: str
    line: int
    column: int
    message: str


class ScriptLoader:
    def __init__(self, pipeline: Path) -> None:
        self.pipeline = pipeline.absolute()
        self.root = project_root(self.pipeline)
        self._project_files: dict[str, bool] = {}
        self._paths: dict[str, Path] = {}  # file name as code has it -> absolute path
        # module name -> (module, its file if a user module): a re-scan only looks at modules
        # it has not seen, since getattr on hundreds of modules costs ~1 ms per save
        self._seen: dict[str, tuple[object, Path | None]] = {}
        self._outside: set[Path] | None = None  # folders outside the project, last reported
        # sources.noted_clock() and code_index.indexed_clock() when the last load began
        self._clock = self._indexed = 0
        self._last_good: set[Path] = set()  # watched after the last load that succeeded
        self._failed: set[Path] | None = None  # the user files the failed last load names
        self._loading = False  # executing the script: what is imported so far is no good set
        self._absent: set[Path] = set()  # where a module it did not find would be written
        self._read_memo: tuple[tuple[int, ...], dict[Path, str | None]] | None = None

    def _path(self, path: str) -> Path:
        found = self._paths.get(path)
        if found is None:
            found = self._paths[path] = Path(path).absolute()
        return found

    def is_project_file(self, path: str | None) -> bool:
        """A file of the user's own code, in the project or not: what signatures hash."""
        if not path:
            return False
        known = self._project_files.get(path)
        if known is None:  # sys.modules holds hundreds of modules: decide each path once
            known = is_user_file(path)
            self._project_files[path] = known
        return known

    def user_modules(self) -> dict[str, Path]:
        """Module name -> file of every user module imported right now."""
        found = {}
        for name, module in list(sys.modules.items()):
            seen = self._seen.get(name)
            if seen is None or seen[0] is not module:
                seen = (module, self._user_file(name, module))
                self._seen[name] = seen
            if seen[1] is not None:
                found[name] = seen[1]
        for gone in self._seen.keys() - sys.modules.keys():
            del self._seen[gone]  # keep no module alive that the interpreter dropped
        return found

    def _user_file(self, name: str, module: object) -> Path | None:
        path = getattr(module, "__file__", None)
        if name != "__main__" and self.is_project_file(path):
            return Path(str(path)).absolute()
        return None

    def purge(self) -> set[str]:
        """Forget the user's modules so the next run imports their current code; their names."""
        names = set(self.user_modules())
        for name in names:
            del sys.modules[name]
            del self._seen[name]
        return names

    def watched_files(self) -> set[Path]:
        """The script and the user's modules it imported, also those whose import failed. After
        a failed load, also the last good set and the files its error names (one that is not
        written yet too), until a load succeeds: the file to fix must stay watched."""
        files = {self.pipeline, *self.user_modules().values(), *self._read(), *self._absent}
        if self._failed is None and not self._loading:
            self._last_good = files
            return files
        return files | self._last_good | (self._failed or set())

    def folders_notice(self, files: set[Path]) -> str | None:
        """`watching your modules in ...`, at the first call and when the folders of `files`
        outside the project changed since the last one."""
        outside = {f.parent for f in files if not f.is_relative_to(self.root)}
        if outside == self._outside:
            return None
        self._outside = outside
        if not outside:
            return f"watching your modules in {self.root} only"
        folders = ", ".join(str(f) for f in sorted(outside))
        return f"watching your modules in {self.root} and, outside the project, in {folders}"

    def run(self) -> int:
        """Purge, then execute the script."""
        self.purge()
        return self.execute()

    def execute(self) -> int:
        """Execute the script; ScriptError on a syntax error, the script's own exception (a
        SystemExit too, unless its status is 0) if it raised one."""
        self._clock, self._indexed = sources.noted_clock(), code_index.indexed_clock()
        self._absent = set()
        self._loading = True
        try:
            status = run_script(self.pipeline, failed_exit_raises=True)
        except BaseException as failure:
            errors = _chain(failure)
            self._failed = {path for error in errors for path in self._files_named(error)}
            self._absent = {
                path
                for error in errors
                if isinstance(error, ImportError)
                for path in self._not_written_yet(error)
            }
            raise
        finally:
            self._loading = False
        self._failed = None
        return status

    def read_as(self) -> dict[Path, str | None]:
        """What the last load and its run read of the files they read, as a content hash (the
        watcher's) where known, and None for the files an import looked for and did not find:
        a watch starting later must see a save made since, not take it for what the run used."""
        found = {path: digest for path, digest in self._read().items() if digest}
        return {**found, **dict.fromkeys(self._absent)}

    def _read(self) -> dict[Path, str | None]:
        """The user files the last load and its run read: imported (also when the import then
        failed) or hashed from the file (code loaded by path, not imported); with the hex
        digest of the bytes read, if known."""
        now = (self._clock, self._indexed, sources.noted_clock(), code_index.indexed_clock())
        if self._read_memo is None or self._read_memo[0] != now:  # asked twice per cycle
            indexed = code_index.indexed_since(self._indexed)
            read = {**indexed, **sources.noted_since(self._clock)}  # the second: what the code is
            found = {self._path(p): d for p, d in read.items() if self.is_project_file(p)}
            self._read_memo = (now, found)
        return self._read_memo[1]

    def _files_named(self, error: BaseException) -> set[Path]:
        """The user files of an error's traceback, and of a syntax error's position."""
        found = set()
        tb = error.__traceback__
        while tb is not None:
            found.add(tb.tb_frame.f_code.co_filename)
            tb = tb.tb_next
        if isinstance(error, SyntaxError) and error.filename:
            found.add(error.filename)
        return {Path(path).absolute() for path in found if self.is_project_file(path)}

    def _not_written_yet(self, error: ImportError) -> set[Path]:
        """Where the module an ImportError misses would be: in the script's folder, or in the
        package it was asked from (`import pkg.name`, `from pkg import name`)."""
        if isinstance(error, ModuleNotFoundError) and error.name:
            package, _, name = error.name.rpartition(".")
        elif error.name and (match := _CANNOT_IMPORT.match(str(error))):
            package, name = error.name, match[1]
        else:
            return set()
        if package:
            folders = list(getattr(sys.modules.get(package), "__path__", None) or [])
        else:
            folders = [str(self.pipeline.parent)]
        paths = {Path(f, f"{name}.py").absolute() for f in folders}
        paths |= {Path(f, name, "__init__.py").absolute() for f in folders}
        return {path for path in paths if self.is_project_file(str(path))}


def _chain(error: BaseException) -> list[BaseException]:
    """An error and its causes and contexts, each once."""
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not e for e in found):
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def load_error(error: BaseException, pipeline: Path) -> LoadError:
    """Where a load failed: the SyntaxError's position, or the deepest frame in user code."""
    cause = error.__cause__ if isinstance(error, ScriptError) else error
    if isinstance(cause, SyntaxError):
        line, column = syntax_error_position(cause)
        return LoadError(cause.filename or str(pipeline), line, column, syntax_message(cause))
    frames = []
    tb = error.__traceback__
    while tb is not None:
        if is_user_file(tb.tb_frame.f_code.co_filename):
            frames.append(tb)
        tb = tb.tb_next
    where = frames[-1] if frames else None
    path = where.tb_frame.f_code.co_filename if where else str(pipeline)
    line = where.tb_lineno if where else 1
    return LoadError(path, line, 1, failure_message(error))
