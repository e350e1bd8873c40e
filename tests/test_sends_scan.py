"""The bytecode scan behind send_candidates searches its bytes in C: it must find exactly what
an instruction-by-instruction walk finds, on any code."""

from __future__ import annotations

import argparse
import ast
import collections
import email.message
import json
import types

from pyplantd.signatures import sends


def _walked(code: types.CodeType) -> frozenset[str]:
    """The scan as an instruction-by-instruction walk (the oracle)."""
    method_args = {
        (index << 1) | 1 if sends._ATTR_IS_METHOD else index
        for index, name in enumerate(code.co_names)
        if name in sends._METHODS
    }
    raw, found = code.co_code, set()
    for offset in range(2, len(raw) - 2, 2):
        if raw[offset] != sends._LOAD_METHOD or raw[offset + 1] not in method_args:
            continue
        if raw[offset - 2] not in sends._RECEIVERS:
            continue
        after = offset + 2
        while after < len(raw) and raw[after] == sends._CACHE:
            after += 2
        if after + 1 < len(raw) and raw[after] == sends._LOAD_CONST:
            value = code.co_consts[raw[after + 1]]
            if isinstance(value, str):
                found.add(value)
    return frozenset(found)


def _codes(*modules: types.ModuleType) -> list[types.CodeType]:
    found, stack = [], []
    for module in modules:
        for value in vars(module).values():
            stack.extend(_code_of(value))
            if isinstance(value, type):
                for member in vars(value).values():
                    stack.extend(_code_of(member))
    while stack:
        code = stack.pop()
        found.append(code)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return found


def _code_of(value: object) -> list[types.CodeType]:
    value = getattr(value, "__func__", value)
    code = getattr(value, "__code__", None)
    return [code] if isinstance(code, types.CodeType) else []


def reactor(pipe, other, n=3):  # type: ignore[no-untyped-def]
    pipe.send("a", 1)
    pipe.allocate("b", (n,))
    pipe.send(name="c", value=2)
    other.send("not-the-pipe?")  # a local too: a candidate
    pipe.send(f"d{n}", 3)
    [x.send("e") for x in (pipe,)]
    outer = pipe

    def inner():  # type: ignore[no-untyped-def]
        outer.send("f", 4)

    inner()
    pipe.attr.send("g")  # a method of something computed: not the pipe


def test_the_scan_finds_what_a_walk_of_the_instructions_finds() -> None:
    codes = _codes(argparse, ast, collections, email.message, json, sends)
    codes += [reactor.__code__, *_codes(types.SimpleNamespace(reactor=reactor))]
    assert len(codes) > 500
    for code in codes:
        assert sends._scan.__wrapped__(code) == _walked(code), code
    assert sends._scan.__wrapped__(reactor.__code__) >= {"a", "b", "d"}
