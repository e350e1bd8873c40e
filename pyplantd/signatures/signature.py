"""Code signatures of reactors: hashes of the normalized AST of a reactor and of the user's own
helpers, classes, constants and subreactors it reaches, plus the versions of the third-party
packages it uses. Depends on nothing in pyplantd but origins, sources, code_index and canonical.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import CodeType, FunctionType, ModuleType
from typing import Any, Literal

from . import sources
from .canonical import code_text, frozen_text
from .changes import CHANGES, content_text
from .code_index import (
    Analysis,
    Chain,
    Import,
    IndexCache,
    ModuleIndex,
    Statement,
    hash_text,
    module_index,
    source_index,
)
from .explain import BY_CODE
from .namespaces import NameMap
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

Kind = Literal["code", "helper", "class", "subreactor", "global"]
# what a walk from one object finds: the components, in order, and the identities reached
_Reach = tuple[tuple[tuple[str, str], ...], frozenset[object]]
Scope = Literal["module", "cell", "default"]

_MARKER = "__pyplantd_subreactor__"
_PLAIN_LEAVES = (type(None), bool, int, float, complex, str, bytes)
_CONTAINED_ITEMS = 10_000  # items of a module-level container looked at for code, at most


@dataclass(frozen=True)
class CodeSignature:
    """What a reactor's code depends on: one digest, and the parts it was made from."""

    digest: str  # hex digest over all parts (sorted), stable across processes
    parts: dict[str, str]  # component key -> hash (or version string for packages)


@dataclass(frozen=True)
class _Home:
    """Where a referenced name lives: a module's globals (`namespace`), or a closure cell or a
    default value of the function `owner`."""

    path: str
    scope: Scope = "module"
    owner: str = ""
    namespace: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    package: str | None = field(default=None, compare=False, hash=False)


class _Global:
    """A module-level name whose value is counted by the statements that define it.
    (A plain class: one is made per reactor, and a frozen dataclass costs ~1 us to make.)"""

    __slots__ = ("home", "keep_definition", "key", "name", "shared", "value")

    def __init__(
        self,
        name: str,
        home: _Home,
        value: object,
        keep_definition: bool = True,  # False: the def/class statement is counted as code already
        shared: bool = False,  # another name for a value reached elsewhere (see _sharers)
    ) -> None:
        self.name, self.home, self.value = name, home, value
        self.keep_definition, self.shared = keep_definition, shared
        # how it is counted is part of what it is: a visit reached as another name of a value
        # (shared) must not stand in, from the cache, for the visit of the name itself
        self.key = (home.path, name, id(home.namespace), shared, keep_definition)


@dataclass(slots=True)
class _Subtree:
    """A node whose follows are being walked: where its components and reached nodes start
    in the walk's lists; `whole` while it met nothing the walk saw before it."""

    key: tuple[Kind, object]
    out: int
    seen: int
    whole: bool = True


