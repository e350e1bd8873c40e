"""An edited file is indexed from the chunks of its last version, parsing only the bytes the
edit changed: the index must answer every lookup exactly as a parse of the whole file."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator

import pytest

from pyplantd.signatures import code_index
from pyplantd.signatures.code_index import ModuleIndex, _splice

BASE = '''\
# -*- coding: latin-1 -*-
"""The module's docstring: \xe9t\xe9."""
import os
from os.path import *  # noqa: F403
import functools as ft

A = 1; B = 2
TEXT = """
def not_a_function():
    return 0
"""
TOTAL = A + \\
    B
REGISTRY = []


def setup():
    global A
    A = 10
    REGISTRY.append(A)


setup()


def register(func):
    REGISTRY.append(func)
    return func


@register
@ft.lru_cache(
    maxsize=None,
)
def decorated(x, y=A):
    """Docstrings do not count."""
# a comment at column 0 inside a function
    return x + y + len(TEXT) * 2


class Outer:
    """A class."""

    SIZE = len(TEXT)

    class Inner:
        def go(self):
            return "\xe9" + Outer.SIZE

    def method(self):
        def nested():
            """A nested docstring: stripped before its outer definitions are analysed."""
            return B
        return nested() + 1


try:
    import numpy as np
except ImportError:
    np = None


def last(x):
    return x + 1.0


if __name__ == "__main__":
    print(last(A), decorated(1))
