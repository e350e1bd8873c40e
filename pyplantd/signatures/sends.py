"""What a reactor's code sends, known before it runs: the literal names of its
`pipe.send("name", ...)` and `pipe.allocate("name", ...)` calls.

The graph rules need it: two reactors sending the same ingredient, or a reactor waiting for what
it sends itself, are errors whatever ran before, so they must be seen without running anyone.
`send_candidates` reads bytecode (microseconds, so every reactor of every run can afford it) and
may name a few strings too many; `confirmed_sends` parses the source, exactly, and is asked only
when candidates collide. Names computed at run time are seen by neither: the scheduler catches
those when they are sent. Depends on nothing else in pyplantd.
"""

from __future__ import annotations

import ast
import dis
import functools
import inspect
import sys
import textwrap
from collections.abc import Callable
from types import CodeType
from typing import Any

_METHODS = frozenset({"send", "allocate"})
_LOAD_CONST = dis.opmap["LOAD_CONST"]
_CACHE = dis.opmap.get("CACHE", -1)  # inline cache entries follow some instructions (3.11+)
_RECEIVERS = frozenset(  # where `pipe` comes from: a local, or a cell when a closure uses it
    op for name, op in dis.opmap.items() if name.startswith(("LOAD_FAST", "LOAD_DEREF"))
)
# The method load: LOAD_METHOD up to 3.11; LOAD_ATTR with the low bit of its argument set (a
# method call) from 3.12.
_ATTR_IS_METHOD = sys.version_info >= (3, 12)
_LOAD_METHOD = dis.opmap["LOAD_ATTR"] if _ATTR_IS_METHOD else dis.opmap["LOAD_METHOD"]


def send_candidates(func: Callable[..., Any]) -> frozenset[str]:
    """The string literal each `x.send(...)` / `x.allocate(...)` call of `func` starts with: the
    names it sends, and maybe the head of an f-string or another object's send."""
    code = getattr(func, "__code__", None)
    if not isinstance(code, CodeType) or code.co_argcount < 1:
        return frozenset()
    return _scan(code)


def confirmed_sends(func: Callable[..., Any]) -> frozenset[str]:
    """The names `func` sends as a string literal on its first parameter (the pipe), from its
    source; empty when the source cannot be read."""
    code = getattr(func, "__code__", None)
    return _parse(code) if isinstance(code, CodeType) else frozenset()


@functools.lru_cache(maxsize=1024)
def _parse(code: CodeType) -> frozenset[str]:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(code)))
    except (OSError, TypeError, SyntaxError):
        return frozenset()
    func = tree.body[0] if tree.body else None
    if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
        return frozenset()
    params = [*func.args.posonlyargs, *func.args.args]
    if not params:
        return frozenset()
    pipe, found = params[0].arg, set()
    for node in ast.walk(func):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _METHODS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == pipe
        ):
            continue
        named = [k.value for k in node.keywords if k.arg == "name"]
        first = node.args[0] if node.args else (named[0] if named else None)
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            found.add(first.value)
    return frozenset(found)


@functools.lru_cache(maxsize=4096)  # code objects compare by value: a reload hits the cache
def _scan(code: CodeType) -> frozenset[str]:
    method_args = {
        (index << 1) | 1 if _ATTR_IS_METHOD else index
        for index, name in enumerate(code.co_names)
        if name in _METHODS
    }
    if not method_args:
        return frozenset()
    raw, found = code.co_code, set[str]()
    for arg in method_args:
        if arg > 255:
            continue  # behind an EXTENDED_ARG: never matched as one byte
        pattern = bytes((_LOAD_METHOD, arg))
        offset = raw.find(pattern, 2)  # the bytes are searched in C, a reactor in ~1 us
        while 0 <= offset < len(raw) - 2:
            if offset % 2 == 0 and raw[offset - 2] in _RECEIVERS:
                _note_const(code, raw, offset + 2, found)
            offset = raw.find(pattern, offset + 1)
    return frozenset(found)


def _note_const(code: CodeType, raw: bytes, after: int, found: set[str]) -> None:
    """The string constant loaded right after the method (inline caches skipped), if any."""
    while after < len(raw) and raw[after] == _CACHE:
        after += 2
    if after + 1 < len(raw) and raw[after] == _LOAD_CONST:
        value = code.co_consts[raw[after + 1]]
        if isinstance(value, str):
            found.add(value)