class _Found:
    """What a visit found: components, and what to visit next."""

    __slots__ = ("follow", "parts")

    def __init__(self) -> None:
        self.parts: dict[str, str] = {}
        self.follow: list[tuple[Kind, Any]] = []


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
        self._visited: dict[object, tuple[object, str | None, _Found]] = {}
        self._names = NameMap(also_under=_subreactor_original)  # who else binds a value
        self._roots: dict[int, _Home] = {}  # the reactors' globals: scripts are no modules
        self._indexes: dict[str, ModuleIndex | None] = {}
        self._resolved: dict[tuple[int, Chain, str, str, str], tuple[object, _Found]] = {}
        self._module_homes: dict[tuple[int, str, object], _Home] = {}
        self._components: dict[tuple[Kind, object], str] = {}  # (kind, identity) -> its key
        # (kind, identity) -> the components of all it reaches, in order, and what it reaches
        self._subtrees: dict[tuple[Kind, object], _Reach] = {}

    def signature(self, func: Callable, extra: Iterable[Callable] = ()) -> CodeSignature:
        """Signature of `func` plus the closure of everything it references; `extra` are more
        functions (subreactors discovered at run time) whose closures are included too."""
        todo: list[tuple[Kind, Any]] = [("subreactor", _unwrap(f)) for f in reversed(list(extra))]
        todo.append(("code", _unwrap(func)))  # popped first, so it keeps the `code` key
        return self._closure(todo)

    def definition_signature(self, obj: FunctionType | type) -> CodeSignature:
        """Signature of a user's class or function and everything it reaches: a value that
        names it by reference depends on it (see value_code)."""
        return self._closure([("class" if isinstance(obj, type) else "helper", obj)])

    def _closure(self, todo: list[tuple[Kind, Any]]) -> CodeSignature:
        for _, root in todo:  # a script run by pyplantd is no module: map its names too
            if isinstance(root, FunctionType) and id(root.__globals__) not in self._roots:
                self._roots[id(root.__globals__)] = _module_home(root)
                self._names.add(root.__globals__)
        parts: dict[str, str] = {}
        for key, value in self._walk_closure(todo):
            if key in parts:
                _merge(parts, key, value)
            else:
                parts[key] = value
        text = "\n".join(f"{key}\t{value}" for key, value in sorted(parts.items()))
        return CodeSignature(hash_text(text), parts)

    def _walk_closure(self, todo: list[tuple[Kind, Any]]) -> list[tuple[str, str]]:
        """The components of everything reachable from `todo`, depth first, each object once,
        in the order they count. What a helper reaches is walked once per run: the reactors of
        a file share their helpers, so the components of a subtree that shares nothing with
        what the walk saw before are taken as they were found the first time."""
        out: list[tuple[str, str]] = []
        seen: dict[object, int] = {}  # identity -> when it was seen (see _Subtree)
        order: list[object] = []
        open_: list[_Subtree] = []  # subtrees being walked, outermost first
        stack: list[tuple[Kind, Any] | _Subtree] = list(todo)
        while stack:
            item = stack.pop()
            if isinstance(item, _Subtree):  # its last component is out
                open_.pop()
                if item.whole and item.key[0] != "code":  # a reactor is signed once a run
                    reached = frozenset(order[item.seen :])
                    self._subtrees[item.key] = (tuple(out[item.out :]), reached)
                continue
            kind, obj = item
            identity = obj.key if type(obj) is _Global else id(obj)  # _identity, inlined
            if identity in seen:
                when = seen[identity]
                for subtree in reversed(open_):  # reached from outside it: not its own
                    if subtree.seen <= when:
                        break
                    subtree.whole = False
                continue
            known = self._subtrees.get((kind, identity))
            if known is not None and seen.keys().isdisjoint(known[1]):
                out.extend(known[0])
                for other in known[1]:
                    seen[other] = len(order)
                    order.append(other)
                continue
            seen[identity] = len(order)
            order.append(identity)
            digest, found = self._visit(obj)
            if digest is not None:
                component = self._components.get((kind, identity))
                if component is None:
                    component = self._components[kind, identity] = _component_key(kind, obj)
                out.append((component, digest))
            out.extend(found.parts.items())
            if found.follow:  # a leaf is as cheap to visit again (from _visited) as to recall
                start = len(out) - len(found.parts) - (digest is not None)
                subtree = _Subtree((kind, identity), start, len(order) - 1)
                open_.append(subtree)
                stack.append(subtree)
                stack.extend(reversed(found.follow))
        return out

    def _index(self, path: str | None) -> ModuleIndex | None:
        """The index of what the code from `path` was compiled from (one view per run)."""
        if path is not None and path not in self._indexes:
            source = sources.source_of(path)
            if source is not None:
                self._indexes[path] = source_index(path, source, self._index_cache)
            elif path.startswith("<"):  # exec'd code with no source: its code objects
                self._indexes[path] = None
            else:
                self._indexes[path] = module_index(path, self._index_cache)
        return self._indexes.get(path) if path is not None else None

    def _statements_index(self, home: _Home) -> ModuleIndex | None:
        """Where the module-level statements of `home` are; none for a notebook or console,
        whose cells run in any order: there, values count by what they are."""
        return None if _in_a_notebook(home) else self._index(home.path)

    def _visit(self, obj: Any) -> tuple[str | None, _Found]:
        key = _identity(obj)
        if key not in self._visited:  # keeping obj alive keeps its id unique
            if isinstance(obj, _Global):
                visit: Callable[[Any], tuple[str | None, _Found]] = self._visit_global
            else:
                visit = self._visit_class if isinstance(obj, type) else self._visit_func
            self._visited[key] = (obj, *visit(obj))
        _, digest, found = self._visited[key]
        return digest, found

    def _visit_func(self, func: FunctionType) -> tuple[str, _Found]:
        analysis, found = self._analysis_of(func), _Found()
        self._scan_function(func, analysis, found)
        inner = _inner_function(func)
        if inner is not None:  # a user decorator built with functools.wraps
            self._classify_definition(inner, found)
        if _is_nested(func):
            self._follow_enclosing(func, found)
        self._scan_defaults(func, found)
        self._note_bindings(func, found)
        if self._function_hash is not None:
            return str(self._function_hash(func)), found
        return (analysis.digest if analysis else hash_text(code_text(func.__code__))), found

    def _scan_defaults(self, func: FunctionType, found: _Found) -> None:
        """Default values are what they were when the def ran: simple ones count by value (a
        name they read may have been bound again since); those of a function made by other code
        (a factory) all count, by value, code, or type."""
        if not func.__defaults__ and not func.__kwdefaults__:
            return
        nested = _is_nested(func)
        code, owner = func.__code__, _qualname(func)
        defaults = func.__defaults__ or ()
        positional = code.co_varnames[: code.co_argcount]
        first = max(0, len(positional) - len(defaults))  # `__defaults__` may be set by hand
        named = [
            *zip(
                positional[first:], defaults[-len(positional) :] if positional else (), strict=False
            ),
            *(func.__kwdefaults__ or {}).items(),
        ]
        for param, value in named:
            if nested or frozen_text(value) is not None:
                home = _Home(code.co_filename, "default", owner, namespace=func.__globals__)
                self._resolve(value, (param,), home, found)

    def _follow_enclosing(self, func: FunctionType, found: _Found) -> None:
        """The outermost function or class whose code holds `func`'s definition: followed as
        any helper or class is; if it cannot be reached, its text counts at least."""
        outer = _qualname(func).partition(".<locals>.")[0]
        candidate = func.__globals__.get(outer.partition(".")[0])
        if isinstance(candidate, type | FunctionType) and _holds_code(candidate, func.__code__):
            self._classify_definition(candidate, found)
            return
        path = func.__code__.co_filename
        index = self._index(path)
        key = index.find(outer, outer.rpartition(".")[2]) if index else None
        analysis = index.analysis(key) if index and key else None
        if analysis is not None:
            found.parts[f"helper:{outer}@{os.path.basename(path)}"] = analysis.digest

    def _note_bindings(self, obj: object, found: _Found) -> None:
        """Every module-level name bound to `obj` in the user's modules: the statements that
        change it there count (`f.x = 1`, `Model.n = 2`, `load = wrap(load)`, the statement
        binding a function a factory made, `settings.CFG["x"] = 1` in another module)."""
        found.follow.extend(("global", g) for g in self._sharers(obj))

    def _sharers(self, value: object) -> list[_Global]:
        """Every module-level name bound to `value` in the user's modules, and every
        `module.name` through which a module that imports its module may change it."""
        found = []
        keep = not isinstance(value, (FunctionType, type)) or _is_nested(value)
        for namespace, name in self._names.names_of(value):
            home = self._home_of(namespace)
            found.append(_Global(name, home, value, keep, shared=True))
            for importer, alias in self._names.importers_of(namespace):
                found.append(
                    _Global(f"{alias}.{name}", self._home_of(importer), value, shared=True)
                )
        # most are a def statement counted with the code already: nothing to visit (cheaper
        # than a visit that finds nothing, and what any walk finds is the same)
        return [g for g in found if self._counted_statements(g)]

    def _counted_statements(self, item: _Global) -> list[Statement]:
        """The statements defining `item` that count for it (see _visit_global): an import
        names the module the name comes from; a def is counted as code already unless kept;
        passing a function or class to a call does not change it."""
        index = self._statements_index(item.home)
        statements = _statements_of(index, item.name) if index else ()
        if not statements:
            return []
        is_definition = isinstance(item.value, (FunctionType, type))
        return [
            s
            for s in statements
            if (item.name in s.imports if s.kind == "import" else
                (item.keep_definition or s.kind != "def") and (s.strong or not is_definition))
        ]  # fmt: skip

    def _home_of(self, namespace: dict[str, Any]) -> _Home:
        home = self._roots.get(id(namespace))
        if home is not None:
            return home
        package, file = namespace.get("__package__"), namespace.get("__file__")
        path = file if isinstance(file, str) else f"<{namespace.get('__name__')}>"
        return _Home(
            path, namespace=namespace, package=package if isinstance(package, str) else None
        )

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
            return _with_class_state(_methods_digest(methods), cls, has_source=False), found
        home = _Home(path, "module", namespace=vars(module), package=module.__package__)
        for chain in chains:
            if chain[0] in vars(module):
                self._resolve(vars(module)[chain[0]], chain, home, found)
        self._note_bindings(cls, found)
        analysis = index.analysis(key)
        digest = analysis.digest if analysis else index.dump_digest(key)
        return _with_class_state(digest or _methods_digest(methods), cls, has_source=True), found

    def _visit_global(self, item: _Global) -> tuple[str | None, _Found]:
        """A module-level name by the statements that define it, and what they use in turn;
        the functions and classes a container holds count too, wherever they were put in."""
        found, home, name = _Found(), item.home, item.name
        index = self._statements_index(home)
        namespace = home.namespace or {}
        is_definition = isinstance(item.value, FunctionType | type)
        statements = _statements_of(index, name) if index else ()
        digests = []
        for statement in self._counted_statements(item):
            if statement.kind == "import":  # the name's home is the module it comes from
                self._resolve_import(statement.imports[name], (name,), home.package, found)
                continue
            digests.append(statement.digest)
            for chain in statement.chains:
                root = chain[0]
                if root in statement.imports:
                    self._resolve_import(statement.imports[root], chain, home.package, found)
                elif root in namespace and root != name:
                    self._resolve(namespace[root], chain, home, found)
        if is_definition or item.shared:
            return (_by_code(item.value, digests) if digests else None), found
        self._follow_contained(item.value, found)
        self._note_bindings(item.value, found)  # other names of it: `ALIAS = CFG`, imports
        if not any(s.strong for s in statements) and not self._follow_star(item, found):
            content = content_text(item.value)  # no source says how it was made: its value
            return (content if content is not None else _by_type(item.value)), found
        digest = _by_code(item.value, digests) if digests else None  # None: imported
        module = _module_owning(namespace)
        now = CHANGES.changed(module, name, item.value) if module is not None else None
        if now is not None:  # set by the process's own code between runs (see changes.py)
            digest = hash_text(f"{digest}\nset between runs:{now}")
        return digest, found

    def _follow_star(self, item: _Global, found: _Found) -> bool:
        """A name that came with `from module import *`: followed to that module."""
        index = self._statements_index(item.home)
        for module_name, _, level in index.star_imports[::-1] if index else ():
            module = _imported(module_name, level, item.home.package)
            if module is not None and vars(module).get(item.name) is item.value:
                self._resolve(module, (item.name, item.name), _module_home_of(module), found)
                return True
        return False

    def _follow_contained(self, value: object, found: _Found) -> None:
        """Functions, classes and instances of user classes held in (nested) lists, tuples,
        sets and dicts: a registry filled by a decorator in another module, say."""
        stack, seen, budget = [value], set(), _CONTAINED_ITEMS
        while stack and budget > 0:
            item = stack.pop()
            budget -= 1
            if id(item) in seen:
                continue
            seen.add(id(item))
            kind = type(item)
            if kind is dict:
                stack.extend(v for kv in item.items() for v in kv)  # type: ignore[attr-defined]
            elif kind in (list, tuple, set, frozenset):
                stack.extend(item)  # type: ignore[arg-type]
            elif kind not in _PLAIN_LEAVES and item is not value:
                self._follow_code(item, found)

    def _follow_code(self, value: object, found: _Found) -> None:
        original = _subreactor_original(value)
        if original is not None:
            found.follow.append(("subreactor", original))
        elif isinstance(value, FunctionType | type):
            self._classify_definition(value, found)
        elif not isinstance(value, ModuleType):
            inner = _inner_function(value)
            if inner is not None:
                self._classify_definition(inner, found)
            if definition_origin(type(value)) == "user":
                found.follow.append(("class", type(value)))

    def _analysis_of(self, func: FunctionType) -> Analysis | None:
        code = func.__code__
        sources.check(code)  # a file read after it was loaded must hold the code that runs
        index = self._index(code.co_filename)
        key = index.find(_qualname(func), code.co_name, code.co_firstlineno) if index else None
        return index.analysis(key) if index and key else None

    def _scan_function(self, func: FunctionType, analysis: Analysis | None, found: _Found) -> None:
        code, cells = func.__code__, _closure(func)
        names = _code_names(code)  # the compiler's list of non-local names: no scoping rules here
        if analysis is None:  # no source: every global name, but no attribute chains
            analysis = Analysis("", tuple((n,) for n in sorted(names | cells.keys())))
        names = (names | analysis.header) - analysis.declared_global
        module_home = self._module_home(func)
        cell_home = (
            _Home(code.co_filename, "cell", _qualname(func), namespace=func.__globals__)
            if cells
            else module_home
        )
        imports, namespace = analysis.imports, func.__globals__
        for chain in analysis.chains:
            root = chain[0]
            if root in imports:
                self._resolve_import(imports[root], chain, module_home.package, found)
            elif root in cells:
                self._resolve(cells[root], chain, cell_home, found)
            elif root in names and root in namespace:
                self._resolve(namespace[root], chain, module_home, found)

    def _module_home(self, func: FunctionType) -> _Home:
        """`_module_home(func)`, one object per module for the run."""
        namespace = func.__globals__
        key = (id(namespace), _globals_file(func), namespace.get("__package__"))
        home = self._module_homes.get(key)
        if home is None:  # keeps the namespace alive: its id stays unique
            home = self._module_homes[key] = _module_home(func)
        return home

    def _resolve_import(self, imp: Import, chain: Chain, package: object, found: _Found) -> None:
        name, attr, level = imp
        try:
            if level:
                name = importlib.util.resolve_name("." * level + name, package)  # type: ignore[arg-type]
        except (ImportError, ValueError, TypeError):
            return
        module = _load_module(name)
        if module is not None and attr is not None and attr not in vars(module):
            name, attr = f"{name}.{attr}", None  # `from package import submodule`
            module = _load_module(name)
        if module is None:
            self._note_package(name, found)
            return
        rest = chain[1:] if attr is None else (attr, *chain[1:])
        self._resolve(module, (chain[0], *rest), _module_home_of(module), found)

    def _resolve(self, value: object, chain: Chain, home: _Home, found: _Found) -> None:
        # the fields a _Home compares by, as a tuple: hashing the dataclass runs Python code
        key = (id(value), chain, home.path, home.scope, home.owner)
        resolved = self._resolved.get(key)
        if resolved is None:  # the reactors of a file mostly use the same globals
            resolved = self._resolved[key] = (value, _Found())
            self._walk(value, chain, home, resolved[1])
        if resolved[1].parts:
            found.parts.update(resolved[1].parts)
        found.follow.extend(resolved[1].follow)

    def _walk(self, value: object, chain: Chain, home: _Home, found: _Found) -> None:
        """Follow `a.b.c` through the user's own modules, then classify what it lands on."""
        name = chain[0]
        for attr in chain[1:]:
            if not isinstance(value, ModuleType) or attr not in vars(value):
                break
            if module_origin(value.__name__, _module_path(value)) != "user":
                break  # third-party internals are not hashed; the package version stands in
            home, name, value = _module_home_of(value), attr, vars(value)[attr]
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
        """Values that cannot change (numbers, strings, tuples of them) count by value; anything
        else by its type, and by the code that made it: the module-level statements defining
        it, or for a closure cell or default value, the function that made its owner, and the
        statements binding that (in a notebook, where no statements say how a function was
        made, a closure cell or default counts by what it holds)."""
        text, inner = frozen_text(value), _inner_function(value)
        if home.scope != "module":
            if text is not None:
                digest = hash_text(text)
            elif _in_a_notebook(home):
                digest = content_text(value) or _by_type(value)
            else:
                digest = _by_type(value)
            found.parts[f"{home.scope}:{home.owner}:{name}@{os.path.basename(home.path)}"] = digest
        elif text is None:  # a wrapper's own def statement is counted with the code it wraps
            wraps_def = _qualname(inner) == name if inner is not None else False
            found.follow.append(("global", _Global(name, home, value, not wraps_def)))
        elif not self._follow_alias(value, name, home, found):
            found.parts[f"const:{name}@{os.path.basename(home.path)}"] = hash_text(text)
            if self._rebound(name, home):  # an earlier value may have been used meanwhile
                found.follow.append(("global", _Global(name, home, value)))
        if inner is not None:  # functools.partial, lru_cache and similar wrappers
            self._classify_definition(inner, found)
        if definition_origin(type(value)) == "user":
            found.follow.append(("class", type(value)))
        else:
            self._note_package(module_name_of(value) or type(value).__module__, found)

    def _rebound(self, name: str, home: _Home) -> bool:
        """Bound more than once at module level: `A = f(K)` may have used a value of `K` that a
        later `K = 87` replaced, so the value `K` has now does not say what `A` was made from;
        its statements do."""
        index = self._statements_index(home)
        return index is not None and sum(s.strong for s in index.statements(name)) > 1

    def _follow_alias(self, value: object, name: str, home: _Home, found: _Found) -> bool:
        """A name only imported into its module lives where it comes from: follow it there."""
        index = self._statements_index(home)
        statements = [s for s in index.statements(name) if s.strong] if index else []
        if statements and all(s.kind == "import" and name in s.imports for s in statements):
            sources = [statements[-1].imports[name]]
        elif not statements and index is not None:
            sources = [(module, name, level) for module, _, level in index.star_imports[::-1]]
        else:
            return False
        for module_name, attr, level in sources:
            module = _imported(module_name, level, home.package)
            if module is not None and attr is not None and vars(module).get(attr) is value:
                self._resolve(module, (name, attr), _module_home_of(module), found)
                return True
        return False

    def _note_package(self, module_name: str | None, found: _Found) -> None:
        if not self._track_versions or not module_name or module_origin(module_name) != "package":
            return
        top = module_name.partition(".")[0]
        dist, version = distribution(top), package_version(top)
        if dist is not None and version is not None:
            found.parts[f"package:{dist}"] = version


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


