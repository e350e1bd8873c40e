"""Which module-level statements define a name: those that bind it (assignment, import, def,
`for`, `with`, `del`...), mutate it (`N[k] = v`, `N.attr = v`, `N.update(...)`, `N += x`), pass
it to a call (`fill(N)`) or call a function of the module that mutates it (`setup()`,
`@register`), each with the headers of the blocks around it (`for k in KEYS:`, `if DEBUG:`).
Pure syntax: depends on nothing in pyplantd.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, replace

Part = tuple[str, tuple[ast.AST, ...]]  # a label (which block, which header) and its nodes

_DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_DEFERRED = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_CHAIN_LINKS = (ast.Attribute, ast.Subscript, ast.Starred)
# Builtins that never change their arguments: `print(CFG)` does not define CFG (unless the
# module binds one of these names itself).
_READER_NAMES = """abs all any ascii bool bytes callable dict enumerate float format frozenset
getattr hasattr hash id int isinstance issubclass iter len list max min print range repr reversed
round set sorted str sum tuple type zip"""
READERS = frozenset(_READER_NAMES.split())


@dataclass(frozen=True)
class Unit:
    """One module-level statement, or the header of a block, with the headers around it."""

    parts: tuple[Part, ...]  # outermost header first, the statement itself last
    bound: frozenset[str]  # names it binds or mutates
    passed: frozenset[str]  # names it passes to a call, which may mutate them
    definition: ast.AST | None = None  # a def or class statement: hashed as that definition
    calls: frozenset[str] = frozenset()  # names it calls (decorators too)

    @property
    def node(self) -> ast.AST:
        return self.parts[-1][1][0]


@dataclass
class _Touched:
    bound: set[str]
    passed: set[str]
    calls: set[str]


def module_units(module: ast.Module) -> list[Unit]:
    """Every module-level statement and block header that binds, mutates or passes a name, in
    source order. Bodies of functions and classes are not module-level code: a def is one unit,
    but calling a function of the module counts as the writes its body makes to module names."""
    units = collect_units(module.body)
    shadowed = shadowed_readers(units)
    if shadowed:  # a module that binds its own `print` may mutate what it prints
        units = collect_units(module.body, READERS - shadowed)
    return with_writes(units, _function_writes(units))


def collect_units(statements: list[ast.stmt], readers: frozenset[str] = READERS) -> list[Unit]:
    """The units of these module-level statements, before calls of the module's functions
    count (see with_writes); calls of `readers` change nothing."""
    return _Collector(readers).units(statements)


def shadowed_readers(units: list[Unit]) -> frozenset[str]:
    """The reader builtins the module binds itself: its units must be collected without them."""
    return READERS & frozenset().union(*[u.bound for u in units])


def with_writes(units: list[Unit], writes: dict[str, frozenset[str]]) -> list[Unit]:
    """The units, each also binding what the module's functions it calls write."""
    return [
        replace(u, bound=u.bound.union(*(writes[c] for c in u.calls if c in writes)))
        if u.calls & writes.keys()
        else u
        for u in units
    ]


class _Collector:
    def __init__(self, readers: frozenset[str]) -> None:
        self.readers = readers
        self.found: list[Unit] = []

    def units(self, statements: list[ast.stmt]) -> list[Unit]:
        self._visit_block(statements, ())
        return self.found

    def _visit_block(self, statements: list[ast.stmt], context: tuple[Part, ...]) -> None:
        for statement in statements:
            label = type(statement).__name__
            if isinstance(statement, _DEFS):
                touched = _touched(tuple(statement.decorator_list), self.readers)
                for decorator in statement.decorator_list:  # called with what it decorates
                    if isinstance(decorator, ast.Name):
                        touched.calls.add(decorator.id)
                    elif isinstance(decorator, ast.Attribute):  # `@registry.add`: a method
                        _note_root(decorator.value, touched.bound)
                self.found.append(Unit(
                    (*context, (label, (statement,))), frozenset({statement.name} | touched.bound),
                    frozenset(), statement, frozenset(touched.calls),
                ))  # fmt: skip
                continue
            blocks = list(_blocks(statement))
            if not blocks:  # a simple statement
                self._add((*context, (label, (statement,))))
                continue
            headers_done: set[tuple[object, ...]] = set()  # `if` and `else` share one header
            for header_label, header, body, binds in blocks:
                key = (*map(id, header), *sorted(binds))
                if (header or binds) and key not in headers_done:
                    headers_done.add(key)
                    self._add((*context, (header_label, header)), binds)
                if body:
                    self._visit_block(body, (*context, (header_label, header)))

    def _add(self, parts: tuple[Part, ...], binds: frozenset[str] = frozenset()) -> None:
        touched = _touched(parts[-1][1], self.readers)
        bound = touched.bound | binds
        if bound or touched.passed or touched.calls:
            self.found.append(Unit(
                parts, frozenset(bound), frozenset(touched.passed - bound), None,
                frozenset(touched.calls),
            ))  # fmt: skip


Block = tuple[str, tuple[ast.AST, ...], list[ast.stmt], frozenset[str]]


