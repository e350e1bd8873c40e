"""A generated project as data: modules in import order, definitions, reactors, data files.
Edits and shrinking change this model, never text (render.py writes the text).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

PIPELINE = "pipeline"
COLLECTOR = "collect"
RUNTIME_MODULE = "served"  # tests/difftest/project_runtime.py, copied in
SERVED = "served"  # the collector's output: the digest of every ingredient it received

# What a reference of each role may point to (see `role_of`).
FUNCTION_KINDS = ("func", "factory")
INT_KINDS = ("const_int", "const_expr", "func", "factory", "class", "instance", "table")
USE_KINDS = (*INT_KINDS, "const_container", "const_array")


@dataclass
class Style:
    """What may change without changing behaviour: a comment, a docstring, a formatting variant
    (bit 0: hex literals, bit 1: extra parentheses and spaces, bit 2: a blank line before, bit
    3: one argument per line)."""

    comment: str = ""
    doc: str = ""
    fmt: int = 0


@dataclass
class Output:
    name: str
    kind: str  # a value kind of `value_expr`
    ref: str = ""  # the class, array subclass or function the value is made with


@dataclass
class Item:
    """One definition: a constant, function, class... a reactor, a statement after a
    definition (`post`), or the config. `id` is its Python name."""

    id: str
    kind: str
    module: str
    variant: str = ""
    knobs: dict[str, int] = field(default_factory=dict)
    refs: list[str] = field(default_factory=list)  # uses, in kind-specific roles
    style: Style = field(default_factory=Style)
    # reactors
    inputs: list[str] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    subs: list[str] = field(default_factory=list)  # subreactors it calls
    reads: list[str] = field(default_factory=list)  # config params ('cfg.' prefix: attribute)
    files: list[str] = field(default_factory=list)  # tracked data files
    flags: list[str] = field(default_factory=list)
    target: str = ""  # posts: the definition they change
    renamed: str = ""  # reactors: the function's name, when an edit renamed it

    @property
    def name(self) -> str:
        return self.renamed or self.id

    def all_refs(self) -> list[str]:
        found = [*self.refs, *self.subs, *(o.ref for o in self.outputs if o.ref)]
        if self.target:
            found.append(self.target)
        return found


@dataclass
class Project:
    modules: list[str]  # import order; the pipeline last
    items: list[Item]  # definition order within each module
    styles: dict[str, str]  # "importer>imported" -> import style
    files: dict[str, int]  # tracked data file -> the number it holds
    module_style: dict[str, Style] = field(default_factory=dict)
    broken: str = ""  # a module saved with a syntax error (the next edit fixes it)
    sabotage: bool = False  # the tester's self-test: a code hash that never changes

    def item(self, item_id: str) -> Item | None:
        return next((i for i in self.items if i.id == item_id), None)

    def config(self) -> Item:
        found = next(i for i in self.items if i.kind == "config")
        return found

    def reactors(self) -> list[Item]:
        return [i for i in self.items if i.kind in ("reactor", "collector")]

    def producers(self) -> dict[str, str]:
        return {o.name: r.id for r in self.reactors() for o in r.outputs}

    def copy(self) -> Project:
        return copy.deepcopy(self)


# -- module layout ------------------------------------------------------------------------------
def module_path(key: str, modules: list[str]) -> str:
    is_package = any(m.startswith(key + ".") for m in modules)
    base = key.replace(".", "/")
    return base + "/__init__.py" if is_package else base + ".py"


def ancestors(key: str) -> list[str]:
    parts = key.split(".")
    return [".".join(parts[:n]) for n in range(1, len(parts))]


def effective_position(key: str, modules: list[str]) -> int:
    """Importing a submodule imports its packages first: it is ready only after all of them."""
    return max(modules.index(k) for k in [key, *ancestors(key)] if k in modules)


def may_reference(importer: str, imported: str, modules: list[str]) -> bool:
    if importer == imported:
        return True
    return effective_position(imported, modules) < modules.index(importer)