def _with_class_state(digest: str, cls: type, has_source: bool) -> str:
    """A class's digest and its plain attributes as its first signature in this process saw
    them, and as the process's own code set them between runs since (see changes.py). One
    that cannot change in place counts by value: `pkg.tools.C.SCALE = 78` anywhere (a path no
    statement scan follows) changes what its methods compute. Any other counts by what it
    holds where no source says what that is (a class defined in a notebook); else the class
    body's text says what it was made with. What a run does to them (a counter it bumps, a
    cache it fills) is no change."""
    state = _CLASS_STATE.get(cls)
    if state is None:
        texts = []
        for name, value in _plain_attributes(cls):
            text = frozen_text(value)
            if text is None and not has_source:
                text = content_text(value)
            if text is not None:
                texts.append(f"{name}={text}")
        state = _CLASS_STATE[cls] = "\n".join(texts)
    changed = [
        f"{name} set between runs: {now}"
        for name, value in _plain_attributes(cls)
        if (now := CHANGES.changed(cls, name, value)) is not None
    ]
    return hash_text("\n".join([digest, state, *changed])) if state or changed else digest


def _plain_attributes(cls: type) -> list[tuple[str, object]]:
    return [
        (name, value)
        for name, value in sorted(vars(cls).items())
        if not name.startswith("__") and not isinstance(value, _CODE_MEMBERS)
    ]


