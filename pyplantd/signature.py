"""Code signatures of reactors: hashes of the normalized AST of a reactor and of the user's own
helpers, classes, constants and subreactors it reaches, plus the versions of the third-party
packages it uses. Depends on nothing else in pyplantd.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import sysconfig
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import CodeType, FunctionType, ModuleType
from typing import Any, Literal

import xxhash

Origin = Literal["user", "stdlib", "package", "ignored"]
Kind = Literal["code", "helper", "class", "subreactor"]
Chain = tuple[str, ...]  # `name` or `name.attr.attr`
Import = tuple[str, str | None, int]  # (module, attr of `from module import attr`, level)

_MARKER = "__pyplantd_subreactor__"
_PYPLANTD_DIR = os.path.dirname(os.path.abspath(__file__))
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_BLOCKS = ("body", "handlers", "orelse", "finalbody", "cases")  # where statements nest
_NOTED = (ast.Name, ast.Attribute, ast.Global, ast.Import, ast.ImportFrom)
_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_CONTAINERS = (tuple, list, set, frozenset, dict)  # exactly these: subclasses may add state
_MAX_DEPTH = 32  # self-referencing containers must not recurse forever
_KIND_ORDER = ("code", "subreactor", "helper", "class", "const", "package")
_LABELS = {
    "helper": "helper {}() in {}",
    "class": "class {} in {}",
    "const": "constant {} in {}",
    "subreactor": "subreactor {}() in {}",
}


@dataclass(frozen=True)
class CodeSignature:
    """What a reactor's code depends on: one digest, and the parts it was made from."""

    digest: str  # hex digest over all parts (sorted), stable across processes
    parts: dict[str, str]  # component key -> hash (or version string for packages)


@dataclass(frozen=True)
class _Analysis:
    """One definition's AST, hashed, and the names it uses; independent of any run."""

    digest: str
    chains: tuple[Chain, ...]
    header: frozenset[str] = frozenset()  # names in defaults and decorators: evaluated outside
    declared_global: frozenset[str] = frozenset()  # module state the code writes: not constant
    imports: dict[str, Import] = field(default_factory=dict)


@dataclass(frozen=True)
class _Home:
    """Where a referenced name lives: a module global, or a closure cell of a function."""

    path: str
    module_level: bool


@dataclass
class _Found:
    parts: dict[str, str] = field(default_factory=dict)
    follow: list[tuple[Kind, Any]] = field(default_factory=list)


