"""Code signatures of reactors: hashes of the normalized AST of a reactor and of the user's own
helpers, classes, constants and subreactors it reaches, plus the versions of the third-party
packages it uses. Depends on nothing in pyplantd but origins, code_index and canonical.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import CodeType, FunctionType, ModuleType
from typing import Any, Literal

from .canonical import canonical_text, code_text, is_mutable
from .code_index import (
    Analysis,
    Chain,
    Import,
    IndexCache,
    ModuleIndex,
    hash_text,
    module_index,
)
from .origins import (
    definition_origin,
    distribution,
    is_user_file,
    module_file,
    module_name_of,
    module_origin,
    package_version,
    safe_attr,
)

Kind = Literal["code", "helper", "class", "subreactor"]

_MARKER = "__pyplantd_subreactor__"
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
class _Home:
    """Where a referenced name lives: a module global, or a closure cell of a function."""

    path: str
    module_level: bool


@dataclass
class _Found:
    parts: dict[str, str] = field(default_factory=dict)
    follow: list[tuple[Kind, Any]] = field(default_factory=list)


class SignatureComputer:
    """Computes code signatures; caches per-function results, so make one per run.

    >>> def double(x):
    ...     return 2 * x
    >>> len(SignatureComputer().signature(double).digest)
    32
    """

    def __init__(
        self,
        function_hash: Callable[[Callable], str] | None = None,
        track_versions: bool = True,
        index_cache: IndexCache | None = None,
    ) -> None:
        self._function_hash = function_hash
        self._track_versions = track_versions
        self._index_cache = index_cache  # file indexes kept across processes, by content hash
        self._visited: dict[int, tuple[object, str, _Found]] = {}
        self._indexes: dict[str, ModuleIndex | None] = {}
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
        return CodeSignature(hash_text(text), parts)

    def _index(self, path: str | None) -> ModuleIndex | None:
        if path is not None and path not in self._indexes:  # one view of each file per run
            unreadable = path.startswith("<")
            self._indexes[path] = None if unreadable else module_index(path, self._index_cache)
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
        return (analysis.digest if analysis else hash_text(code_text(func.__code__))), found

    def _visit_class(self, cls: type) -> tuple[str, _Found]:
        path, module = module_file(cls.__module__), sys.modules.get(cls.__module__)
        found = _Found()
        # generated methods (dataclasses, namedtuple) live in "<string>", not in the class body
        methods = [m for v in vars(cls).values() for m in _methods(v)]
        methods = [m for m in methods if m.__code__.co_filename == path]
        for method in methods:
            self._scan_function(method, self._analysis_of(method), found)
        index = self._index(path)
        key = index.find(cls.__qualname__, cls.__name__) if index else None
        chains = index.class_chains(key) if index and key else None
        if not (index and key and path and module and chains is not None):
            return _methods_digest(methods), found
        for chain in chains:
            if chain[0] in vars(module):
                self._resolve(vars(module)[chain[0]], chain, _Home(path, True), found)
        analysis = index.analysis(key)
        digest = analysis.digest if analysis else index.dump_digest(key)
        return (digest or _methods_digest(methods)), found

    def _analysis_of(self, func: FunctionType) -> Analysis | None:
        code = func.__code__
        index = self._index(code.co_filename)
        key = index.find(_qualname(func), code.co_name, code.co_firstlineno) if index else None
        return index.analysis(key) if index and key else None

    def _scan_function(self, func: FunctionType, analysis: Analysis | None, found: _Found) -> None:
        code, cells = func.__code__, _closure(func)
        names = _code_names(code)  # the compiler's list of non-local names: no scoping rules here
        if analysis is None:  # no source: every global name, but no attribute chains
            analysis = Analysis("", tuple((n,) for n in sorted(names | cells.keys())))
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
            if module_origin(value.__name__, path) != "user":
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
        origin = definition_origin(obj)
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
        if definition_origin(type(value)) == "user":
            found.follow.append(("class", type(value)))
        else:
            self._note_package(module_name_of(value) or type(value).__module__, found)

    def _constant_digest(self, value: object, name: str, home: _Home) -> str | None:
        index = self._index(home.path) if home.module_level else None
        statement = index.statement_digest(name) if index else None
        if statement is not None and is_mutable(value):
            return statement  # a mutable global may be a cache that fills as the pipeline runs
        text = canonical_text(value)
        return statement if text is None else hash_text(text)  # not plain data: how it was made

    def _note_package(self, module_name: str | None, found: _Found) -> None:
        if not self._track_versions or not module_name or module_origin(module_name) != "package":
            return
        top = module_name.partition(".")[0]
        dist, version = distribution(top), package_version(top)
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


def _load_module(name: str) -> ModuleType | None:
    """A module imported inside a function: imported now if it is the user's own."""
    if name in sys.modules or module_origin(name) != "user":
        return sys.modules.get(name)  # a package's version is known without importing it
    try:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not is_user_file(spec.origin):
            return None
        return importlib.import_module(name)
    except Exception:  # the reactor raises the same error, with context, when it runs
        return None


def _methods_digest(methods: list[FunctionType]) -> str:
    """A class's digest when its source is not at hand: its methods' code objects."""
    return hash_text("\n".join(sorted(code_text(m.__code__) for m in methods)))


def _code_names(code: CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, CodeType):
            names |= _code_names(const)
    return names


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


def _unwrap(func: Callable) -> FunctionType:
    target: object = _subreactor_original(func) or getattr(func, "__func__", func)  # methods too
    if not isinstance(target, FunctionType):
        raise TypeError(
            f"Cannot compute the code signature of {target!r}: it is not a Python function. "
            "Pass the function itself, not an instance or a builtin."
        )
    return target


def _subreactor_original(value: object) -> FunctionType | None:
    original = safe_attr(value, _MARKER)
    return original if isinstance(original, FunctionType) else None


def _inner_function(value: object) -> FunctionType | None:
    inner = value.func if isinstance(value, functools.partial) else safe_attr(value, "__wrapped__")
    return inner if isinstance(inner, FunctionType) and inner is not value else None


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
    file = code.co_filename if code is not None else module_file(obj.__module__) or "?"
    return f"{kind}:{_qualname(obj)}@{os.path.basename(file)}"


def _merge(parts: dict[str, str], key: str, value: str) -> None:
    """Two components with one key (same name, same base name, two folders) both count."""
    old = parts.get(key)
    if old is not None and old != value:
        value = hash_text(min(old, value) + max(old, value))
    parts[key] = value
