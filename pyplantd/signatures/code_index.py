"""Parsed source files: each definition indexed by qualname, hashed as its normalized AST, with
the names it uses. A file's index has a JSON form keyed by the file's content hash, so that an
unchanged file costs no parse in a new process; and the analyses of a file's definitions and
statements are kept by their own text, with its top-level statements in chunks, so that after
an edit a new process parses and analyses only what the edit changed (see _splice). Depends on
nothing in pyplantd but bindings, and never imports or runs the code it reads.
"""

from __future__ import annotations

import ast
import io
import itertools
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import xxhash

from .bindings import (
    READERS,
    Body,
    Unit,
    body_writes,
    collect_units,
    function_writes,
    module_units,
    shadowed_readers,
)

Chain = tuple[str, ...]  # `name` or `name.attr.attr`
Source = bytes | str  # a file's bytes, or text decoded already
Import = tuple[str, str | None, int]  # (module, attr of `from module import attr`, level)
DefKey = str  # "qualname#n": the n-th definition of qualname in the file; "<lambda>#Lline"
Stamp = tuple[int, int, int, int, int]  # see file_stamp

# Bump FORMAT whenever the index or the hashed text changes; the AST itself varies by Python.
FORMAT = 3
_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_BLOCKS = ("body", "handlers", "orelse", "finalbody", "cases")  # where statements nest
_NOTED = (ast.Name, ast.Attribute, ast.Global, ast.Import, ast.ImportFrom)


@dataclass(frozen=True)
class Analysis:
    """One definition's AST, hashed, and the names it uses; independent of any run."""

    digest: str
    chains: tuple[Chain, ...]
    header: frozenset[str] = frozenset()  # names in defaults and decorators: evaluated outside
    declared_global: frozenset[str] = frozenset()  # module state the code writes: not constant
    imports: dict[str, Import] = field(default_factory=dict)


@dataclass(frozen=True)
class Statement:
    """A module-level statement that defines a name (see bindings), hashed, with the names it
    uses: `kind` is "import", "def" (hashed as the definition; only its defaults and decorators
    run now) or "code"; `strong` if it binds or mutates the name, not only passes it to a call."""

    digest: str
    chains: tuple[Chain, ...]
    imports: dict[str, Import]
    kind: str
    strong: bool


class IndexCache(Protocol):
    """Where file indexes outlive the process: JSON bodies by content hash. `put` takes a
    callable so that a buffering cache serializes only when it writes, after the run."""

    def get(self, content_hash: str) -> str | None: ...

    def put(self, content_hash: str, body: Callable[[], str]) -> None: ...