# A class's plain attributes as its first signature in this process saw them: the module-level
# code that set them has run by then (each daemon reload makes new class objects).
_CLASS_STATE: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()


# Members that are code, counted as code by the class's visit.
_CODE_MEMBERS = (FunctionType, staticmethod, classmethod, property, type)


def _in_a_notebook(home: _Home) -> bool:
    """Is `home` in a notebook's or console's namespace (no file: cells run in any order)?"""
    return home.namespace is not None and "__file__" not in home.namespace


def _module_owning(namespace: dict[str, Any]) -> ModuleType | None:
    """The imported module whose globals `namespace` is, if any."""
    module = sys.modules.get(str(namespace.get("__name__")))
    return module if module is not None and vars(module) is namespace else None


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


def _statements_of(index: ModuleIndex, name: str) -> tuple[Statement, ...]:
    """The statements defining `name`; for `module.attr`, those of `module` that use it."""
    module, _, attr = name.partition(".")
    if not attr:
        return index.statements(name)
    found = index.statements(module)
    return tuple(
        s for s in found if s.kind == "code" and any(c[:2] == (module, attr) for c in s.chains)
    )


def _identity(obj: object) -> object:
    return obj.key if type(obj) is _Global else id(obj)


def _is_nested(obj: object) -> bool:
    """Defined inside a function: made each time that function runs."""
    return "<locals>" in _qualname(obj)  # type: ignore[arg-type]


