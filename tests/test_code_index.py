"""The code index: its JSON form answers exactly as a fresh parse, and spares the parse."""

from __future__ import annotations

import ast
import doctest
import importlib
import json
import os
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pyplantd import Plant
from pyplantd.signatures import code_index
from pyplantd.signatures.code_index import ModuleIndex, content_digest
from pyplantd.signatures.signature import CodeSignature, SignatureComputer
from pyplantd.store.manifest import Manifest

SOURCE = '''
"""A module with most of what the index has to get right."""
import functools
import numpy as np
from dataclasses import dataclass

SCALE = 2.5
LIMITS, NAMES = (0, 10), ["a", "b"]
TABLE: dict = {"k": (1, None)}
TABLE["x"] = 3
square = lambda v: v * v  # noqa: E731

def helper(x, factor=SCALE):
    """Docstrings do not count."""
    return np.clip(x * factor, *LIMITS)

def helper(x, factor=SCALE):  # a redefinition: the last one counts
    return np.clip(x * factor + 1, *LIMITS)

def outer(x):
    def inner(y):
        return helper(y) + square(y)
    return inner(x)

@dataclass
class Model(object):
    """A model."""
    size: int = len(NAMES)
    def predict(self, x):
        global TABLE
        import math
        from os import path as p
        return math.sqrt(x) + len(p.sep) + self.size
    @property
    def doubled(self):
        return self.size * 2
    class Inner:
        def go(self):
            return SCALE

def fit(n):
    return Model(n).doubled + helper(n)

@functools.lru_cache
def cached(x):
    return Model().predict(x) + outer(x)

def f(x):
    return cached(x) + Model.Inner().go() + square(x)

if SCALE > 1:
    def f(x):  # noqa: F811
        return cached(x) + Model.Inner().go() + square(x) * 2

from os.path import *  # noqa: F403
for k in range(2):
    TABLE[k] = fit(k)
'''


class DictCache:
    """An IndexCache in a dict; `put` writes at once."""

    def __init__(self) -> None:
        self.bodies: dict[str, str] = {}
        self.puts = 0

    def get(self, content_hash: str) -> str | None:
        return self.bodies.get(content_hash)

    def put(self, content_hash: str, body: Callable[[], str]) -> None:
        self.bodies[content_hash] = body()
        self.puts += not content_hash.startswith("analyses:")  # file indexes, counted