class _ModuleIndex:
    """One parsed file, docstrings stripped, its definitions indexed by qualname and first line."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.defs: dict[str, list[ast.AST]] = defaultdict(list)
        self.lines: dict[int, list[ast.AST]] = defaultdict(list)
        self.assignments: dict[str, list[ast.stmt]] = defaultdict(list)
        self._analyses: dict[int, _Analysis | None] = {}
        _strip_docstring(tree)
        stack: list[tuple[ast.AST, str]] = [(tree, "")]
        while stack:  # statements only, pre-order, so that a later redefinition comes last
            node, prefix = stack.pop()
            inner = self._add(node, prefix)
            blocks = [c for f in _BLOCKS for c in getattr(node, f, None) or ()]
            stack.extend((child, inner) for child in reversed(blocks))

    def _add(self, node: ast.AST, prefix: str) -> str:
        if not prefix and isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for name in {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}:
                self.assignments[name].append(node)
        if not isinstance(node, _SCOPES):
            return prefix
        qualname = prefix + node.name
        self.defs[qualname].append(node)
        self.lines[_first_line(node)].append(node)
        _strip_docstring(node)
        return qualname + ("." if isinstance(node, ast.ClassDef) else ".<locals>.")

    def find(self, qualname: str, name: str, line: int | None = None) -> ast.AST | None:
        candidates = self.defs.get(qualname, [])
        if len(candidates) > 1 and line is not None:
            candidates = [n for n in candidates if _first_line(n) == line]
        if candidates or line is None:
            return candidates[-1] if candidates else None
        if name == "<lambda>":  # rare: not worth indexing every expression up front
            at_line = [n for n in ast.walk(self.tree) if _is_lambda_at(n, line)]
        else:
            at_line = [n for n in self.lines.get(line, []) if getattr(n, "name", "") == name]
        return at_line[0] if len(at_line) == 1 else None  # two lambdas on a line: ambiguous

    def analysis(self, node: ast.AST) -> _Analysis | None:
        if id(node) not in self._analyses:  # the tree lives as long as this index: ids are stable
            self._analyses[id(node)] = _analyze(node)
        return self._analyses[id(node)]

    def statement_digest(self, name: str) -> str | None:
        found = [self.analysis(s) for s in self.assignments.get(name, [])]
        digests = [a.digest for a in found if a is not None]
        return _hash(",".join(digests)) if digests else None


# Parsed files, shared by every SignatureComputer of the process: path -> ((mtime_ns, size), index).
_MODULES: dict[str, tuple[tuple[int, int], _ModuleIndex | None]] = {}


def _module_index(path: str) -> _ModuleIndex | None:
    """The index of a file, re-parsed only when the file changed on disk."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    stamp = (stat.st_mtime_ns, stat.st_size)
    if path not in _MODULES or _MODULES[path][0] != stamp:
        try:
            with open(path, "rb") as file:  # bytes, so that ast honours an encoding cookie
                _MODULES[path] = (stamp, _ModuleIndex(ast.parse(file.read(), filename=path)))
        except (OSError, SyntaxError, ValueError):
            _MODULES[path] = (stamp, None)
    return _MODULES[path][1]