'''

EDITS: dict[str, Callable[[str], str]] = {
    "last constant": lambda s: s.replace("x + 1.0", "x + 2.5"),
    "first statement": lambda s: s.replace("import os\n", "import os, sys\n"),
    "module docstring": lambda s: s.replace("docstring: ", "docstring, edited: "),
    "a class body": lambda s: s.replace("return nested() + 1", "return nested() + 2"),
    "a decorator": lambda s: s.replace("maxsize=None", "maxsize=8"),
    "a called function": lambda s: s.replace("A = 10", "A = 11"),
    "inside a multi-line string": lambda s: s.replace("return 0\n", "return 1\n"),
    "a continuation": lambda s: s.replace("    B\n", "    B * 2\n"),
    "a line with two statements": lambda s: s.replace("B = 2", "B = 3"),
    "a new function": lambda s: s.replace(
        "\n\ndef last", "\n\ndef extra():\n    return A\n\n\ndef last"
    ),
    "a removed function": lambda s: s.replace(
        "def register(func):\n    REGISTRY.append(func)\n    return func\n\n\n", ""
    ),
    "a redefinition": lambda s: s + "\n\ndef last(x):\n    return x - 1\n",
    "an else after an if": lambda s: s + "else:\n    print('imported')\n",
    "an opened string": lambda s: s.replace("def last(x):", 'X = """\ndef last(x):'),
    "a closed string at the end": lambda s: (
        s.replace("def last(x):", 'X = """\ndef last(x):') + '"""\n'
    ),
    "an indented line after a chunk": lambda s: s.replace("try:\n", "    y = 2\ntry:\n"),
    "a syntax error": lambda s: s.replace("x + 1.0", "x +"),
    "a reader shadowed": lambda s: s + "\nprint = None\n",
    "a comment only": lambda s: s.replace("# a comment at", "# an edited comment at"),
    "a trailing line without newline": lambda s: s + "Z = 1",
    "a new cookie": lambda s: s.replace("latin-1", "utf-8").encode("latin-1").decode("latin-1"),
    "nothing": lambda s: s,
}


def _encode(text: str, crlf: bool) -> bytes:
    raw = text.encode("latin-1")
    return raw.replace(b"\n", b"\r\n") if crlf else raw


def _tables(index: ModuleIndex) -> dict[str, object]:
    """Every lookup of an index, over all its definitions and names."""
    keys = [f"{q}#{i}" for q, lines in index.defs.items() for i in range(len(lines))]
    names = sorted(ModuleIndex.parse(index.source, "m.py")._names)  # every name defined
    return {
        "defs": {q: list(lines) for q, lines in index.defs.items()},
        "lines": {line: list(keys) for line, keys in sorted(index.lines.items())},
        "analyses": {k: index.analysis(k) for k in keys},
        "classes": {k: index.class_chains(k) for k in keys},
        "statements": {n: index.statements(n) for n in names},
        "stars": index.star_imports,
        "finds": [
            index.find(q, q.rpartition(".")[2], line) for q in index.defs for line in [None, 1, 40]
        ],
    }


def _whole(source: bytes) -> dict[str, object]:
    """The tables of a parse of the whole file, made with none of the analyses by text that
    splices made (which a wrong splice would have left there)."""
    caches = {name: getattr(code_index, name) for name in ("_DEFINITIONS", "_UNITS", "_SEEDED")}
    try:
        code_index._DEFINITIONS, code_index._UNITS = {}, {}
        code_index._SEEDED = {"definitions": {}, "units": {}}
        return _tables(ModuleIndex.parse(source, "m.py"))
    finally:
        for name, cache in caches.items():
            setattr(code_index, name, cache)


@pytest.fixture(autouse=True)
def new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    _forget(monkeypatch)


def _forget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget every index and analysis, as a new process."""
    for cache in ("_MODULES", "_LOADED", "_DEFINITIONS", "_UNITS"):
        monkeypatch.setattr(code_index, cache, {})
    monkeypatch.setattr(code_index, "_SEEDED", {"definitions": {}, "units": {}})


@pytest.fixture
def parsed_texts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The code each ast.parse of the index read (blank lines aside)."""
    texts: list[str] = []
    parse = ast.parse

    def recording(source: str | bytes, *args: object, **kw: object) -> ast.Module:
        text = source.decode("latin-1") if isinstance(source, bytes) else source
        texts.append(text.strip("\n"))
        return parse(source, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(code_index.ast, "parse", recording)
    yield texts


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_a_spliced_index_answers_as_a_parse_of_the_whole_file(
    edit: Callable[[str], str], crlf: bool
) -> None:
    spliced = _spliced_as_whole(_encode(BASE, crlf), _encode(edit(BASE), crlf))
    if spliced is not None:
        again = _splice(_encode(edit(edit(BASE)), crlf), "m.py", spliced.chunks())  # type: ignore[arg-type]
        if again is not None:
            assert _tables(again) == _whole(_encode(edit(edit(BASE)), crlf))


def _spliced_as_whole(before: bytes, after: bytes) -> ModuleIndex | None:
    """Splice `after` onto the chunks of `before`; whatever it gives must be what a parse of
    the whole file gives (and nothing where the file does not parse)."""
    chunks = ModuleIndex.parse(before, "m.py").chunks()
    assert chunks is not None
    spliced = _splice(after, "m.py", chunks)
    try:
        whole = _whole(after)
    except SyntaxError:
        assert spliced is None
        return None
    if spliced is not None:
        assert _tables(spliced) == whole
    return spliced


SPLICED = [
    "last constant", "first statement", "a class body", "a decorator", "an else after an if",
    "an indented line after a chunk", "a called function", "inside a multi-line string",
    "a new function", "a removed function", "a redefinition", "a comment only", "nothing",
    "a closed string at the end",
]  # fmt: skip
# the docstring is on a line next to the cookie: the text keys of every statement change
WHOLE = ["an opened string", "a syntax error", "a reader shadowed", "a new cookie",
         "module docstring"]  # fmt: skip


@pytest.mark.parametrize("name", SPLICED + WHOLE)
def test_only_what_can_be_parsed_alone_is_spliced(name: str) -> None:
    before, after = BASE.encode("latin-1"), EDITS[name](BASE).encode("latin-1")
    spliced = _splice(after, "m.py", ModuleIndex.parse(before, "m.py").chunks())  # type: ignore[arg-type]
    assert (spliced is not None) == (name in SPLICED)


def test_a_line_added_at_the_end_of_a_block_is_parsed_with_the_block(
    parsed_texts: list[str],
) -> None:
    before = BASE.encode("latin-1")
    chunks = ModuleIndex.parse(before, "m.py").chunks()
    parsed_texts.clear()
    after = BASE + "    print(A)\n"  # in the `if __name__` block, which ends the file
    spliced = _splice(after.encode("latin-1"), "m.py", chunks)  # type: ignore[arg-type]
    assert spliced is not None
    assert len(parsed_texts) == 2  # the new line alone fails; with the chunks around it, not
    assert parsed_texts[-1].startswith("if __name__") and "def" not in parsed_texts[-1]
    assert _tables(spliced) == _whole(after.encode("latin-1"))


def test_an_edit_of_the_last_function_parses_only_that_function(parsed_texts: list[str]) -> None:
    before = BASE.encode("latin-1")
    chunks = ModuleIndex.parse(before, "m.py").chunks()
    parsed_texts.clear()
    after = EDITS["last constant"](BASE).encode("latin-1")
    assert _splice(after, "m.py", chunks) is not None  # type: ignore[arg-type]
    assert parsed_texts == ["def last(x):\n    return x + 2.5"]


class DictCache:
    def __init__(self) -> None:
        self.bodies: dict[str, str] = {}

    def get(self, content_hash: str) -> str | None:
        return self.bodies.get(content_hash)

    def put(self, content_hash: str, body: Callable[[], str]) -> None:
        self.bodies[content_hash] = body()


def test_a_new_process_splices_from_the_cache_and_stores_the_result(
    monkeypatch: pytest.MonkeyPatch, parsed_texts: list[str]
) -> None:
    cache = DictCache()
    before = BASE.encode("latin-1")
    code_index.source_index("m.py", before, cache)
    for step, value in enumerate(["2.5", "3.5", "4.5"]):
        _forget(monkeypatch)
        parsed_texts.clear()
        after = BASE.replace("x + 1.0", f"x + {value}").encode("latin-1")
        index = code_index.source_index("m.py", after, cache)
        assert index is not None and index.tree is None, step  # spliced
        assert parsed_texts == [f"def last(x):\n    return x + {value}"]
        assert _tables(index) == _whole(after)
        loaded = ModuleIndex.from_json(cache.bodies[index.content_hash], after, "m.py")
        assert loaded is not None and _tables(loaded) == _tables(index)


NESTED = b"class A:\n    class B:\n        def f(self):\n            return 1\n\n\nclass C(A.B):\n"
NESTED += b"    pass\n"
PAIRS = {
    "no newline at the end, then more": (b"x = 1", b"x = 12\n"),
    "no newline at the end, then a line": (b"x = 1\ny = 2", b"x = 1\ny = 2\nz = 3\n"),
    "a BOM, the first line edited": (
        b"\xef\xbb\xbfA = 1\n\n\ndef f():\n    return '\xc3\xa9'\n",
        b"\xef\xbb\xbfA = 2\n\n\ndef f():\n    return '\xc3\xa9'\n",
    ),
    "a BOM, the last line edited": (
        b"\xef\xbb\xbfA = 1\n\n\ndef f():\n    return '\xc3\xa9'\n",
        b"\xef\xbb\xbfA = 1\n\n\ndef f():\n    return '\xc3\xa9!'\n",
    ),
    "CR line ends": (
        b"A = 1\rB = [\r  2]\rdef f():\r    return B\r",
        b"A = 1\rB = [\r  3]\rdef f():\r    return B\r",
    ),
    "a CRLF split by the edit": (b"A = 1\r\nB = 2\r\n", b"A = 1\r\rB = 2\r\n"),
    "a form feed": (
        b"\x0cdef f():\n\treturn 1\n\x0cX = 2\n",
        b"\x0cdef f():\n\treturn 2\n\x0cX = 2\n",
    ),
    "a continuation at column 0": (b"x = 1 + \\\n2\ny = 3\n", b"x = 1 + \\\n2\ny = 4\n"),
    "a backslash left open": (b"x = 1\ny = 2\n", b"x = 1 + \\\ny = 2\n"),
    "a decorator left alone": (
        b"def d(f):\n    return f\nX = 1\n",
        b"def d(f):\n    return f\n@d\nX = 1\n",
    ),
    "nested classes moved": (
        NESTED,
        b"Z = 0\n\n\n" + NESTED,
    ),
    "if __name__ edited": (
        b"def main():\n    return 1\n\n\nif __name__ == '__main__':\n    main()\n",
        b"def main():\n    return 1\n\n\nif __name__ == '__main__':\n    main()\n    main()\n",
    ),
    "a multi-line string at column 0 edited": (
        b'DOC = """\nline\n"""\n\n\ndef f():\n    return DOC\n',
        b'DOC = """\nline two\n"""\n\n\ndef f():\n    return DOC\n',
    ),
    "a function called at import time, edited before its call": (
        b"N = {}\n\n\ndef fill():\n    N['a'] = 1\n\n\nfill()\n",
        b"N = {}\n\n\ndef fill():\n    N['a'] = 2\n\n\nfill()\n",
    ),
    "a call added to an unchanged function": (
        b"N = {}\n\n\ndef fill():\n    N['a'] = 1\n",
        b"N = {}\n\n\ndef fill():\n    N['a'] = 1\n\n\nfill()\n",
    ),
    "everything removed": (b"A = 1\n\n\ndef f():\n    return A\n", b""),
    "from nothing": (b"", b"A = 1\n"),
    "comments only": (b"# one\n# two\n", b"# one\nA = 1\n# two\n"),
    "one class twice in one statement": (
        b"X = 1\nif X:\n    class A(int):\n        pass\nelse:\n    class A(str):\n        pass\n",
        b"X = 2\nif X:\n    class A(int):\n        pass\nelse:\n    class A(str):\n        pass\n",
    ),
}


@pytest.mark.parametrize(("before", "after"), PAIRS.values(), ids=PAIRS.keys())
def test_small_edits_splice_as_a_parse_of_the_whole_file(before: bytes, after: bytes) -> None:
    _spliced_as_whole(before, after)