def _blocks(node: ast.stmt) -> Iterator[Block]:
    """(label, header nodes, statements, names the header binds) of each block of a compound
    statement; nothing for a simple one. The label tells the blocks apart (`if` from `else`)."""
    none: frozenset[str] = frozenset()
    name = type(node).__name__
    if isinstance(node, ast.If | ast.While):
        yield f"{name}.body", (node.test,), node.body, none
        yield f"{name}.orelse", (node.test,), node.orelse, none
    elif isinstance(node, ast.For | ast.AsyncFor):
        yield f"{name}.body", (node.target, node.iter), node.body, none
        yield f"{name}.orelse", (node.target, node.iter), node.orelse, none
    elif isinstance(node, ast.With | ast.AsyncWith):
        items = [n for i in node.items for n in (i.context_expr, i.optional_vars) if n is not None]
        yield f"{name}.body", tuple(items), node.body, none
    elif isinstance(node, ast.Try | getattr(ast, "TryStar", ast.Try)):
        yield f"{name}.body", (), node.body, none
        for handler in node.handlers:
            as_name = f" as {handler.name}" if handler.name else ""
            header = (handler.type,) if handler.type is not None else ()
            binds = frozenset([handler.name] if handler.name else [])
            yield f"{name}.except{as_name}", header, handler.body, binds
        yield f"{name}.orelse", (), node.orelse, none
        yield f"{name}.finalbody", (), node.finalbody, none
    elif isinstance(node, ast.Match):
        for case in node.cases:
            guard = (case.guard,) if case.guard is not None else ()
            yield f"{name}.case", (node.subject, case.pattern, *guard), case.body, none


def _touched(nodes: tuple[ast.AST, ...], readers: frozenset[str]) -> _Touched:
    """Names these nodes bind or mutate, pass to a call, and call, when they run; calls of
    `readers` change nothing."""
    found = _Touched(set(), set(), set())
    stack: list[ast.AST] = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name | ast.Attribute | ast.Subscript):
            if isinstance(node.ctx, ast.Store | ast.Del):  # `N = `, `N.a = `, `del N[k]`
                _note_root(node, found.bound)
        elif isinstance(node, ast.Call):
            _note_call(node, readers, found)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            found.bound.update(a.asname or a.name.split(".")[0] for a in node.names)  # "*" too
        elif isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
            found.bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            found.bound.add(node.rest)
        if isinstance(node, _DEFERRED):
            continue  # a body that runs later, if ever, not as module-level code
        if isinstance(node, ast.comprehension):  # its target is local to the comprehension
            stack.extend([node.iter, *node.ifs])
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found


def _note_call(node: ast.Call, readers: frozenset[str], found: _Touched) -> None:
    func = node.func
    if isinstance(func, ast.Attribute):  # `N.update(...)`: a method may mutate N
        _note_root(func.value, found.bound)
    elif isinstance(func, ast.Name):
        found.calls.add(func.id)
        if func.id in readers:
            return
    for arg in [*node.args, *(k.value for k in node.keywords)]:
        _note_root(arg, found.passed)


def _note_root(node: ast.AST, names: set[str]) -> None:
    while isinstance(node, _CHAIN_LINKS):
        node = node.value
    if isinstance(node, ast.Name):
        names.add(node.id)


def _function_writes(units: list[Unit]) -> dict[str, frozenset[str]]:
    """Module names each module-level function called at module level may change when it runs
    (directly, or through the module's other functions it calls)."""
    defs: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    for unit in units:
        if isinstance(unit.definition, ast.FunctionDef | ast.AsyncFunctionDef):
            defs.setdefault(unit.definition.name, []).append(unit.definition)
    calls = [u.calls for u in units]
    return function_writes(calls, defs.keys(), lambda name: [body_writes(n) for n in defs[name]])


Body = tuple[set[str], set[str]]  # (global names a function body writes, names it calls)


def function_writes(
    calls_of_units: Iterable[frozenset[str]],
    functions: Collection[str],
    bodies: Callable[[str], list[Body]],
) -> dict[str, frozenset[str]]:
    """What each of the module's `functions` called at module level writes, directly or
    through the others it calls; `bodies` gives a function's bodies (one per def), asked only
    for the functions that run at import time (most are never looked at)."""
    writes: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    todo = [c for unit_calls in calls_of_units for c in unit_calls if c in functions]
    while todo:
        name = todo.pop()
        if name not in writes:
            writes[name], calls[name] = set(), set()
            for written, body_calls in bodies(name):
                writes[name] |= written
                calls[name] |= {c for c in body_calls if c in functions}
            todo.extend(calls[name])
    changed = True
    while changed:  # through the calls between them, to a fixed point
        changed = False
        for name, callees in calls.items():
            more = set().union(*(writes[c] for c in callees)) - writes[name]
            if more:
                writes[name] |= more
                changed = True
    return {name: frozenset(found) for name, found in writes.items()}


def body_writes(func: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[set[str], set[str]]:
    """(global names the body binds or mutates, names it calls), for one function body."""
    args = func.args
    params = {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]}
    params |= {a.arg for a in (args.vararg, args.kwarg) if a is not None}
    declared: set[str] = set()
    for node in _body_nodes(func):
        if isinstance(node, ast.Global | ast.Nonlocal):
            declared.update(node.names)
    touched = _touched(tuple(func.body), frozenset())
    assigned = {
        n.id for n in _body_nodes(func)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store | ast.Del)
    }  # fmt: skip
    local = (params | assigned) - declared  # Python's rule: assigned anywhere means local
    return (touched.bound | touched.passed) - local, touched.calls - local


def _body_nodes(func: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function's body, not of the functions and classes nested in it."""
    stack = list(ast.iter_child_nodes(func))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _DEFERRED):
            stack.extend(ast.iter_child_nodes(node))