class SignatureComputer:
    """Computes code signatures; caches per-function results, so make one per run.

    >>> def double(x):
    ...     return 2 * x
    >>> len(SignatureComputer().signature(double).digest)
    32
    """

    def __init__(
        self, function_hash: Callable[[Callable], str] | None = None, track_versions: bool = True
    ) -> None:
        self._function_hash = function_hash
        self._track_versions = track_versions
        self._visited: dict[int, tuple[object, str, _Found]] = {}
        self._indexes: dict[str, _ModuleIndex | None] = {}
        self._resolved: dict[tuple[int, Chain, _Home], tuple[object, _Found]] = {}

    def signature(self, func: Callable, extra: Iterable[Callable] = ()) -> CodeSignature:
        """Signature of `func` plus the closure of everything it references; `extra` are more
        functions (subreactors discovered at run time) whose closures are included too."""
        todo: list[tuple[Kind, Any]] = [("subreactor", _unwrap(f)) for f in reversed(list(extra))]
        todo.append(("code", _unwrap(func)))  # popped first, so it keeps the `code` key
        parts: dict[str, str] = {}
        seen: set[int] = set()
        while todo:
            kind, obj = todo.pop()
            if id(obj) not in seen:
                seen.add(id(obj))
                digest, found = self._visit(obj)
                for key, value in [(_component_key(kind, obj), digest), *found.parts.items()]:
                    _merge(parts, key, value)
                todo.extend(reversed(found.follow))
        text = "\n".join(f"{key}\t{value}" for key, value in sorted(parts.items()))
        return CodeSignature(_hash(text), parts)

    def _index(self, path: str | None) -> _ModuleIndex | None:
        if path is not None and path not in self._indexes:  # one view of each file per run
            self._indexes[path] = None if path.startswith("<") else _module_index(path)
        return self._indexes.get(path) if path is not None else None

    def _visit(self, obj: Any) -> tuple[str, _Found]:
        if id(obj) not in self._visited:  # keeping obj alive keeps its id unique
            visit = self._visit_class if isinstance(obj, type) else self._visit_func
            self._visited[id(obj)] = (obj, *visit(obj))
        _, digest, found = self._visited[id(obj)]
        return digest, found

    def _visit_func(self, func: FunctionType) -> tuple[str, _Found]:
        analysis, found = self._analysis_of(func), _Found()
        self._scan_function(func, analysis, found)
        inner = _inner_function(func)
        if inner is not None:  # a user decorator built with functools.wraps
            self._classify_definition(inner, found)
        if self._function_hash is not None:
            return str(self._function_hash(func)), found
        return (analysis.digest if analysis else _hash(_code_text(func.__code__))), found

    def _visit_class(self, cls: type) -> tuple[str, _Found]:
        path, module = _module_file(cls.__module__), sys.modules.get(cls.__module__)
        found = _Found()
        # generated methods (dataclasses, namedtuple) live in "<string>", not in the class body
        methods = [m for v in vars(cls).values() for m in _methods(v)]
        methods = [m for m in methods if m.__code__.co_filename == path]
        for method in methods:
            self._scan_function(method, self._analysis_of(method), found)
        index = self._index(path)
        tree = index.find(cls.__qualname__, cls.__name__) if index else None
        if not (index and path and module and isinstance(tree, ast.ClassDef)):
            return _hash("\n".join(sorted(_code_text(m.__code__) for m in methods))), found
        for chain in _class_level_chains(tree, index):
            if chain[0] in vars(module):
                self._resolve(vars(module)[chain[0]], chain, _Home(path, True), found)
        analysis = index.analysis(tree)
        return (analysis.digest if analysis else _hash(ast.dump(tree))), found

    def _analysis_of(self, func: FunctionType) -> _Analysis | None:
        code = func.__code__
        index = self._index(code.co_filename)
        tree = index.find(_qualname(func), code.co_name, code.co_firstlineno) if index else None
        return index.analysis(tree) if index and tree else None

    def _scan_function(self, func: FunctionType, analysis: _Analysis | None, found: _Found) -> None:
        code, cells = func.__code__, _closure(func)
        names = _code_names(code)  # the compiler's list of non-local names: no scoping rules here
        if analysis is None:  # no source: every global name, but no attribute chains
            analysis = _Analysis("", tuple((n,) for n in sorted(names | cells.keys())))
        names = (names | analysis.header) - analysis.declared_global
        module_home = _Home(_globals_file(func), module_level=True)
        for chain in analysis.chains:
            root = chain[0]
            if root in analysis.imports:
                self._resolve_import(analysis.imports[root], chain, func, found)
            elif root in cells:
                self._resolve(cells[root], chain, _Home(code.co_filename, False), found)
            elif root in names and root in func.__globals__:
                self._resolve(func.__globals__[root], chain, module_home, found)

    def _resolve_import(self, imp: Import, chain: Chain, func: FunctionType, found: _Found) -> None:
        (name, attr, level), package = imp, func.__globals__.get("__package__")
        try:
            name = importlib.util.resolve_name("." * level + name, package) if level else name
        except (ImportError, ValueError):
            return
        module = _load_module(name)
        if module is not None and attr is not None and attr not in vars(module):
            name, attr = f"{name}.{attr}", None  # `from package import submodule`
            module = _load_module(name)
        if module is None:
            self._note_package(name, found)
            return
        rest = chain[1:] if attr is None else (attr, *chain[1:])
        self._resolve(module, (chain[0], *rest), _Home(_module_path(module), True), found)

    def _resolve(self, value: object, chain: Chain, home: _Home, found: _Found) -> None:
        key = (id(value), chain, home)
        if key not in self._resolved:  # the reactors of a file mostly use the same globals
            self._resolved[key] = (value, _Found())
            self._walk(value, chain, home, self._resolved[key][1])
        resolved = self._resolved[key][1]
        found.parts.update(resolved.parts)
        found.follow.extend(resolved.follow)

    def _walk(self, value: object, chain: Chain, home: _Home, found: _Found) -> None:
        """Follow `a.b.c` through the user's own modules, then classify what it lands on."""
        name = chain[0]
        for attr in chain[1:]:
            if not isinstance(value, ModuleType) or attr not in vars(value):
                break
            path = _module_path(value)
            if _origin(value.__name__, path) != "user":
                break  # third-party internals are not hashed; the package version stands in
            home, name, value = _Home(path, True), attr, vars(value)[attr]
        original = _subreactor_original(value)
        if original is not None:
            found.follow.append(("subreactor", original))
        elif isinstance(value, ModuleType):
            self._note_package(value.__name__, found)
        elif isinstance(value, FunctionType | type):
            self._classify_definition(value, found)
        else:
            self._classify_value(value, name, home, found)

    def _classify_definition(self, obj: FunctionType | type, found: _Found) -> None:
        origin = _definition_origin(obj)
        if origin == "user":
            found.follow.append(("class" if isinstance(obj, type) else "helper", obj))
            return
        if origin == "package":
            self._note_package(obj.__module__, found)
        inner = _inner_function(obj)
        if inner is not None:  # a library decorator around user code
            self._classify_definition(inner, found)

    def _classify_value(self, value: object, name: str, home: _Home, found: _Found) -> None:
        digest = self._constant_digest(value, name, home) if home.module_level else None
        if digest is not None:  # closure cells are state of this function object, not code
            found.parts[f"const:{name}@{os.path.basename(home.path)}"] = digest
        inner = _inner_function(value)
        if inner is not None:  # functools.partial, lru_cache and similar wrappers
            self._classify_definition(inner, found)
        if _definition_origin(type(value)) == "user":
            found.follow.append(("class", type(value)))
        else:
            self._note_package(_module_name(value) or type(value).__module__, found)

    def _constant_digest(self, value: object, name: str, home: _Home) -> str | None:
        index = self._index(home.path) if home.module_level else None
        statement = index.statement_digest(name) if index else None
        if statement is not None and _is_mutable(value):
            return statement  # a mutable global may be a cache that fills as the pipeline runs
        text = _canonical(value)
        return statement if text is None else _hash(text)  # not plain data: how it was made

    def _note_package(self, module_name: str | None, found: _Found) -> None:
        if not self._track_versions or not module_name or _origin(module_name) != "package":
            return
        top = module_name.partition(".")[0]
        dist, version = _distribution(top), package_version(top)
        if dist is not None and version is not None:
            found.parts[f"package:{dist}"] = version