class ModuleIndex:
    """One source file, docstrings stripped, its definitions indexed by qualname and first line.

    Built by parsing (`parse`, analyses made on demand) or from its JSON form (`from_json`,
    every analysis ready, no tree: the file is parsed again only to find a lambda by line).

    >>> index = ModuleIndex.parse(b"def f(x): return g(x)", "m.py")
    >>> key = index.find("f", "f")
    >>> index.analysis(key).chains
    (('g',), ('x',))
    >>> ModuleIndex.from_json(index.to_json(), index.source, "m.py").analysis(key).chains
    (('g',), ('x',))
    """

    def __init__(self, source: Source, filename: str, content_hash: str) -> None:
        self.source, self.filename, self.content_hash = source, filename, content_hash
        self.cached = False  # in an IndexCache already (loaded from one, or put into one)
        self.defs: dict[str, list[int]] = defaultdict(list)  # qualname -> first lines, in order
        self._lines_index: dict[int, list[DefKey]] | None = defaultdict(list)  # see lines
        self._analyses: dict[DefKey, Analysis | None] = {}
        # module-level name -> the statements that define it, in source order
        self._statements: dict[str, tuple[Statement, ...]] = {}
        self._stars: tuple[Import, ...] = ()  # `from module import *` at module level
        self._class_chains: dict[DefKey, frozenset[Chain]] = {}
        # only while a tree is at hand (parsed here, or for lambdas by the parsed twin)
        self.tree: ast.Module | None = None
        self._nodes: dict[DefKey, ast.AST] = {}
        self._units: list[Unit] = []
        self._names: dict[str, list[tuple[int, bool]]] = defaultdict(list)  # -> (unit, strong)
        self._by_id: dict[int, Analysis | None] = {}  # the tree lives as long as this index
        self._twin: ModuleIndex | None = None
        self._lines: list[bytes] | None = None
        # analyses made or reused by text here (kept for the next version of the file)
        self._by_text: dict[str, dict[str, Analysis | None]] = {"definitions": {}, "units": {}}
        # from JSON: the entries not decoded yet (a run asks for a few of a big file's)
        self._raw: _RawIndex | None = None
        self.on_repair: Callable[[ModuleIndex], None] | None = None  # a corrupt entry was met
        # the file's top-level statements in groups (see _Chunk): kept for the next version
        self._top: list[ast.stmt] = []  # as parsed, docstring included
        self._chunks: _Chunks | None = None

    @classmethod
    def parse(cls, source: Source, filename: str, content_hash: str | None = None) -> ModuleIndex:
        """Index a file's bytes (bytes, so that ast honours an encoding cookie), or text that is
        decoded already (what a runner compiled, a notebook cell)."""
        index = cls(source, filename, content_hash or source_digest(source))
        index.tree = ast.parse(source, filename=filename)
        index._top = list(index.tree.body)
        _strip_docstring(index.tree)
        index._index_units(module_units(index.tree))
        stack: list[tuple[ast.AST, str]] = [(index.tree, "")]
        while stack:  # statements only, pre-order, so that a later redefinition comes last
            node, prefix = stack.pop()
            inner = index._add(node, prefix)
            blocks = [c for f in _BLOCKS for c in getattr(node, f, None) or ()]
            stack.extend((child, inner) for child in reversed(blocks))
        return index

    def _index_units(self, units: list[Unit]) -> None:
        self._units = units
        stars = []
        for number, unit in enumerate(units):
            for name in unit.bound | unit.passed:
                self._names[name].append((number, name in unit.bound))
            node = unit.node
            if isinstance(node, ast.ImportFrom) and "*" in unit.bound:
                stars.append((node.module or "", None, node.level))
        self._stars = tuple(stars)

    def _add(self, node: ast.AST, prefix: str) -> str:
        if not isinstance(node, _SCOPES):
            return prefix
        qualname = prefix + node.name
        key = f"{qualname}#{len(self.defs[qualname])}"
        self.defs[qualname].append(_first_line(node))
        self.lines[_first_line(node)].append(key)
        self._nodes[key] = node
        _strip_docstring(node)
        return qualname + ("." if isinstance(node, ast.ClassDef) else ".<locals>.")

    @property
    def lines(self) -> dict[int, list[DefKey]]:
        """First line -> the keys of the definitions starting there (made when first asked)."""
        if self._lines_index is None:
            found: dict[int, list[DefKey]] = defaultdict(list)
            for qualname, first_lines in self.defs.items():
                for i, first in enumerate(first_lines):
                    found[first].append(f"{qualname}#{i}")
            self._lines_index = found
        return self._lines_index

    def find(self, qualname: str, name: str, line: int | None = None) -> DefKey | None:
        first_lines = self.defs.get(qualname, [])
        if len(first_lines) == 1:  # the common case, answered as below
            return qualname + "#0"
        keys = [(f"{qualname}#{i}", first) for i, first in enumerate(first_lines)]
        if len(keys) > 1 and line is not None:
            keys = [(key, first) for key, first in keys if first == line]
        if keys or line is None:
            return keys[-1][0] if keys else None
        if name == "<lambda>":  # rare: not worth indexing every expression up front
            return self._lambda_at(line)
        at_line = [key for key in self.lines.get(line, []) if _def_name(key) == name]
        return at_line[0] if len(at_line) == 1 else None

    def analysis(self, key: DefKey) -> Analysis | None:
        if key not in self._analyses and self._raw is not None and self._is_def_key(key):
            try:  # every definition of the file has an entry
                self._analyses[key] = self._raw.analysis(key)
            except _CORRUPT:
                self._repair()
        if key not in self._analyses:
            node = self._node(key)
            self._analyses[key] = self._analyze_definition(node) if node is not None else None
        return self._analyses[key]

    def _is_def_key(self, key: DefKey) -> bool:
        qualname, _, number = key.rpartition("#")
        return number.isdigit() and int(number) < len(self.defs.get(qualname, ()))

    def _analyze_definition(self, node: ast.AST) -> Analysis | None:
        """Analyses by the definition's own text: after an edit of one function of a file,
        the file's other definitions are not walked again (each walk costs ~0.1 ms)."""
        if not isinstance(node, _SCOPES):
            return _analyze(node)
        key = _definition_key(self._source_lines(), node)
        return self._by_text_kept("definitions", _DEFINITIONS, key, lambda: _analyze(node))

    def _by_text_kept(
        self,
        kind: str,
        kept: dict[str, Analysis | None],
        key: str,
        analyze: Callable[[], Analysis | None],
    ) -> Analysis | None:
        """The analysis of the text `key` of this kind: kept by this process, else seeded by an
        earlier one, else made now; recorded as this file's (see analyses_json)."""
        if key not in kept:
            known, seeded = _seeded(kind, key)
            kept[key] = seeded if known else analyze()
            if len(kept) > _DEFINITIONS_KEPT:
                del kept[next(iter(kept))]  # the oldest
        self._by_text[kind][key] = kept[key]
        return kept[key]

    def _source_lines(self) -> list[bytes]:
        if self._lines is None:  # the tokenizer's lines: \n, \r\n and \r end one
            source = self.source
            raw = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
            self._lines = raw.splitlines(keepends=True)
        return self._lines

    def class_chains(self, key: DefKey) -> set[Chain] | None:
        """Names the class statement itself evaluates: bases, decorators, class attributes;
        None if `key` is not a class."""
        if key not in self._class_chains and self._raw is not None and key in self._raw.classes:
            try:
                self._class_chains[key] = self._raw.class_chains(key)
            except _CORRUPT:
                self._repair()
        if key not in self._class_chains:
            node = self._nodes.get(key)  # from JSON, every class is in _class_chains already
            if not isinstance(node, ast.ClassDef):
                return None
            nodes = [*node.bases, *node.keywords, *node.decorator_list]
            nodes += [s for s in node.body if not isinstance(s, _SCOPES)]  # methods: as objects
            found = [self._analysis_of(n) for n in nodes]
            self._class_chains[key] = frozenset(c for a in found if a is not None for c in a.chains)
        return set(self._class_chains[key])

    def dump_digest(self, key: DefKey) -> str | None:
        """The digest of `ast.dump`, for a definition too deeply nested to analyse."""
        node = self._node(key)
        return hash_text(ast.dump(node)) if node is not None else None

    def statements(self, name: str) -> tuple[Statement, ...]:
        """The module-level statements that define `name` (see bindings), in source order."""
        if name not in self._statements and self._raw is not None and name in self._raw.statements:
            try:
                self._statements[name] = self._raw.statements_of(name)
            except _CORRUPT:
                self._repair()
        if name not in self._statements:  # from JSON, every defined name is there already
            self._statements[name] = tuple(
                self._statement(self._units[number], strong)
                for number, strong in self._names.get(name, [])
            )
        return self._statements[name]

    @property
    def star_imports(self) -> tuple[Import, ...]:
        return self._stars

    def _statement(self, unit: Unit, strong: bool) -> Statement:
        node = unit.node
        if unit.definition is not None:  # its body runs later: only the header runs now
            analysis = self._analyze_definition(unit.definition)
            digest = analysis.digest if analysis else hash_text(ast.dump(unit.definition))
            header = sorted(analysis.header) if analysis else []
            return Statement(digest, tuple((n,) for n in header), {}, "def", strong)
        analysis = self._analyze_unit(unit)
        kind = "import" if isinstance(node, ast.Import | ast.ImportFrom) else "code"
        if analysis is None:  # absurdly nested: the dump alone, no names followed
            return Statement(hash_text(repr([ast.dump(n) for _, ns in unit.parts for n in ns])),
                             (), {}, kind, strong)  # fmt: skip
        return Statement(analysis.digest, analysis.chains, analysis.imports, kind, strong)

    def _analyze_unit(self, unit: Unit) -> Analysis | None:
        """Analyses by the text of the unit's statement and headers, as definitions are."""
        key = _unit_key(self._source_lines(), unit)
        if key is None:
            return _analyze_parts(unit)  # no position to key it by: not kept
        return self._by_text_kept("units", _UNITS, key, lambda: _analyze_parts(unit))

    def _analysis_of(self, node: ast.AST) -> Analysis | None:
        if id(node) not in self._by_id:
            self._by_id[id(node)] = _analyze(node)
        return self._by_id[id(node)]

    def _node(self, key: DefKey) -> ast.AST | None:
        if self.tree is not None:
            return self._nodes.get(key)
        twin = self._parsed_twin()
        return twin._nodes.get(key) if twin is not None else None

    def _parsed_twin(self) -> ModuleIndex | None:
        if self._twin is None:
            try:
                self._twin = ModuleIndex.parse(self.source, self.filename, self.content_hash)
            except (SyntaxError, ValueError):
                return None
        return self._twin

    def _lambda_at(self, line: int) -> DefKey | None:
        parsed = self if self.tree is not None else self._parsed_twin()
        if parsed is None or parsed.tree is None:
            return None
        key = f"<lambda>#L{line}"
        if key not in parsed._nodes:
            at_line = [n for n in ast.walk(parsed.tree) if _is_lambda_at(n, line)]
            if len(at_line) != 1:  # two lambdas on a line: ambiguous
                return None
            parsed._nodes[key] = at_line[0]
        return key

    def _repair(self) -> None:
        """A corrupt entry in the JSON form: answer from a parse of the source from now on,
        and let the owner store a sound index in place of the corrupt one."""
        self._raw = None
        try:
            parsed = ModuleIndex.parse(self.source, self.filename, self.content_hash)
        except (SyntaxError, ValueError):
            self._analyses, self._statements, self._class_chains = {}, {}, {}
            self.defs, self._lines_index, self._stars = defaultdict(list), None, ()
            return
        repair = self.on_repair
        vars(self).update(vars(parsed))  # this object is what callers hold: it becomes the parse
        if repair is not None:
            repair(self)

    # -- the JSON form ----------------------------------------------------------------------
    def _analyze_all(self) -> tuple[list[DefKey], list[str]]:
        """Analyse every definition and defined name (once); their keys and names."""
        keys = [f"{q}#{i}" for q, lines in self.defs.items() for i in range(len(lines))]
        if self.tree is not None:
            names = list(self._names.keys())
        else:
            raw = self._raw.statements.keys() if self._raw is not None else ()
            names = list(dict.fromkeys([*self._statements.keys(), *raw]))
        for key in keys:
            self.analysis(key)
        for name in names:
            self.statements(name)
        return keys, names

    def to_json(self) -> str:
        """Everything the common paths need, every definition analysed: no tree required.
        Analyses share their names by number (`shapes`): most definitions of a file use the
        same few names, so the form is small and a loaded index shares the decoded tuples."""
        keys, names = self._analyze_all()
        classes = {k: self.class_chains(k) for k in keys}
        shapes = _ShapeWriter()

        def statement(s: Statement) -> list[Any]:
            return [s.digest, shapes.number(s.chains, [], [], s.imports), s.kind, s.strong]

        body = {
            "format": FORMAT,
            "python": _PYTHON,
            "content_hash": self.content_hash,
            "defs": self.defs,
            "analyses": {k: shapes.analysis(self.analysis(k)) for k in keys},
            "statements": {n: list(map(statement, self.statements(n))) for n in names},
            "stars": self._stars,
            "classes": {k: sorted(c) for k, c in classes.items() if c is not None},
        }
        return shapes.with_shapes(json.dumps(body, separators=(",", ":")))

    def analyses_json(self) -> str:
        """The analyses of every definition and module-level statement of this file, by their
        text (see `seed_analyses`), as JSON."""
        self._analyze_all()
        shapes = _ShapeWriter()
        by_text = {
            kind: {key: shapes.analysis(a) for key, a in found.items()}
            for kind, found in self._by_text.items()
        }
        chunks = self.chunks()
        body = {
            "format": FORMAT,
            "python": _PYTHON,
            **by_text,
            "chunks": _chunks_to_json(chunks) if chunks is not None else None,
        }
        return shapes.with_shapes(json.dumps(body, separators=(",", ":")))

    def chunks(self) -> _Chunks | None:
        """The file's top-level statements in groups, each with what the index takes from it
        (see _Chunk); None for text (not bytes) or a file whose units depend on the whole."""
        if self._chunks is None and self.tree is not None and isinstance(self.source, bytes):
            self._chunks = _tree_chunks(self)
        return self._chunks

    @classmethod
    def from_json(cls, body: str, source: Source, filename: str) -> ModuleIndex | None:
        """The index of `source` from its JSON form; None if the body does not fit `source`
        (another format or Python, another content, not an index). Entries are decoded when
        first asked for; a corrupt one then makes the index parse the source (see _repair)."""
        content_hash = source_digest(source)
        try:
            data = json.loads(body)
            if (data["format"], data["python"], data["content_hash"]) != (
                FORMAT, _PYTHON, content_hash,
            ):  # fmt: skip
                return None
            raw = _RawIndex(data)
            index = cls(source, filename, content_hash)
            index.defs, index._lines_index = raw.defs(), None
            index._stars = tuple((str(m), None, int(level)) for m, _, level in data["stars"])
        except _CORRUPT:
            return None
        index._raw = raw
        index.cached = True
        return index


