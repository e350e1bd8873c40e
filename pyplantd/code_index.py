"""Parsed source files: each file parsed once per change on disk, its definitions indexed by
qualname, each definition hashed as its normalized AST with the names it uses. Depends on
nothing else in pyplantd, and never imports or runs the code it reads.
"""

from __future__ import annotations

import ast
import os
from collections import defaultdict
from dataclasses import dataclass, field

import xxhash

Chain = tuple[str, ...]  # `name` or `name.attr.attr`
Import = tuple[str, str | None, int]  # (module, attr of `from module import attr`, level)

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


class ModuleIndex:
    """One parsed file, docstrings stripped, its definitions indexed by qualname and first line."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.defs: dict[str, list[ast.AST]] = defaultdict(list)
        self.lines: dict[int, list[ast.AST]] = defaultdict(list)
        self.assignments: dict[str, list[ast.stmt]] = defaultdict(list)
        self._analyses: dict[int, Analysis | None] = {}
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

    def analysis(self, node: ast.AST) -> Analysis | None:
        if id(node) not in self._analyses:  # the tree lives as long as this index: ids are stable
            self._analyses[id(node)] = _analyze(node)
        return self._analyses[id(node)]

    def statement_digest(self, name: str) -> str | None:
        found = [self.analysis(s) for s in self.assignments.get(name, [])]
        digests = [a.digest for a in found if a is not None]
        return hash_text(",".join(digests)) if digests else None


# Parsed files, shared by every SignatureComputer of the process: path -> ((mtime_ns, size), index).
_MODULES: dict[str, tuple[tuple[int, int], ModuleIndex | None]] = {}


def module_index(path: str) -> ModuleIndex | None:
    """The index of a file, re-parsed only when the file changed on disk."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    stamp = (stat.st_mtime_ns, stat.st_size)
    if path not in _MODULES or _MODULES[path][0] != stamp:
        try:
            with open(path, "rb") as file:  # bytes, so that ast honours an encoding cookie
                _MODULES[path] = (stamp, ModuleIndex(ast.parse(file.read(), filename=path)))
        except (OSError, SyntaxError, ValueError):
            _MODULES[path] = (stamp, None)
    return _MODULES[path][1]


def class_level_chains(tree: ast.ClassDef, index: ModuleIndex) -> set[Chain]:
    """Names the class statement itself evaluates: bases, decorators, class attributes."""
    nodes = [*tree.bases, *tree.keywords, *tree.decorator_list]
    nodes += [s for s in tree.body if not isinstance(s, _SCOPES)]  # methods come via objects
    found = [index.analysis(n) for n in nodes]
    return {chain for a in found if a is not None for chain in a.chains}


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