class Sample:
    """SOURCE written as a module; `new_process()` forgets every index, as a new process would."""

    def __init__(self, root: Path) -> None:
        self.path = root / "sample_mod.py"
        self.path.write_text(textwrap.dedent(SOURCE).lstrip("\n"))
        self.parses = 0

    def load(self) -> ModuleType:
        sys.modules.pop("sample_mod", None)
        importlib.invalidate_caches()
        return importlib.import_module("sample_mod")

    def new_process(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for cache in ("_MODULES", "_LOADED", "_DEFINITIONS", "_UNITS"):
            monkeypatch.setattr(code_index, cache, {})
        monkeypatch.setattr(code_index, "_SEEDED", {"definitions": {}, "units": {}})

    def signatures(self, cache: DictCache | None = None) -> list[CodeSignature]:
        module = self.load()
        computer = SignatureComputer(index_cache=cache)
        funcs = [module.f, module.fit, module.outer, module.square, module.Model.predict]
        return [computer.signature(func) for func in funcs]


@pytest.fixture
def sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sample]:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    made = Sample(tmp_path)
    parse = ast.parse

    def counting_parse(source: object, filename: str = "<unknown>", *args: object, **kw: object):
        made.parses += filename == str(made.path)
        return parse(source, filename, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(code_index.ast, "parse", counting_parse)
    made.new_process(monkeypatch)
    yield made
    sys.modules.pop("sample_mod", None)


def _everything(index: ModuleIndex, source: bytes) -> dict[str, object]:
    """What every public lookup of `index` answers, over every definition and name of SOURCE."""
    fresh = ModuleIndex.parse(source, "sample_mod.py")
    keys = [f"{q}#{i}" for q, lines in fresh.defs.items() for i in range(len(lines))]
    finds = [
        (q, line, index.find(q, q.rpartition(".")[2], line))
        for q, lines in fresh.defs.items()
        for line in [None, *lines, 999]
    ]
    names = ["SCALE", "LIMITS", "NAMES", "TABLE", "square", "f", "np", "missing"]
    return {
        "finds": finds,
        "analyses": {k: index.analysis(k) for k in keys},
        "classes": {k: index.class_chains(k) for k in keys},
        "statements": {n: index.statements(n) for n in names},
        "stars": index.star_imports,
    }


def test_json_form_answers_every_lookup_as_a_fresh_parse() -> None:
    source = textwrap.dedent(SOURCE).encode()
    parsed = ModuleIndex.parse(source, "sample_mod.py")
    loaded = ModuleIndex.from_json(parsed.to_json(), source, "sample_mod.py")
    assert loaded is not None and loaded.tree is None
    assert _everything(loaded, source) == _everything(parsed, source)
    assert loaded.tree is None and loaded._twin is None  # none of that needed a parse


def test_cached_index_gives_identical_signatures_without_a_parse(
    sample: Sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = sample.signatures()
    cache = DictCache()
    sample.new_process(monkeypatch)
    assert sample.signatures(cache) == fresh and cache.puts == 1
    sample.new_process(monkeypatch)
    sample.parses = 0
    assert sample.signatures(cache) == fresh
    assert sample.parses == 1  # the lambda `square`, found by line: the only reparse
    assert cache.puts == 1


def test_unchanged_file_is_not_parsed_by_a_second_process(
    sample: Sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    def signature(cache: DictCache) -> CodeSignature:
        module = sample.load()  # a class, helpers, constants, redefinitions: but no lambda
        return SignatureComputer(index_cache=cache).signature(module.fit)

    cache = DictCache()
    first = signature(cache)
    assert sample.parses == 1
    sample.new_process(monkeypatch)
    assert signature(cache) == first
    assert sample.parses == 1


BAD_BODIES = {
    "not json": lambda good: "{not json",
    "truncated": lambda good: good[: len(good) // 2],
    "another content": lambda good: good.replace('"content_hash":"', '"content_hash":"0'),
    "another format": lambda good: good.replace('"format":', '"format":9', 1),
    "another python": lambda good: good.replace('"python":"', '"python":"2.', 1),
    "wrong shape": lambda good: json.dumps({**json.loads(good), "analyses": {"f#0": [1, 2]}}),
    "not an object": lambda good: "[]",
}


@pytest.mark.parametrize("corrupt", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_corrupt_or_mismatching_cache_body_is_ignored_and_reparsed(
    sample: Sample, monkeypatch: pytest.MonkeyPatch, corrupt: Callable[[str], str]
) -> None:
    fresh = sample.signatures()
    key = content_digest(sample.path.read_bytes())
    cache = DictCache()
    cache.bodies[key] = corrupt(ModuleIndex.parse(sample.path.read_bytes(), "x").to_json())
    sample.new_process(monkeypatch)
    sample.parses = 0
    assert sample.signatures(cache) == fresh
    assert sample.parses == 1 and cache.puts == 1  # parsed, and the body replaced
    assert ModuleIndex.from_json(cache.bodies[key], sample.path.read_bytes(), "x") is not None


def test_touched_file_with_the_same_bytes_keeps_its_index(sample: Sample) -> None:
    first = code_index.module_index(str(sample.path))
    sample.path.write_bytes(sample.path.read_bytes())  # new mtime, same content
    stat = sample.path.stat()
    code_index._MODULES[str(sample.path)] = ((0, stat.st_size), first)  # as if mtime changed
    assert code_index.module_index(str(sample.path)) is first
    assert sample.parses == 1


def test_an_edit_analyses_only_the_definitions_whose_text_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = (
        b"# coding: utf-8\nimport os\n\n\n"
        b"def f(x):\n    return os.sep + x\n\n\n"
        b"def g():\n    return 1\n"
    )
    after = before.replace(b"return 1", b"return 2").replace(b"import os", b"import os\n\n")
    first = ModuleIndex.parse(before, "m.py")
    digests = {name: first.analysis(first.find(name, name) or "") for name in ("f", "g")}
    walked: list[str] = []
    analyze = code_index._analyze
    monkeypatch.setattr(
        code_index, "_analyze", lambda node: walked.append(node.name) or analyze(node)
    )
    edited = ModuleIndex.parse(after, "m.py")
    again = {name: edited.analysis(edited.find(name, name) or "") for name in ("f", "g")}
    assert walked == ["g"]  # f moved down two lines but its text is the same
    assert again["f"] == digests["f"]
    assert again["g"] is not None and digests["g"] is not None
    assert again["g"].digest != digests["g"].digest


def test_an_edit_analyses_only_the_module_statements_whose_text_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = b"N = 3\nGRID = [N] * 2\nfor k in range(N):\n    GRID.append(k)\nM = 1\n"
    after = b"\n\n" + before.replace(b"M = 1", b"M = 2")
    first = ModuleIndex.parse(before, "m.py")
    names = ("N", "GRID", "M")
    digests = {n: [s.digest for s in first.statements(n)] for n in names}
    walked: list[str] = []
    analyze = code_index._analyze_parts
    monkeypatch.setattr(
        code_index,
        "_analyze_parts",
        lambda unit: walked.append(ast.unparse(unit.node)) or analyze(unit),
    )
    edited = ModuleIndex.parse(after, "m.py")
    again = {n: [s.digest for s in edited.statements(n)] for n in names}
    assert walked == ["M = 2"]  # the others moved down two lines, with the same text
    assert again["N"] == digests["N"] and again["GRID"] == digests["GRID"]
    assert again["M"] != digests["M"]
    assert [s.kind for s in edited.statements("GRID")] == ["code", "code"]  # with the loop's


def _counting_analyses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The definitions (by name; "?": a lambda, analysed as found) and module-level statements
    analysed from now on."""
    walked: list[str] = []
    analyze, parts = code_index._analyze, code_index._analyze_parts
    monkeypatch.setattr(
        code_index,
        "_analyze",
        lambda node: walked.append(getattr(node, "name", "?")) or analyze(node),
    )
    monkeypatch.setattr(
        code_index,
        "_analyze_parts",
        lambda unit: walked.append(ast.unparse(unit.node)) or parts(unit),
    )
    return walked


def test_a_new_process_analyses_only_what_an_edit_changed(
    sample: Sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DictCache()
    sample.signatures(cache)
    sample.path.write_text(sample.path.read_text().replace("self.size * 2", "self.size * 3"))
    sample.new_process(monkeypatch)
    expected = sample.signatures()  # no cache at all: everything analysed afresh
    sample.new_process(monkeypatch)
    walked = _counting_analyses(monkeypatch)
    assert sample.signatures(cache) == expected
    assert sorted(set(walked) - {"?"}) == ["Model", "doubled"]  # the edited method, its class


def test_analyses_of_another_python_or_corrupt_are_not_used(
    sample: Sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DictCache()
    fresh = sample.signatures(cache)
    (key,) = [k for k in cache.bodies if k.startswith("analyses:")]
    good = cache.bodies[key]
    bodies = [
        good.replace('"python":"', '"python":"2.', 1),
        "{not json",
        json.dumps(
            {
                **json.loads(good),
                "definitions": {k: [1, 2] for k in json.loads(good)["definitions"]},
            }
        ),
    ]
    for number, body in enumerate(bodies):
        cache.bodies[key] = body
        sample.path.write_text(sample.path.read_text() + f"\n# a new version: {number}\n")
        sample.new_process(monkeypatch)
        walked = _counting_analyses(monkeypatch)
        assert sample.signatures(cache) == fresh
        assert "helper" in walked and "predict" in walked  # analysed again
        monkeypatch.undo()
        monkeypatch.syspath_prepend(str(sample.path.parent))


def test_same_size_rewrite_within_one_clock_tick_is_seen(sample: Sample) -> None:
    """File times move in ticks of a few ms: a same-size edit can keep (mtime, size)."""
    path = str(sample.path)
    first = code_index.module_index(path)
    stat = sample.path.stat()
    text = sample.path.read_text()
    edited = text.replace("return", "return ", 1).replace("  ", " ", 1)  # same size, new bytes
    assert len(edited) == len(text) and edited != text
    sample.path.write_text(edited)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as if within the same tick
    second = code_index.module_index(path)
    assert second is not None and first is not None
    assert second.content_hash != first.content_hash
    assert second.content_hash == content_digest(edited.encode())


def test_a_stamp_older_than_a_tick_is_trusted_without_reading(
    sample: Sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(sample.path)
    hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(path, ns=(hour_ago, hour_ago))
    changed = os.stat(path).st_ctime_ns  # utime cannot set it back: trusted a tick later
    while time.time_ns() <= changed + code_index._TICK_NS:
        time.sleep(0.01)
    first = code_index.module_index(path)
    reads: list[str] = []
    load = code_index._load
    monkeypatch.setattr(code_index, "_load", lambda *a: reads.append(a[0]) or load(*a))
    assert code_index.module_index(path) is first
    assert reads == []  # trusted (mtime, size): not even read


PIPELINE = """
from pyplantd import ReactorFunc
import numpy as np

@ReactorFunc
def make(pipe):
    pipe.send("a", np.arange(3.0))

@ReactorFunc
def use(pipe):
    a = yield pipe.receive("a")
    pipe.send("b", a + 1)
"""


def test_plant_keeps_code_indexes_in_its_manifest_and_sees_edits(
    sample: Sample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample.path.write_text(PIPELINE)

    def run_in_new_process() -> dict[str, str]:
        sample.new_process(monkeypatch)
        module = sample.load()
        with Plant(tmp_path / "plant") as plant:
            return {d.reactor: d.status for d in plant.run_reactors([module.use])}

    assert run_in_new_process() == {"make": "ran", "use": "ran"} and sample.parses == 1
    assert run_in_new_process() == {"make": "cached", "use": "ran"} and sample.parses == 1
    sample.path.write_text(PIPELINE.replace("np.arange(3.0)", "np.arange(3.0) * 2"))
    assert run_in_new_process() == {"make": "ran", "use": "ran"} and sample.parses == 2
    assert run_in_new_process() == {"make": "cached", "use": "ran"} and sample.parses == 2
    manifest = Manifest(tmp_path / "plant")
    try:
        assert manifest.code_index(content_digest(sample.path.read_bytes())) is not None
    finally:
        manifest.close()


def test_docstring_examples_run() -> None:
    assert doctest.testmod(code_index).failed == 0


def test_a_corrupt_entry_met_after_loading_makes_the_index_parse_and_store_a_sound_one(
    sample: Sample, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries of the JSON form are decoded when first asked for: one found corrupt then is
    answered from a parse of the file, and the parse replaces the cached body."""
    source = sample.path.read_bytes()
    fresh = sample.signatures()
    cache = DictCache()
    good = json.loads(ModuleIndex.parse(source, "x").to_json())
    good["statements"]["TABLE"] = [["not", "a", "statement"]]
    cache.bodies[content_digest(source)] = json.dumps(good)
    sample.new_process(monkeypatch)
    sample.parses = 0
    assert sample.signatures(cache) == fresh
    assert sample.parses == 1 and cache.puts == 1  # parsed once, and the body replaced
    repaired = ModuleIndex.from_json(cache.bodies[content_digest(source)], source, "x")
    assert repaired is not None and repaired.statements("TABLE") == ModuleIndex.parse(
        source, "x"
    ).statements("TABLE")