_CORRUPT = (ValueError, KeyError, TypeError, AttributeError, IndexError)


class _ShapeWriter:
    """Writes the names analyses use once each, by number: most definitions of a file use
    the same few, so the JSON is small and what reads it decodes each once."""

    def __init__(self) -> None:
        self._numbers: dict[tuple[object, ...], int] = {}
        self._texts: list[str] = []

    def number(
        self,
        chains: tuple[Chain, ...],
        header: list[str],
        declared: list[str],
        imports: dict[str, Import],
    ) -> int:
        key = (chains, *header, "", *declared, "", *sorted(imports.items()))
        if key not in self._numbers:
            self._numbers[key] = len(self._texts)
            parts = (chains, header, declared, imports)
            self._texts.append(json.dumps(parts, separators=(",", ":")))
        return self._numbers[key]

    def analysis(self, a: Analysis | None) -> list[Any] | None:
        if a is None:
            return None
        return [
            a.digest,
            self.number(a.chains, sorted(a.header), sorted(a.declared_global), a.imports),
        ]

    def with_shapes(self, body: str) -> str:
        """A JSON object with `shapes` added."""
        return body[:-1] + ',"shapes":[' + ",".join(self._texts) + "]}"


def _shape_from_json(data: Any) -> _Shape:
    chains, header, declared, imports = data
    return (
        tuple(tuple(map(str, c)) for c in chains),
        frozenset(map(str, header)),
        frozenset(map(str, declared)),
        _imports_from_json(imports),
    )


