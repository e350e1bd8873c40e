"""Static scan: the ingredient names a reactor receives and sends, read from the source files that
define it, without running anything (the graph's edges before a reactor first runs).

A name counts when it is a string literal given to `receive` / `send` on the reactor's pipe (its
first parameter), in the reactor itself or in a function of the scanned files that the pipe is
passed to (a subreactor, a helper). What cannot be read that way is listed as hidden, never
guessed. Standard library only; safe on any thread (it only reads files).
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

Function = ast.FunctionDef | ast.AsyncFunctionDef
PIPE_METHODS = ("receive", "send")
REACTOR_DECORATORS = ("ReactorFunc",)


@dataclass
class Found:
    """What the scan read for one reactor."""

    receives: list[str] = field(default_factory=list)
    sends: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)  # e.g. "a name computed at run time (line 9)"


@dataclass
class _Parsed:
    digest: bytes  # of the bytes parsed: (mtime, size) can stay the same across a rewrite
    functions: dict[str, list[Function]]
    problem: str | None = None


# path -> its parse: a graph request re-parses only the files that changed since the last one
_CACHE: dict[str, _Parsed] = {}
_CACHE_LOCK = threading.Lock()


class SourceScan:
    """The functions of some source files, by name, to scan reactors from."""

    def __init__(self, files: Iterable[str | Path]) -> None:
        self.functions: dict[str, list[Function]] = {}
        self.problems: list[str] = []  # files that could not be read or parsed
        for path in dict.fromkeys(str(f) for f in files):
            parsed = _parse(path)
            if parsed.problem:
                self.problems.append(parsed.problem)
            for name, defs in parsed.functions.items():
                self.functions.setdefault(name, []).extend(defs)

    def reactor(self, name: str) -> Found | None:
        """The names reactor `name` receives and sends; None if its source was not found."""
        defs = self.functions.get(name, [])
        if not defs:
            return None
        func = next((d for d in defs if _is_reactor(d)), defs[0])
        found = Found()
        pipe = _parameter(func, 0)
        if pipe is not None:
            self._walk(func, pipe, found, set())
        return found

    def _walk(self, func: Function, pipe: str, found: Found, seen: set[tuple[int, str]]) -> None:
        if (id(func), pipe) in seen:  # recursive helpers
            return
        seen.add((id(func), pipe))
        calls = [node for node in ast.walk(func) if isinstance(node, ast.Call)]
        for node in sorted(calls, key=lambda call: (call.lineno, call.col_offset)):
            target = node.func
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == pipe
                and target.attr in PIPE_METHODS
            ):
                _note_name(node, target.attr, found)
            else:
                self._follow(node, pipe, found, seen)

    def _follow(self, call: ast.Call, pipe: str, found: Found, seen: set[tuple[int, str]]) -> None:
        """A call that passes the pipe on: scan the callee with its own parameter name."""
        where: int | str | None = next(
            (i for i, arg in enumerate(call.args) if _is_name(arg, pipe)), None
        )
        if where is None:
            where = next((k.arg for k in call.keywords if _is_name(k.value, pipe)), None)
        if where is None:
            return
        callee = _callee_name(call.func)
        if callee is None or hasattr(builtins, callee):
            return
        defs = self.functions.get(callee)
        if not defs:
            found.hidden.append(f"what {callee}() does with the pipe (line {call.lineno})")
            return
        param = _parameter(defs[0], where)
        if param is not None:
            self._walk(defs[0], param, found, seen)


def _parse(path: str) -> _Parsed:
    try:
        source = Path(path).read_bytes()
    except OSError as error:
        return _Parsed(b"", {}, f"{path}: {error.strerror}")
    digest = hashlib.blake2b(source, digest_size=16).digest()  # reading is cheap, parsing not
    with _CACHE_LOCK:
        cached = _CACHE.get(path)
    if cached is not None and cached.digest == digest:
        return cached
    try:
        tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError) as error:
        parsed = _Parsed(digest, {}, f"{path}: {error}")
    else:
        functions: dict[str, list[Function]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.setdefault(node.name, []).append(node)
        parsed = _Parsed(digest, functions)
    with _CACHE_LOCK:
        _CACHE[path] = parsed
    return parsed


def _note_name(call: ast.Call, method: str, found: Found) -> None:
    bucket = found.receives if method == "receive" else found.sends
    argument = call.args[0] if call.args else None
    if argument is None:
        argument = next((k.value for k in call.keywords if k.arg == "name"), None)
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        if argument.value not in bucket:
            bucket.append(argument.value)
    else:
        found.hidden.append(f"a name computed at run time ({method}, line {call.lineno})")


def _is_reactor(func: Function) -> bool:
    # `@ReactorFunc` or `@ReactorFunc(main_thread=True)`
    return any(
        _callee_name(d.func if isinstance(d, ast.Call) else d) in REACTOR_DECORATORS
        for d in func.decorator_list
    )


def _callee_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _parameter(func: Function, where: int | str) -> str | None:
    """The name of the parameter at position `where`, or named `where`."""
    names = [a.arg for a in (*func.args.posonlyargs, *func.args.args)]
    if isinstance(where, int):
        return names[where] if where < len(names) else None
    known = names + [a.arg for a in func.args.kwonlyargs]
    return where if where in known else None


def source_files(funcs: Iterable[object]) -> list[str]:
    """The files defining these functions, in order, once each (what to scan)."""
    files = (getattr(getattr(f, "__code__", None), "co_filename", None) for f in funcs)
    return list(dict.fromkeys(f for f in files if f and not f.startswith("<")))