def _holds_code(outer: FunctionType | type, code: CodeType) -> bool:
    """Whether `code` was compiled as part of `outer`'s code (its methods', for a class)."""
    codes = (
        [m.__code__ for v in vars(outer).values() for m in _methods(v)]
        if isinstance(outer, type)
        else [outer.__code__]
    )
    while codes:
        current = codes.pop()
        if current is code:
            return True
        codes.extend(c for c in current.co_consts if isinstance(c, CodeType))
    return False


def _by_code(value: object, digests: list[str]) -> str:
    """A value counted by its type and the statements that made it."""
    kind = type(value)
    return f"{BY_CODE}{kind.__qualname__}:{hash_text(_type_name(kind) + ',' + ','.join(digests))}"


def _by_type(value: object) -> str:
    """A value counted by its type (the code that made it counts elsewhere)."""
    kind = type(value)
    return f"{BY_CODE}{kind.__qualname__}:{hash_text(_type_name(kind))}"


def _type_name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def _imported(name: str, level: int, package: str | None) -> ModuleType | None:
    try:
        name = importlib.util.resolve_name("." * level + name, package) if level else name
    except (ImportError, ValueError, TypeError):
        return None
    return sys.modules.get(name)


def _module_home(func: FunctionType) -> _Home:
    package = func.__globals__.get("__package__")
    package = package if isinstance(package, str) else None
    return _Home(_globals_file(func), "module", namespace=func.__globals__, package=package)


def _module_home_of(module: ModuleType) -> _Home:
    package = getattr(module, "__package__", None)
    package = package if isinstance(package, str) else None
    return _Home(_module_path(module), "module", namespace=vars(module), package=package)


def _module_path(module: ModuleType) -> str:
    file = getattr(module, "__file__", None)
    return file if isinstance(file, str) else f"<{module.__name__}>"


def _globals_file(func: FunctionType) -> str:
    file = func.__globals__.get("__file__")
    return file if isinstance(file, str) else func.__code__.co_filename


def _qualname(obj: FunctionType | type) -> str:
    code = getattr(obj, "__code__", None)  # co_qualname survives a reassigned __qualname__
    return getattr(code, "co_qualname", None) or obj.__qualname__


def _component_key(kind: Kind, obj: FunctionType | type | _Global) -> str:
    if isinstance(obj, _Global):
        return f"const:{obj.name}@{os.path.basename(obj.home.path)}"
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