# the names an analysis uses: chains, header, declared global, imports (see to_json)
_Shape = tuple[tuple[Chain, ...], frozenset[str], frozenset[str], dict[str, Import]]


class _RawIndex:
    """The entries of an index's JSON form, decoded one at a time when asked for."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.analyses: dict[str, Any] = _checked(data["analyses"], dict)
        self.statements: dict[str, Any] = _checked(data["statements"], dict)
        self.classes: dict[str, Any] = _checked(data["classes"], dict)
        self._shapes: list[Any] = _checked(data["shapes"], list)
        self._decoded: dict[int, _Shape] = {}

    def defs(self) -> defaultdict[str, list[int]]:
        defs: defaultdict[str, list[int]] = defaultdict(list)
        for qualname, first_lines in _checked(self.data["defs"], dict).items():
            if not isinstance(first_lines, list) or not all(type(n) is int for n in first_lines):
                raise TypeError(f"not a definition: {qualname!r}")
            defs[qualname] = first_lines
        return defs

    def _shape(self, number: object) -> _Shape:
        if type(number) is not int or number < 0:
            raise TypeError(f"not a shape: {number!r}")
        if number not in self._decoded:  # shared by every entry with these names
            self._decoded[number] = _shape_from_json(self._shapes[number])
        return self._decoded[number]

    def analysis(self, key: str) -> Analysis | None:
        data = self.analyses[key]
        if data is None:
            return None
        digest, number = data
        chains, header, declared, imports = self._shape(number)
        return Analysis(_str(digest), chains, header, declared, imports)

    def statements_of(self, name: str) -> tuple[Statement, ...]:
        found = []
        for digest, number, kind, strong in _checked(self.statements[name], list):
            if kind not in ("import", "def", "code") or not isinstance(strong, bool):
                raise TypeError(f"not a statement of {name!r}")
            chains, _, _, imports = self._shape(number)
            found.append(Statement(_str(digest), chains, imports, kind, strong))
        return tuple(found)

    def class_chains(self, key: str) -> frozenset[Chain]:
        return frozenset(tuple(map(str, c)) for c in _checked(self.classes[key], list))


def _checked(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _imports_from_json(imports: dict[str, Any]) -> dict[str, Import]:
    return {str(k): (str(m), _optional_str(a), int(level)) for k, (m, a, level) in imports.items()}


def _definition_key(lines: list[bytes], node: ast.AST) -> str:
    """The key of a definition's analysis: its text (and a cookie that says what it means)."""
    end = node.end_lineno  # type: ignore[attr-defined]
    return content_digest(
        b"".join([*_cookie_lines(lines), b"\0", *lines[_first_line(node) - 1 : end]])
    )


def _unit_key(lines: list[bytes], unit: Unit) -> str | None:
    """The key of a module-level statement's analysis: the text of its parts; None if a part
    has no position."""
    texts = [*_cookie_lines(lines), b"\0"]
    for label, nodes in unit.parts:
        texts.append(label.encode() + b"\1")
        for node in nodes:
            start, end = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
            if start is None or end is None:
                return None
            columns = f"{node.col_offset}:{node.end_col_offset}\2".encode()  # type: ignore[attr-defined]
            texts += [columns, *lines[start - 1 : end], b"\3"]
    return content_digest(b"".join(texts))


def _cookie_lines(lines: list[bytes]) -> list[bytes]:
    """The first two lines if they may hold an encoding cookie (which changes what the bytes
    mean), else none: a line added at the top then keeps the other statements' keys."""
    return lines[:2] if any(b"coding" in line for line in lines[:2]) else []


def _optional_str(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"expected a string or null, got {value!r}")
    return value


# Analyses of definitions by their text (see ModuleIndex._analyze_definition), oldest first.
_DEFINITIONS: dict[str, Analysis | None] = {}
# Analyses of module-level statements by their text (see ModuleIndex._analyze_unit).
_UNITS: dict[str, Analysis | None] = {}
_DEFINITIONS_KEPT = 10_000
# Analyses earlier processes made, by text, as JSON until asked for (see seed_analyses).
_SEEDED: dict[str, dict[str, Any]] = {"definitions": {}, "units": {}}
_UNKNOWN = object()


def _analyses_key(path: str) -> str:
    """The cache key of the analyses of the last version of `path` indexed (see
    `ModuleIndex.analyses_json`)."""
    return "analyses:" + content_digest(path.encode("utf-8", "surrogatepass"))


def seed_analyses(path: str, cache: IndexCache) -> _Chunks | None:
    """Make the analyses of the last version of `path` indexed (by an earlier process) known
    by their text: an analysis depends on the text analysed alone, so a definition the edit
    left as it was is not analysed again. Returns that version's chunks (see _splice)."""
    body = cache.get(_analyses_key(path))
    if body is None:
        return None
    try:
        data = json.loads(body)
        if (data["format"], data["python"]) != (FORMAT, _PYTHON):
            return None
        shapes = [_shape_from_json(shape) for shape in data["shapes"]]
        found = {kind: _checked(data[kind], dict) for kind in _SEEDED}
    except _CORRUPT:
        return None  # a corrupt entry costs only the analyses
    for kind, analyses in found.items():  # read when asked for (most are, but not all)
        _SEEDED[kind].update((key, (entry, shapes)) for key, entry in analyses.items())
        while len(_SEEDED[kind]) > _DEFINITIONS_KEPT:
            del _SEEDED[kind][next(iter(_SEEDED[kind]))]
    try:
        return _chunks_from_json(data.get("chunks"))
    except _CORRUPT:
        return None  # a corrupt entry costs a parse


def _seeded(kind: str, key: str) -> tuple[bool, Analysis | None]:
    """Whether an earlier process analysed this text (seeded), and its analysis."""
    data = _SEEDED[kind].pop(key, _UNKNOWN)
    if data is _UNKNOWN:
        return False, None
    entry, shapes = data
    if entry is None:
        return True, None
    try:
        digest, number = entry
        if type(number) is not int or number < 0:
            raise TypeError(f"not a shape: {number!r}")
        return True, Analysis(_str(digest), *shapes[number])
    except _CORRUPT:
        return False, None  # a corrupt entry: analysed again


def _put(cache: IndexCache, path: str, index: ModuleIndex) -> None:
    """Keep a new index for the next process: the file's, and its analyses by text."""
    index.cached = True
    cache.put(index.content_hash, index.to_json)
    cache.put(_analyses_key(path), index.analyses_json)