def describe_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Human-readable reasons, one per differing component, in a stable order.

    >>> describe_changes({"package:numpy": "1.26.4"}, {"package:numpy": "2.0.1"})
    ['numpy 1.26.4 -> 2.0.1']
    """
    keys = sorted(old.keys() | new.keys(), key=_change_order)
    return [_describe(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]


def _change_order(key: str) -> tuple[int, str]:
    kind = key.partition(":")[0]
    return (_KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)), key


def _describe(key: str, before: str | None, after: str | None) -> str:
    kind, _, rest = key.partition(":")
    if kind == "code":
        return f"code changed ({rest})"
    if kind == "package":
        if before is None:
            return f"now uses {rest} {after}"
        return f"no longer uses {rest}" if after is None else f"{rest} {before} -> {after}"
    name, _, file = rest.partition("@")  # qualnames never contain "@"; file names might
    label = _LABELS[kind].format(name, file) if kind in _LABELS else key
    if before is None:
        return f"now uses {label}"
    return f"no longer uses {label}" if after is None else f"{label} changed"


@functools.lru_cache(maxsize=8192)
def is_user_file(path: str) -> bool:
    """True for a .py file of the user's own code: not the stdlib, not site-packages or
    dist-packages, not pyplantd itself.

    >>> is_user_file(os.__file__)
    False
    """
    if not path.endswith(".py"):
        return False
    candidates = {os.path.normcase(p) for p in (os.path.abspath(path), os.path.realpath(path))}
    return not any(_is_library_path(p) for p in candidates)


def _is_library_path(path: str) -> bool:
    if {"site-packages", "dist-packages"} & set(path.split(os.sep)):  # any venv, any interpreter
        return True
    return any(path == root or path.startswith(root + os.sep) for root in _library_roots())


@functools.cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.add(_PYPLANTD_DIR)
    return tuple(
        {os.path.normcase(f(r)) for r in roots for f in (os.path.abspath, os.path.realpath)}
    )


def package_version(module_name: str) -> str | None:
    """Installed version of the distribution providing a top-level import name.

    >>> package_version("os") is None
    True
    """
    dist = _distribution(module_name.partition(".")[0])
    return None if dist is None else _dist_version(dist)


@functools.cache
def _dist_version(dist: str) -> str | None:
    # cached: what runs is the version imported first, even if upgraded on disk since
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def _distribution(top: str) -> str | None:
    dists = _packages_distributions().get(top)
    return sorted(set(dists))[0] if dists else None


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())  # ~0.2 s: once per process


def _origin(module_name: str | None, file: str | None = None) -> Origin:
    """Where a module comes from; `file` overrides the file of the module of that name."""
    top = (module_name or "").partition(".")[0]
    if top == "pyplantd":
        return "ignored"
    file = file or _module_file(module_name)
    if file is not None and is_user_file(file):
        return "user"
    if top in sys.stdlib_module_names:
        return "stdlib"
    if top and _distribution(top) is not None:
        return "package"
    # no file and no distribution: code exec'd into a namespace of the user's
    return "ignored" if file is not None else "user"


def _definition_origin(obj: FunctionType | type) -> Origin:
    code = getattr(obj, "__code__", None)
    file = code.co_filename if isinstance(code, CodeType) else None
    return _origin(_module_name(obj), None if file is None or file.startswith("<") else file)


def _load_module(name: str) -> ModuleType | None:
    """A module imported inside a function: imported now if it is the user's own."""
    if name in sys.modules or _origin(name) != "user":
        return sys.modules.get(name)  # a package's version is known without importing it
    try:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not is_user_file(spec.origin):
            return None
        return importlib.import_module(name)
    except Exception:  # the reactor raises the same error, with context, when it runs
        return None


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


