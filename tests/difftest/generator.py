"""Random projects: a pipeline plus helper modules and packages, 4-10 reactors in a random graph,
definitions of every kind the change detection must follow, reached through every import style.

Everything comes from one `random.Random`, so a seed gives the same project every time.
"""

from __future__ import annotations

import random

from .model import (
    COLLECTOR,
    FUNCTION_KINDS,
    INT_KINDS,
    PIPELINE,
    USE_KINDS,
    Item,
    Output,
    Project,
    Style,
    may_reference,
)

MODULE_POOL = ["consts", "helpers", "shapes", "pkg", "pkg.tools", "pkg.deep.ops", "stages"]
IMPORT_STYLES = ["import", "import_as", "from", "from_as", "star", "parent_from", "relative"]
DEF_KINDS = {
    "const_int": 4,
    "const_expr": 3,
    "const_container": 3,
    "const_array": 2,
    "func": 4,
    "factory": 2,
    "class": 3,
    "instance": 2,
    "table": 2,
    "subreactor": 2,
    "arrsub": 1,
}
VARIANTS = {
    "const_int": [""],
    "const_expr": ["mul", "sum", "fstring"],
    "const_container": ["dict", "list", "tuple", "comp", "dictcomp", "nested"],
    "const_array": ["arange", "linspace", "full"],
    "func": ["plain", "default", "kwonly", "local", "lambda", "lru", "wrapped"],
    "factory": ["closure", "lambda", "partial", "default"],
    "class": ["plain", "property", "static", "derived", "attr_ref", "dataclass"],
    "instance": [""],
    "table": ["dict", "list"],
    "subreactor": [""],
    "arrsub": [""],
}
VALUE_KINDS = [
    "int", "float", "str", "bytes", "list", "dict", "tuple", "nested", "frozenset", "ndarray",
    "farray", "array2d", "npscalar", "masked", "arrsub", "instance", "function",
]  # fmt: skip
CONFIG_PARAMS = ["alpha", "beta", "gamma"]


def knob(rng: random.Random) -> int:
    return rng.randint(10, 99)  # two digits: an edit can keep the file's size