# Indexes shared by every SignatureComputer of the process: path -> (stamp, index), where the
# stamp is None while it cannot be trusted (see _trusted_stamp).
_MODULES: dict[str, tuple[Stamp | None, ModuleIndex | None]] = {}
# File times advance in clock ticks (often 1-10 ms): a write of the same size within the tick of
# the one we read leaves the stamp unchanged, so a stamp this recent is checked by content.
_TICK_NS = 50_000_000


# path -> the value of `_indexed` when module_index last answered for it (see indexed_since)
_INDEXED_AT: dict[str, int] = {}
_indexed = 0  # how many times module_index answered so far


def module_index(path: str, cache: IndexCache | None = None) -> ModuleIndex | None:
    """The index of a file: kept while the file's stamp stays the same, else found by content
    hash (this process, then `cache`), parsed only when new."""
    global _indexed
    _indexed += 1
    _INDEXED_AT[path] = _indexed
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    stamp = file_stamp(stat)
    if path not in _MODULES or _MODULES[path][0] != stamp:
        previous = _MODULES.get(path, (None, None))[1]
        _MODULES[path] = (_trusted_stamp(stamp), _load(path, cache, previous))
    index = _MODULES[path][1]
    if cache is not None and index is not None and not index.cached:
        _put(cache, path, index)
    return index


def indexed_clock() -> int:
    """A mark to pass to `indexed_since` later."""
    return _indexed


def indexed_since(clock: int) -> dict[str, str | None]:
    """The files `module_index` was asked for after `clock` (code hashed from the file, not from
    what an import read), with the content hash of the index given (None: none)."""
    found: dict[str, str | None] = {}
    for path, indexed in list(_INDEXED_AT.items()):
        if indexed > clock:
            index = _MODULES.get(path, (None, None))[1]
            found[path] = index.content_hash if index is not None else None
    return found


def file_stamp(stat: os.stat_result) -> Stamp:
    """What tells a rewrite of a file without reading it: (mtime, size) alone do not, as tools
    restore them (`cp -p`, `rsync -t`, `os.utime`); the change time cannot be set back, and a
    file replaced by another has a new inode."""
    return stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino, stat.st_dev


def _trusted_stamp(stamp: Stamp) -> Stamp | None:
    """The stamp, if the file was last written or changed well before now (read time)."""
    return stamp if max(stamp[0], stamp[1]) < time.time_ns() - _TICK_NS else None


def _load(path: str, cache: IndexCache | None, previous: ModuleIndex | None) -> ModuleIndex | None:
    try:
        with open(path, "rb") as file:
            source = file.read()
    except (OSError, ValueError):
        return None
    return _index_of(source, path, cache, previous)


# The index of the source each path's loaded code was compiled from (see source_index).
_LOADED: dict[str, ModuleIndex | None] = {}


def source_index(path: str, source: Source, cache: IndexCache | None = None) -> ModuleIndex | None:
    """The index of `source`, the text the code from `path` was compiled from (which the file
    may no longer hold): kept while the source is the same, else found as `module_index` does."""
    previous = _LOADED.get(path)
    index = _index_of(source, path, cache, previous)
    _LOADED[path] = index
    if cache is not None and index is not None and not index.cached:
        _put(cache, path, index)
    return index


def _index_of(
    source: Source, path: str, cache: IndexCache | None, previous: ModuleIndex | None
) -> ModuleIndex | None:
    content_hash = source_digest(source)
    if previous is not None and previous.content_hash == content_hash:
        return previous  # touched or rewritten, but the same bytes
    body = cache.get(content_hash) if cache is not None else None
    index = ModuleIndex.from_json(body, source, path) if body is not None else None
    if index is not None:
        if cache is not None:  # a corrupt entry met later: store the parse in its place
            index.on_repair = lambda repaired: _put(cache, path, repaired)
        return index
    chunks = previous.chunks() if previous is not None else None
    if cache is not None and (previous is None or chunks is None):  # e.g. in a new process
        chunks = seed_analyses(path, cache) or chunks
    if chunks is not None:
        spliced = _splice(source, path, chunks)
        if spliced is not None:
            return spliced
    try:
        return ModuleIndex.parse(source, path, content_hash)
    except (SyntaxError, ValueError):
        return None


def content_digest(source: bytes) -> str:
    """The key of a file's index: the xxh3_128 hex digest of its bytes."""
    return xxhash.xxh3_128_hexdigest(source)


def source_digest(source: Source) -> str:
    """`content_digest` of bytes; text (decoded already, so no cookie applies) never shares a
    key with bytes."""
    if isinstance(source, str):
        return content_digest(b"\0text\0" + source.encode("utf-8", "surrogatepass"))
    return content_digest(source)


def hash_text(text: str) -> str:
    """The 128-bit hex digest used for every code signature component."""
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogatepass"))


class _Scanner:
    """One pass over a definition: its AST as text (no positions), and the names it uses."""

    def __init__(self) -> None:
        self.chains: set[Chain] = set()
        self.imports: dict[str, Import] = {}
        self.declared: set[str] = set()

    def dump(self, node: object) -> str:
        if isinstance(node, list):
            return f"[{','.join([self.dump(n) for n in node])}]"
        if not isinstance(node, ast.AST):
            return repr(node)
        if isinstance(node, _NOTED):
            self._note(node)
        fields = ",".join([self.dump(getattr(node, f, None)) for f in node._fields])
        return f"{type(node).__name__}({fields})"

    def _note(self, node: ast.AST) -> None:
        if isinstance(node, ast.Global):
            self.declared.update(node.names)
        elif isinstance(node, ast.Import):  # `import a.b` binds `a`
            self.imports.update({a.asname or a.name.split(".")[0]: _import(a) for a in node.names})
        elif isinstance(node, ast.ImportFrom):
            mod, level = node.module or "", node.level
            self.imports.update({a.asname or a.name: (mod, a.name, level) for a in node.names})
        elif chain := _chain(node):
            self.chains.add(chain)  # `a.b.c` also adds `a.b` and `a`: harmless, resolved once


def _analyze_parts(unit: Unit) -> Analysis | None:
    """A module-level statement with the headers around it, as `_analyze` does a definition."""
    scanner = _Scanner()
    try:
        text = "|".join(f"{label}:{scanner.dump(list(nodes))}" for label, nodes in unit.parts)
    except RecursionError:
        return None
    imports = {k: v for k, v in scanner.imports.items() if k != "*"}
    chains = tuple(sorted(scanner.chains))
    return Analysis(hash_text(text), chains, frozenset(), frozenset(scanner.declared), imports)


