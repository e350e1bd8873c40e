"""Runs the pipeline script fresh on every reload, as `python pipeline.py` would, and tells which
of the user's own modules it imported (the files to watch).

The user's modules (files under the project root that are not libraries) are dropped from
sys.modules before each run so they are imported fresh; third-party modules stay loaded.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ScriptError
from ..origins import is_user_file
from ..scheduler import failure_message
from ..script import run_script, syntax_error_position, syntax_message

_PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


def project_root(pipeline: Path) -> Path:
    """The nearest folder above the pipeline that looks like a project; else its own folder."""
    folder = pipeline.absolute().parent
    for candidate in (folder, *folder.parents):
        if any((candidate / marker).exists() for marker in _PROJECT_MARKERS):
            return candidate
    return folder


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
        # module name -> (module, its file if a user module): a re-scan only looks at modules
        # it has not seen, since getattr on hundreds of modules costs ~1 ms per save
        self._seen: dict[str, tuple[object, Path | None]] = {}

    def is_project_file(self, path: str | None) -> bool:
        if not path:
            return False
        known = self._project_files.get(path)
        if known is None:  # sys.modules holds hundreds of modules: decide each path once
            known = is_user_file(path) and Path(path).absolute().is_relative_to(self.root)
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

    def purge(self) -> None:
        """Forget the user's modules so the next run imports their current code."""
        for name in self.user_modules():
            del sys.modules[name]
            del self._seen[name]

    def watched_files(self) -> set[Path]:
        return {self.pipeline, *self.user_modules().values()}

    def run(self) -> int:
        """Purge, then execute the script."""
        self.purge()
        return self.execute()

    def execute(self) -> int:
        """Execute the script; ScriptError on a syntax error, the script's own exception (a
        SystemExit too, unless its status is 0) if it raised one."""
        return run_script(self.pipeline, failed_exit_raises=True)


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