def _analyze(node: ast.AST) -> _Analysis | None:
    """Hashes what `ast.dump(node)` shows, and collects the names used, in a single pass."""
    scanner = _Scanner()
    try:
        text = scanner.dump(node)
    except RecursionError:  # absurdly nested expressions: fall back to the code object
        return None
    header = {n.id for h in _header_nodes(node) for n in ast.walk(h) if isinstance(n, ast.Name)}
    return _Analysis(
        _hash(text),
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


def _class_level_chains(tree: ast.ClassDef, index: _ModuleIndex) -> set[Chain]:
    """Names the class statement itself evaluates: bases, decorators, class attributes."""
    nodes = [*tree.bases, *tree.keywords, *tree.decorator_list]
    nodes += [s for s in tree.body if not isinstance(s, _SCOPES)]  # methods come via objects
    found = [index.analysis(n) for n in nodes]
    return {chain for a in found if a is not None for chain in a.chains}


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


def _code_names(code: CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _code_names(const)
    return names


def _code_text(code: CodeType) -> str:
    """A code object as text, for functions without source: stable within a process only."""
    consts = [
        _code_text(c) if isinstance(c, CodeType) else _canonical(c) or repr(c)
        for c in code.co_consts
    ]
    return f"{code.co_code.hex()}|{code.co_names}|{code.co_varnames}|{code.co_freevars}|{consts}"


def _closure(func: FunctionType) -> dict[str, object]:
    cells: dict[str, object] = {}
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or (), strict=False):
        try:
            cells[name] = cell.cell_contents
        except ValueError:  # a cell not assigned yet
            continue
    return cells


def _methods(member: object) -> list[FunctionType]:
    if isinstance(member, staticmethod | classmethod):
        member = member.__func__
    if isinstance(member, property):
        return [f for f in (member.fget, member.fset, member.fdel) if isinstance(f, FunctionType)]
    return [member] if isinstance(member, FunctionType) else []


def _canonical(value: object, depth: int = 0) -> str | None:
    """A process-independent text for plain data, or None for anything else."""
    kind = type(value)
    if kind in _SCALARS:
        return f"{kind.__name__}:{value!r}"
    if not isinstance(value, tuple | list | set | frozenset | dict) or kind not in _CONTAINERS:
        return _canonical_numpy(value)
    if depth >= _MAX_DEPTH:
        return None
    items = [x for kv in value.items() for x in kv] if isinstance(value, dict) else list(value)
    texts = [t for t in (_canonical(v, depth + 1) for v in items) if t is not None]
    if len(texts) < len(items):
        return None
    if isinstance(value, set | frozenset):
        texts.sort()  # set order varies from process to process
    if isinstance(value, dict):
        texts = [f"{k}:{v}" for k, v in zip(texts[::2], texts[1::2], strict=True)]
    return f"{kind.__name__}[{','.join(texts)}]"


def _is_mutable(value: object) -> bool:
    numpy = sys.modules.get("numpy")
    is_array = numpy is not None and type(value) is numpy.ndarray
    return is_array or isinstance(value, list | dict | set | bytearray)


def _canonical_numpy(value: Any) -> str | None:
    numpy = sys.modules.get("numpy")  # never import numpy just to find out it is not used
    if numpy is None or not (type(value) is numpy.ndarray or isinstance(value, numpy.generic)):
        return None
    if value.dtype.hasobject:
        return None
    content = xxhash.xxh3_128_hexdigest(numpy.ascontiguousarray(value))
    return f"numpy:{type(value).__name__}:{value.dtype!r}:{numpy.shape(value)}:{content}"


def _unwrap(func: Callable) -> FunctionType:
    target: object = _subreactor_original(func) or getattr(func, "__func__", func)  # methods too
    if not isinstance(target, FunctionType):
        raise TypeError(
            f"Cannot compute the code signature of {target!r}: it is not a Python function. "
            "Pass the function itself, not an instance or a builtin."
        )
    return target


def _subreactor_original(value: object) -> FunctionType | None:
    original = _safe_attr(value, _MARKER)
    return original if isinstance(original, FunctionType) else None


def _inner_function(value: object) -> FunctionType | None:
    inner = value.func if isinstance(value, functools.partial) else _safe_attr(value, "__wrapped__")
    return inner if isinstance(inner, FunctionType) and inner is not value else None


def _safe_attr(obj: object, name: str) -> object:
    try:  # proxies and lazy objects may raise anything from __getattr__
        return getattr(obj, name, None)
    except Exception:
        return None


def _module_name(obj: object) -> str | None:
    name = _safe_attr(obj, "__module__")
    return name if isinstance(name, str) else None


def _module_file(module_name: str | None) -> str | None:
    file = getattr(sys.modules.get(module_name or ""), "__file__", None)
    return file if isinstance(file, str) else None


def _module_path(module: ModuleType) -> str:
    file = getattr(module, "__file__", None)
    return file if isinstance(file, str) else f"<{module.__name__}>"


def _globals_file(func: FunctionType) -> str:
    file = func.__globals__.get("__file__")
    return file if isinstance(file, str) else func.__code__.co_filename


def _qualname(obj: FunctionType | type) -> str:
    code = getattr(obj, "__code__", None)  # co_qualname survives a reassigned __qualname__
    return getattr(code, "co_qualname", None) or obj.__qualname__


def _component_key(kind: Kind, obj: FunctionType | type) -> str:
    if kind == "code":
        return f"code:{_qualname(obj)}"
    code = getattr(obj, "__code__", None)
    file = code.co_filename if code is not None else _module_file(obj.__module__) or "?"
    return f"{kind}:{_qualname(obj)}@{os.path.basename(file)}"


def _merge(parts: dict[str, str], key: str, value: str) -> None:
    """Two components with one key (same name, same base name, two folders) both count."""
    old = parts.get(key)
    parts[key] = value if old is None or old == value else _hash(min(old, value) + max(old, value))


def _hash(text: str) -> str:
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogatepass"))