def _analyze(node: ast.AST) -> Analysis | None:
    """Hashes what `ast.dump(node)` shows, and collects the names used, in a single pass."""
    scanner = _Scanner()
    try:
        text = scanner.dump(node)
    except RecursionError:  # absurdly nested expressions: fall back to the code object
        return None
    header = {n.id for h in _header_nodes(node) for n in ast.walk(h) if isinstance(n, ast.Name)}
    return Analysis(
        hash_text(text),
        tuple(sorted(scanner.chains)),
        frozenset(header),
        frozenset(scanner.declared),
        {k: v for k, v in scanner.imports.items() if k != "*"},
    )


def _import(alias: ast.alias) -> Import:
    return (alias.name if alias.asname else alias.name.split(".")[0]), None, 0


def _chain(node: ast.AST) -> Chain | None:
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or (not attrs and not isinstance(node.ctx, ast.Load)):
        return None
    return (node.id, *reversed(attrs))


def _header_nodes(node: ast.AST) -> list[ast.AST]:
    args = getattr(node, "args", None)
    if not isinstance(args, ast.arguments):
        return []
    defaults = [*args.defaults, *(d for d in args.kw_defaults if d is not None)]
    return [*defaults, *getattr(node, "decorator_list", [])]


def _strip_docstring(
    node: ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef,
) -> None:
    body = node.body
    first = body[0].value if body and isinstance(body[0], ast.Expr) else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        node.body = body[1:] or [ast.Pass()]


