"""Run a pipeline script exactly as `python pipeline.py` would.

`__name__ == '__main__'`, `__file__` set, the script's directory first on sys.path, argv set, and
the script's module installed as sys.modules['__main__'] so classes it defines pickle and
unpickle the same way in both modes. Depends on errors and sources only.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import ScriptError
from ..signatures.sources import note_source


def load_source(path: Path) -> bytes:
    """The script's bytes: compile() decodes them as Python does (a BOM, a coding cookie)."""
    if not path.is_file():
        raise ScriptError(f"Pipeline script {path} does not exist. Check the path.")
    return path.read_bytes()


@contextlib.contextmanager
def main_module(path: Path, argv: list[str]) -> Iterator[types.ModuleType]:
    """Install a fresh __main__ module for `path`, restoring the interpreter state afterwards."""
    module = types.ModuleType("__main__")
    module.__file__ = str(path)
    module.__builtins__ = __builtins__  # type: ignore[attr-defined]
    module.__spec__ = None
    saved = sys.modules.get("__main__"), list(sys.path), list(sys.argv)
    sys.modules["__main__"] = module
    sys.path.insert(0, str(path.parent))
    sys.argv = [str(path), *argv]
    try:
        yield module
    finally:
        main, sys.path[:], sys.argv[:] = saved
        if main is not None:
            sys.modules["__main__"] = main


def run_script(
    path: Path,
    argv: list[str] | None = None,
    after: Callable[[], None] | None = None,
    *,
    failed_exit_raises: bool = False,
) -> int:
    """Execute the script and then `after()` (still as __main__); returns the exit status.

    A `sys.exit()` ends the script as in Python. With `failed_exit_raises` (the daemon, which
    must not exit) a non-zero status is raised as the SystemExit itself, so its caller can say
    where it happened."""
    path = path.absolute()
    source = load_source(path)
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as err:
        line, column = syntax_error_position(err)
        raise ScriptError(f"{path}:{line}:{column}: syntax error: {syntax_message(err)}") from err
    note_source(str(path), source)  # signatures hash what was compiled, not a later save
    with main_module(path, argv or []) as module:
        try:
            exec(code, module.__dict__)
        except SystemExit as stop:
            if failed_exit_raises and stop.code not in (None, 0):
                raise
            status = _exit_status(stop.code)
        else:
            status = 0
        if after is not None:
            after()
    return status


def syntax_error_position(err: SyntaxError) -> tuple[int, int]:
    """Line and column, from 1 (an undecodable file's error says line 0, column -1)."""
    return max(err.lineno or 1, 1), max(err.offset or 1, 1)


def syntax_message(err: SyntaxError) -> str:
    """The message and one hint."""
    if "codec can't decode" in str(err.msg):
        hint = "Save the file as UTF-8, or declare its encoding (# -*- coding: latin-1 -*-)."
    else:
        hint = "Fix it and run again."
    return f"{err.msg}. {hint}"


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