class Generator:
    """`exclude` leaves out features by name: value kinds (`masked`, `arrsub`...), definition
    kinds (`factory`...), `mutation`, `helper_reactors`, `reactor_factory`, `reactor_default`,
    or import styles (`star`...). The edits take their own names (see EditMaker)."""

    def __init__(self, rng: random.Random, exclude: frozenset[str] = frozenset()) -> None:
        self.rng = rng
        self.counter = 0
        self.exclude = exclude

    def fresh_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # -- the whole project ------------------------------------------------------------------
    def project(self) -> Project:
        rng = self.rng
        helpers = [m for m in MODULE_POOL if rng.random() < 0.45]
        rng.shuffle(helpers)
        modules = [*helpers, PIPELINE]
        styles = {}
        for importer in modules:
            for imported in modules:
                if importer != imported:
                    options = [s for s in IMPORT_STYLES if s not in self.exclude] or ["import"]
                    styles[f"{importer}>{imported}"] = rng.choice(options)
        project = Project(modules, [], styles, {})
        project.items.append(self.config_item())
        for _ in range(rng.randint(3, 12)):
            item = self.definition(project)
            if item is not None:
                project.items.append(item)
        for n in range(rng.randint(0, 2)):
            project.files[f"data/d{n}.txt"] = knob(rng)
        for _ in range(rng.randint(4, 10)):
            project.items.append(self.reactor(project))
        names = [o.name for r in project.reactors() for o in r.outputs]
        project.items.append(Item(COLLECTOR, "collector", PIPELINE, inputs=names))
        return project

    def config_item(self) -> Item:
        rng = self.rng
        knobs = {p: knob(rng) for p in CONFIG_PARAMS}
        knobs["prop"] = rng.randint(2, 9)
        return Item("CONFIG", "config", PIPELINE, rng.choice(["dict", "class"]), knobs)

    def visible(self, project: Project, module: str, kinds: tuple[str, ...]) -> list[str]:
        """Definitions of these kinds that code in `module` may use."""
        found = []
        for item in project.items:
            if item.kind in kinds and may_reference(module, item.module, project.modules):
                found.append(item.id)
        return found

    def pick(self, options: list[str], low: int, high: int) -> list[str]:
        count = min(len(options), self.rng.randint(low, high))
        return self.rng.sample(options, count)

    # -- definitions ------------------------------------------------------------------------
    def definition(self, project: Project) -> Item | None:
        rng = self.rng
        kinds = [k for k in DEF_KINDS if k not in self.exclude]
        kind = rng.choices(kinds, weights=[DEF_KINDS[k] for k in kinds])[0]
        homes = [m for m in project.modules if m != "stages"]
        module = rng.choice(homes)
        variant = rng.choice(VARIANTS[kind])
        ints = self.visible(project, module, INT_KINDS)
        uses = self.visible(project, module, USE_KINDS)
        classes = self.visible(project, module, ("class",))
        funcs = self.visible(project, module, FUNCTION_KINDS)
        refs: list[str] = []
        knobs = {"k": knob(rng)}
        prefix = {"const_int": "K", "const_expr": "E", "const_container": "T", "const_array": "A",
                  "func": "f", "factory": "g", "class": "C", "instance": "P", "table": "OPS",
                  "subreactor": "sub", "arrsub": "Arr"}[kind]  # fmt: skip
        reads: list[str] = []
        if kind == "const_expr":
            if not ints:
                kind, prefix, variant = "const_int", "K", ""
            else:
                refs = self.pick(ints, 1, 2 if variant == "sum" else 1)
        elif kind == "const_container":
            refs = self.pick(uses, 0, 2)
        elif kind == "const_array":
            refs = self.pick(ints, 0, 1)
        elif kind in ("func", "factory", "subreactor"):
            refs = self.pick(uses, 0, 2 if kind == "func" else 1)
            knobs["k2"] = knob(rng)
            knobs["d"] = knob(rng)
            if kind == "subreactor" and rng.random() < 0.4:
                reads = [rng.choice(CONFIG_PARAMS)]
        elif kind == "class":
            knobs["k2"] = knob(rng)
            if variant == "derived" and not classes:
                variant = "plain"
            refs = ([rng.choice(classes)] if variant == "derived" else []) + self.pick(uses, 0, 1)
        elif kind == "instance":
            if not classes:
                return None
            refs = [rng.choice(classes)]
        elif kind == "table":
            if not funcs:
                return None
            refs = self.pick(funcs, 1, 2)
        elif kind == "arrsub":
            knobs["k2"] = knob(rng)
        item = Item(self.fresh_id(prefix), kind, module, variant, knobs, refs)
        item.reads = reads
        return item

    # -- reactors ---------------------------------------------------------------------------
    def reactor(self, project: Project) -> Item:
        rng = self.rng
        homes = [PIPELINE] * 3
        if "helper_reactors" not in self.exclude:
            homes += [m for m in project.modules if m in ("stages", "pkg.tools")]
        module = rng.choice(homes)
        rid = self.fresh_id("r")
        available = [o.name for r in project.reactors() for o in r.outputs]
        inputs = self.pick(available, 0 if len(available) < 2 else 1, 3)
        variant = rng.choices(["plain", "factory", "default"], weights=[6, 1, 1])[0]
        if f"reactor_{variant}" in self.exclude:
            variant = "plain"
        knobs = {"k": knob(rng)}
        outputs = []
        for n in range(1 if rng.random() < 0.8 else 2):
            knobs[f"o{n}"] = knob(rng)
            outputs.append(self.output(project, module, f"{rid}_{'ab'[n]}"))
        item = Item(rid, "reactor", module, variant, knobs, inputs=inputs, outputs=outputs)
        item.refs = self.pick(self.visible(project, module, USE_KINDS), 0, 3)
        item.subs = self.pick(self.visible(project, module, ("subreactor",)), 0, 1)
        params = CONFIG_PARAMS + (
            ["cfg.alpha", "cfg.area"] if project.config().variant == "class" else []
        )
        item.reads = self.pick(params, 0, 2) if rng.random() < 0.5 else []
        item.files = self.pick(list(project.files), 0, 1) if rng.random() < 0.4 else []
        kinds = {o.name: o.kind for r in project.reactors() for o in r.outputs}
        listy = [n for n in inputs if kinds.get(n) == "list"]
        if rng.random() < 0.15 and "local_import" not in self.exclude:
            item.flags.append("local_import")
        mutation = "mutation" not in self.exclude
        if listy and rng.random() < 0.15 and mutation:
            item.flags.append(f"mutate_input:{rng.choice(listy)}")
        for out in outputs:
            if out.kind == "list" and rng.random() < 0.15 and mutation:
                item.flags.append(f"mutate_sent:{out.name}")
        return item

    def output(self, project: Project, module: str, name: str) -> Output:
        rng = self.rng
        allowed = [k for k in VALUE_KINDS if k not in self.exclude]
        kind = rng.choice(allowed)
        needs = {"arrsub": ("arrsub",), "instance": ("class",), "function": ("func",)}
        if kind in needs:
            options = self.visible(project, module, needs[kind])
            if kind == "function":  # only module-level `def`s pickle by reference
                options = [o for o in options if (i := project.item(o)) and i.variant != "lambda"]
            if not options:
                return Output(name, rng.choice([k for k in allowed if k not in needs]))
            return Output(name, kind, rng.choice(options))
        return Output(name, kind)


def generate(seed: int, exclude: frozenset[str] = frozenset()) -> Project:
    return Generator(random.Random(seed), exclude).project()


def new_id_counter(project: Project) -> int:
    """The next free number for ids of items added later (posts)."""
    numbers = [int("".join(c for c in i.id if c.isdigit()) or 0) for i in project.items]
    return max(numbers, default=0) + 1


__all__ = ["Generator", "Style", "generate", "new_id_counter"]