def _first_line(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", [])  # co_firstlineno is the first decorator's
    return min([node.lineno, *(d.lineno for d in decorators)])  # type: ignore[attr-defined]


def _is_lambda_at(node: ast.AST, line: int) -> bool:
    return isinstance(node, ast.Lambda) and node.lineno == line


def _def_name(key: DefKey) -> str:
    return key.rpartition("#")[0].rpartition(".")[2]


# -- an edited file, indexed from the last version's chunks -------------------------------------
#
# A chunk is a run of top-level statements (no two chunks share a line) with the comment and
# blank lines after them, and what the index takes from it, independent of where it sits in
# the file: its definitions, classes and module-level statements, keyed by their text. After
# an edit, the chunks the new bytes start and end with are taken as they were; only the bytes
# between are parsed. That is sound because a chunk starts a top-level statement at a line
# start and ends where its statements are complete: the same bytes there tokenize alike, and
# bytes between that parse alone (anything left open - a bracket, a string, a backslash, a
# block's header, a decorator, an `else:` of the statement before - fails to) are whole
# statements in the file too.


@dataclass(frozen=True)
class _UnitRow:
    """A module-level statement of a chunk, as collect_units made it (see bindings)."""

    kind: str  # "def", "import" or "code", as Statement.kind
    key: str  # the text key of its analysis (a def's: the definition's)
    bound: frozenset[str]
    passed: frozenset[str]
    calls: frozenset[str]
    star: Import | None  # `from module import *`
    function: str | None  # the name of a def of a function (whose body may write names)
    writes: Body | None = None  # that body's writes and calls, when they were asked for
    # the def itself while its tree is at hand (not kept in JSON): its writes when asked for
    definition: ast.AST | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class _Chunk:
    length: int  # bytes
    digest: str  # content_digest of the bytes
    lines: int  # how many lines it spans (the tokenizer's: \n, \r\n and \r end one)
    defs: tuple[tuple[str, int, str], ...]  # (qualname, first line - the chunk's, text key)
    classes: dict[int, frozenset[Chain]]  # number in defs -> class_chains
    units: tuple[_UnitRow, ...]
    # its JSON form, as read (a file's chunks are mostly written again as they were read)
    data: list[Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class _Chunks:
    cookie: str  # content_digest of _cookie_lines: the text keys depend on it
    chunks: tuple[_Chunk, ...]


def _groups(top: list[ast.stmt]) -> list[list[ast.stmt]]:
    """Top-level statements, grouped so that no two groups share a line."""
    groups: list[list[ast.stmt]] = []
    last = 0
    for statement in top:
        if groups and _first_line(statement) <= last:
            groups[-1].append(statement)
        else:
            groups.append([statement])
        last = max(last, statement.end_lineno or 0)
    return groups


def _scopes(statements: list[ast.stmt], strip: bool) -> Iterator[tuple[ast.AST, str]]:
    """Every def and class in these statements with its qualname, in the order of
    ModuleIndex.parse, each docstring stripped first if `strip` (as that parse does)."""
    stack: list[tuple[ast.AST, str]] = [(s, "") for s in reversed(statements)]
    while stack:
        node, prefix = stack.pop()
        if isinstance(node, _SCOPES):
            qualname = prefix + node.name
            if strip:
                _strip_docstring(node)
            yield node, qualname
            prefix = qualname + ("." if isinstance(node, ast.ClassDef) else ".<locals>.")
        blocks = [c for f in _BLOCKS for c in getattr(node, f, None) or ()]
        stack.extend((child, prefix) for child in reversed(blocks))


def _known(kind: str, key: str) -> tuple[bool, Analysis | None]:
    """The analysis of a text analysed before, in this process or (seeded) an earlier one."""
    store = _DEFINITIONS if kind == "definitions" else _UNITS
    if key in store:
        return True, store[key]
    known, seeded = _seeded(kind, key)
    if known:
        _keep(store, key, seeded)
    return known, seeded


def _keep(store: dict[str, Analysis | None], key: str, analysis: Analysis | None) -> None:
    store[key] = analysis
    if len(store) > _DEFINITIONS_KEPT:
        del store[next(iter(store))]  # the oldest


def _class_chains_of(node: ast.ClassDef) -> frozenset[Chain]:
    nodes = [*node.bases, *node.keywords, *node.decorator_list]
    nodes += [s for s in node.body if not isinstance(s, _SCOPES)]  # methods: as objects
    found = [_analyze(n) for n in nodes]
    return frozenset(c for a in found if a is not None for c in a.chains)


def _chunk(
    statements: list[ast.stmt],
    raw: bytes,
    lines: list[bytes],
    first: int,
    end: int,
    start: int,
    stop: int,
    strip: bool,
    writes_of: set[str],
    class_chains: Callable[[ast.ClassDef], frozenset[Chain]] = lambda node: _class_chains_of(node),
) -> _Chunk | None:
    """The chunk of lines first..end-1 (bytes start..stop) holding `statements`, their
    analyses made or found by text; None if one cannot be keyed by text. `strip`: the
    docstrings of its definitions are still there (not stripped by a parse)."""
    defs: list[tuple[str, int, str]] = []
    classes: dict[int, frozenset[Chain]] = {}
    scopes = list(_scopes(statements, strip))  # every docstring stripped before any analysis
    for node, qualname in scopes:
        key = _definition_key(lines, node)
        known, _ = _known("definitions", key)
        if not known:
            _keep(_DEFINITIONS, key, _analyze(node))
        if isinstance(node, ast.ClassDef):
            classes[len(defs)] = class_chains(node)
        defs.append((qualname, _first_line(node) - first, key))
    units = []
    for unit in collect_units(statements):
        node, definition = unit.node, unit.definition
        if definition is not None:
            key, kind = _definition_key(lines, definition), "def"
        else:
            found = _unit_key(lines, unit)
            if found is None:
                return None
            key = found
            kind = "import" if isinstance(node, ast.Import | ast.ImportFrom) else "code"
            if not _known("units", key)[0]:
                _keep(_UNITS, key, _analyze_parts(unit))
        star = None
        if isinstance(node, ast.ImportFrom) and "*" in unit.bound:
            star = (node.module or "", None, node.level)
        function, writes, tree = None, None, None
        if isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef):
            function, tree = definition.name, definition
            writes = body_writes(definition) if function in writes_of else None
        units.append(_UnitRow(
            kind, key, unit.bound, unit.passed, unit.calls, star, function, writes, tree,
        ))  # fmt: skip
    body = raw[start:stop]
    return _Chunk(
        stop - start, content_digest(body), end - first, tuple(defs), classes, tuple(units)
    )


def _line_starts(lines: list[bytes]) -> list[int]:
    return list(itertools.accumulate(map(len, lines), initial=0))


def _tree_chunks(index: ModuleIndex) -> _Chunks | None:
    """The chunks of a parsed file (see _Chunk); None if its units depend on the whole file
    (it binds a reader builtin) or a statement cannot be keyed by text."""
    raw = index.source
    assert isinstance(raw, bytes)
    lines = index._source_lines()
    if shadowed_readers(index._units):
        return None
    definitions: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    for unit in index._units:
        if isinstance(unit.definition, ast.FunctionDef | ast.AsyncFunctionDef):
            definitions.setdefault(unit.definition.name, []).append(unit.definition)
    called: set[str] = set()  # the functions that run at import time: their writes are kept

    def bodies(name: str) -> list[Body]:
        called.add(name)
        return [body_writes(node) for node in definitions[name]]

    function_writes([u.calls for u in index._units], definitions.keys(), bodies)
    starts = _line_starts(lines)
    groups = _groups(index._top)
    keys = {id(node): key for key, node in index._nodes.items()}

    def class_chains(node: ast.ClassDef) -> frozenset[Chain]:  # as the index has them
        return frozenset(index.class_chains(keys[id(node)]) or ())

    chunks = []
    for number, group in enumerate(groups):
        first = 1 if number == 0 else _first_line(group[0])
        end = _first_line(groups[number + 1][0]) if number + 1 < len(groups) else len(lines) + 1
        chunk = _chunk(
            group,
            raw,
            lines,
            first,
            end,
            starts[first - 1],
            starts[end - 1],
            False,
            called,
            class_chains,
        )
        if chunk is None:
            return None
        chunks.append(chunk)
    if not groups and raw:
        chunks.append(_Chunk(len(raw), content_digest(raw), len(lines), (), {}, ()))
    return _Chunks(content_digest(b"".join(_cookie_lines(lines))), tuple(chunks))


def _line_end(raw: bytes, offset: int) -> bool:
    """Whether `offset` starts a line (or the end): the byte before ends one."""
    if offset == 0 or offset == len(raw):
        return True
    before = raw[offset - 1 : offset]
    return before == b"\n" or (before == b"\r" and raw[offset : offset + 1] != b"\n")


def _splice(source: Source, path: str, previous: _Chunks) -> ModuleIndex | None:
    """The index of `source` from the chunks of an earlier version of the file, parsing only
    the bytes between the chunks it starts and ends with; None where that is not sound or
    not known to give what a parse of the whole file gives (then the caller parses it)."""
    if not isinstance(source, bytes) or b"barry_as_FLUFL" in source:
        return None  # text (no bytes to match), or a future import that changes the grammar
    lines = source.splitlines(keepends=True)
    if content_digest(b"".join(_cookie_lines(lines))) != previous.cookie:
        return None  # another encoding, or text keys that moved
    old = previous.chunks
    head, start, head_lines = 0, 0, 0
    while head < len(old) and _matches(source, start, old[head]):
        start, head_lines = start + old[head].length, head_lines + old[head].lines
        head += 1
    tail, stop = len(old), len(source)
    while tail > head and stop - old[tail - 1].length >= start:
        if not _matches(source, stop - old[tail - 1].length, old[tail - 1]):
            break
        stop -= old[tail - 1].length
        tail -= 1
    middle = _parse_middle(source, path, lines, start, stop, head_lines + 1)
    if middle is None and (head > 0 or tail < len(old)):
        # a line added at the end of a block (or an `else:`) continues the chunk before:
        # parse it with its neighbours
        if head > 0:
            head -= 1
            start, head_lines = start - old[head].length, head_lines - old[head].lines
        if tail < len(old):
            stop, tail = stop + old[tail].length, tail + 1
        middle = _parse_middle(source, path, lines, start, stop, head_lines + 1)
    if middle is None:
        return None
    return _assemble(source, path, lines, previous.cookie, [*old[:head], *middle, *old[tail:]])


def _matches(source: bytes, start: int, chunk: _Chunk) -> bool:
    stop = start + chunk.length
    if stop > len(source) or not (_line_end(source, start) and _line_end(source, stop)):
        return False
    return content_digest(source[start:stop]) == chunk.digest


def _parse_middle(
    source: bytes, path: str, lines: list[bytes], start: int, stop: int, first: int
) -> list[_Chunk] | None:
    """The chunks of the bytes start..stop (lines from `first`), parsed alone."""
    if start == stop:
        return []
    try:
        encoding = _encoding(source)
        text = source[start:stop].decode(encoding if start == 0 else encoding.replace("-sig", ""))
        tree = ast.parse("\n" * (first - 1) + text, filename=path)
    except (SyntaxError, ValueError, LookupError):
        return None  # the parse of the whole file says what is wrong, if anything
    groups = _groups(tree.body)  # a module docstring makes no definition and no unit
    end_line = first + len(source[start:stop].splitlines())
    starts = _line_starts(lines)
    if starts[first - 1] != start or starts[end_line - 1] != stop:
        return None  # not at line starts: not what the chunks said
    chunks = []
    for number, group in enumerate(groups):
        low = first if number == 0 else _first_line(groups[number][0])
        high = _first_line(groups[number + 1][0]) if number + 1 < len(groups) else end_line
        chunk = _chunk(
            group, source, lines, low, high, starts[low - 1], starts[high - 1], True, set()
        )
        if chunk is None:
            return None
        chunks.append(chunk)
    if not groups:
        chunks.append(
            _Chunk(stop - start, content_digest(source[start:stop]), end_line - first, (), {}, ())
        )
    return chunks


def _encoding(source: bytes) -> str:
    """The encoding Python reads a file's bytes in (a BOM, a cookie, else UTF-8)."""
    import tokenize  # ~1 ms to import, and only an edit needs it

    return tokenize.detect_encoding(io.BytesIO(source).readline)[0]


def _assemble(
    source: bytes, path: str, lines: list[bytes], cookie: str, chunks: list[_Chunk]
) -> ModuleIndex | None:
    """The index made of these chunks (the whole file, in order): every table as from_json
    fills it; None if an analysis is not known by its text or the units need the whole file."""
    index = ModuleIndex(source, path, source_digest(source))
    index._lines_index = None
    rows: list[_UnitRow] = []
    line = 1
    for chunk in chunks:
        for number, (qualname, first, key) in enumerate(chunk.defs):
            def_key = f"{qualname}#{len(index.defs[qualname])}"
            index.defs[qualname].append(line + first)
            known, analysis = _known("definitions", key)
            if not known:
                return None
            index._analyses[def_key] = analysis
            index._by_text["definitions"][key] = analysis
            if number in chunk.classes:
                index._class_chains[def_key] = chunk.classes[number]
        rows.extend(chunk.units)
        line += chunk.lines
    if line != len(lines) + 1:
        return None  # the chunks do not cover the file line by line
    if READERS & frozenset().union(*[r.bound for r in rows]):
        return None  # units collected without the readers it binds: see module_units
    definitions: dict[str, list[_UnitRow]] = {}
    for row in rows:
        if row.function is not None:
            definitions.setdefault(row.function, []).append(row)

    def bodies(name: str) -> list[Body]:
        found = []
        for row in definitions[name]:
            if row.writes is not None:
                found.append(row.writes)
            elif isinstance(row.definition, ast.FunctionDef | ast.AsyncFunctionDef):
                found.append(body_writes(row.definition))
            else:  # runs at import time, and its body was not walked: parse the file
                raise _NeedsParseError(name)
        return found

    try:
        writes = function_writes([r.calls for r in rows], definitions.keys(), bodies)
    except _NeedsParseError:
        return None
    names: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for number, row in enumerate(rows):
        bound = row.bound
        if writes and row.calls & writes.keys():  # as with_writes
            bound = bound.union(*(writes[c] for c in row.calls if c in writes))
        for name in bound | row.passed:
            names[name].append((number, name in bound))
    statements: dict[str, tuple[Statement, ...]] = {}
    made: dict[tuple[int, bool], Statement] = {}
    for name, found in names.items():
        for number, strong in found:
            if (number, strong) not in made:
                statement = _row_statement(index, rows[number], strong)
                if statement is None:
                    return None
                made[number, strong] = statement
        statements[name] = tuple(made[n, strong] for n, strong in found)
    index._statements = statements
    index._stars = tuple(r.star for r in rows if r.star is not None)
    index._chunks = _Chunks(cookie, tuple(chunks))
    return index


class _NeedsParseError(Exception):
    """What a splice needs is known only from a parse of the whole file."""


def _row_statement(index: ModuleIndex, row: _UnitRow, strong: bool) -> Statement | None:
    if row.kind == "def":
        known, analysis = _known("definitions", row.key)
        if not known or analysis is None:
            return None  # too deeply nested to analyse: its dump needs the tree
        index._by_text["definitions"][row.key] = analysis
        header = tuple((n,) for n in sorted(analysis.header))
        return Statement(analysis.digest, header, {}, "def", strong)
    known, analysis = _known("units", row.key)
    if not known or analysis is None:
        return None
    index._by_text["units"][row.key] = analysis
    return Statement(analysis.digest, analysis.chains, analysis.imports, row.kind, strong)


def _chunks_to_json(chunks: _Chunks) -> list[Any]:
    return [
        chunks.cookie,
        [
            c.data or [
                c.length, c.digest, c.lines, c.defs,
                [[n, sorted(chains)] for n, chains in c.classes.items()],
                [
                    [u.kind, u.key, sorted(u.bound), sorted(u.passed), sorted(u.calls), u.star,
                     u.function, [sorted(u.writes[0]), sorted(u.writes[1])] if u.writes else None]
                    for u in c.units
                ],
            ]
            for c in chunks.chunks
        ],
    ]  # fmt: skip


def _chunks_from_json(data: Any) -> _Chunks | None:
    if data is None:
        return None
    cookie, rows = data
    chunks = []
    for row in rows:
        length, digest, lines, defs, classes, units = row
        chunks.append(_Chunk(
            _int(length), _str(digest), _int(lines),
            tuple((_str(q), _int(first), _str(key)) for q, first, key in defs),
            {_int(n): frozenset(tuple(map(_str, c)) for c in chains) for n, chains in classes},
            tuple(_row_from_json(u) for u in units),
            row,
        ))  # fmt: skip
    return _Chunks(_str(cookie), tuple(chunks))


def _row_from_json(data: list[Any]) -> _UnitRow:
    kind, key, bound, passed, calls, star, function, writes = data
    if kind not in ("def", "import", "code"):
        raise TypeError(f"not a unit: {data!r}")
    return _UnitRow(
        kind,
        _str(key),
        frozenset(map(_str, bound)),
        frozenset(map(_str, passed)),
        frozenset(map(_str, calls)),
        (_str(star[0]), None, _int(star[2])) if star is not None else None,
        _optional_str(function),
        (set(map(_str, writes[0])), set(map(_str, writes[1]))) if writes is not None else None,
    )


def _int(value: object) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {value!r}")
    return value
