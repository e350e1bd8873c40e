"""Rendering a project model to source files, as a user would write them: every import
style, comments, docstrings and formatting variants that must not matter. Deterministic: the
same model gives the same bytes.
"""

from __future__ import annotations

from typing import Any

from .model import (
    COLLECTOR,
    PIPELINE,
    RUNTIME_MODULE,
    SERVED,
    Item,
    Output,
    Project,
    Style,
    ancestors,
    module_path,
)


class Scope:
    """Renders names as seen from one module, collecting the imports that makes them visible."""

    def __init__(self, project: Project, module: str, local: bool = False) -> None:
        self.project = project
        self.module = module
        self.local = local  # imports inside a function: no `import *` there
        self.imports: list[str] = []

    def _need(self, line: str) -> None:
        if line not in self.imports:
            self.imports.append(line)

    def name(self, item_id: str) -> str:
        item = self.project.item(item_id)
        assert item is not None, item_id
        if item.module == self.module:
            return item.id
        target = item.module
        style = self.project.styles.get(f"{self.module}>{target}", "import")
        if style == "star" and self.local:
            style = "from"
        relative = _relative(self.module, target, self.project.modules)
        if style == "import":
            self._need(f"import {target}")
            return f"{target}.{item.id}"
        if style == "import_as":
            alias = "m_" + target.replace(".", "_")
            self._need(f"import {target} as {alias}")
            return f"{alias}.{item.id}"
        if style == "from":
            self._need(f"from {target} import {item.id}")
            return item.id
        if style == "from_as":
            self._need(f"from {target} import {item.id} as {item.id}_x")
            return f"{item.id}_x"
        if style == "star":
            self._need(f"from {target} import *")
            return item.id
        if style == "parent_from" and "." in target:
            parent, leaf = target.rsplit(".", 1)
            self._need(f"from {parent} import {leaf}")
            return f"{leaf}.{item.id}"
        if style == "relative" and relative is not None:
            self._need(f"from {relative} import {item.id}")
            return item.id
        self._need(f"import {target}")
        return f"{target}.{item.id}"

    def module_ref(self, target: str) -> str:
        """The module object itself (for `module.NAME = ...` statements)."""
        self._need(f"import {target}")
        return target


def _relative(importer: str, target: str, modules: list[str]) -> str | None:
    """`.leaf` / `.` spelling of `target` from inside `importer`'s package, if it is one."""
    importer_is_package = any(m.startswith(importer + ".") for m in modules)
    package = importer if importer_is_package else importer.rpartition(".")[0]
    if not package:
        return None
    if target == package:
        return "."
    if target.startswith(package + "."):
        return "." + target[len(package) + 1 :]
    return None


def lit(value: int, style: Style) -> str:
    return hex(value) if style.fmt & 1 and value >= 0 else str(value)


def par(expr: str, style: Style) -> str:
    return f"( {expr} )" if style.fmt & 2 else expr


def call(func: str, args: list[str], style: Style, indent: str) -> str:
    if style.fmt & 8 and args:
        inner = "".join(f"{indent}    {a},\n" for a in args)
        return f"{func}(\n{inner}{indent})"
    return f"{func}({', '.join(args)})"


def use_expr(scope: Scope, item_id: str) -> str:
    """An expression whose value depends on the definition (evaluated where it is written)."""
    item = scope.project.item(item_id)
    assert item is not None
    name = scope.name(item_id)
    if item.kind in ("func", "factory"):
        return f"{name}(2)"
    if item.kind == "class":
        return f"{name}(2).value()"
    if item.kind == "instance":
        return f"{name}.value()"
    if item.kind == "table":
        return f"{name}[0](2)" if item.variant == "list" else f"{name}['a'](2)"
    return name


def _doc(style: Style, indent: str) -> list[str]:
    return [f'{indent}"""{style.doc}"""'] if style.doc else []


def _comment(style: Style, indent: str) -> list[str]:
    return [f"{indent}# {style.comment}"] if style.comment else []


def _head(style: Style) -> list[str]:
    return [""] if style.fmt & 4 else []


def render_item(scope: Scope, item: Item) -> list[str]:
    renderer = _RENDERERS[item.kind]
    return _head(item.style) + renderer(scope, item)


def _const(scope: Scope, item: Item) -> list[str]:
    s, k = item.style, item.knobs
    uses = [use_expr(scope, r) for r in item.refs]
    v = item.variant
    if item.kind == "const_int":
        expr = lit(k["k"], s)
    elif item.kind == "const_expr":
        if v == "sum":
            expr = "sum(" + par("[" + ", ".join([*uses, lit(k["k"], s)]) + "]", s) + ")"
        elif v == "fstring":
            expr = f'len(f"{{{uses[0]}}}-{k["k"]}") + {lit(k["k"], s)}'
        else:
            expr = par(f"{uses[0]} * {lit(k['k'], s)}", s) + " + 1"
    elif item.kind == "const_container":
        u0 = uses[0] if uses else "0"
        u1 = uses[1] if len(uses) > 1 else "'u'"
        expr = {
            "dict": f"{{'a': {u0}, 'b': [{lit(k['k'], s)}, {u1}]}}",
            "list": f"[{u0}, {lit(k['k'], s)}]",
            "tuple": f"({u0}, {lit(k['k'], s)}, 'x')",
            "comp": f"[i * {lit(k['k'], s)} for i in range(3)] + [{u0}]",
            "dictcomp": f"{{f'k{{i}}': {u0} if i else {lit(k['k'], s)} for i in range(2)}}",
            "nested": f"{{'t': ({u0}, [{lit(k['k'], s)}]), 'd': {{'x': {u1}}}}}",
        }[v]
    else:  # const_array
        u0 = f"mix({uses[0]})" if uses else "1"
        expr = {
            "arange": f"np.arange(3) * {u0} + {lit(k['k'], s)}",
            "linspace": f"np.linspace(0, 1, {u0} % 4 + 2) * {lit(k['k'], s)}",
            "full": call("np.full", ["(2, 2)", f"{u0} + {lit(k['k'], s)}"], s, ""),
        }[v]
    lines = [*_comment(s, ""), f"{item.id} = {expr}"]
    if s.doc:  # a string statement after an assignment: documents it, does nothing
        lines.append(f'"""{s.doc}"""')
    return lines


def _func(scope: Scope, item: Item) -> list[str]:
    s, k, v = item.style, item.knobs, item.variant
    terms = [f"mix({use_expr(scope, r)})" for r in item.refs]
    body_extra = "".join(f" + {t}" for t in terms)
    if v == "lambda":
        return [*_comment(s, ""), f"{item.id} = lambda x: x * {lit(k['k'], s)}{body_extra}"]
    params = {
        "plain": "x",
        "default": f"x, d={lit(k['d'], s)}",
        "kwonly": f"x, *, d={lit(k['d'], s)}",
        "local": "x",
        "lru": "x",
        "wrapped": "x",
    }[v]
    head = f"def {item.id}({params}):"
    decorators = {
        "lru": ["@functools.lru_cache(maxsize=None)"],
        "wrapped": [f"@{scope.module.replace('.', '_')}_traced"],
    }.get(v, [])
    lines = [*decorators, head, *_doc(s, "    "), *_comment(s, "    ")]
    if v == "local":
        lines += [f"    y = x + {lit(k['k'], s)}", f"    return {par('y * 2', s)}{body_extra}"]
    elif v in ("default", "kwonly"):
        lines.append(f"    return x * {lit(k['k'], s)} + d{body_extra}")
    else:
        product = f"x * {lit(k['k'], s)}"
        lines.append(f"    return {par(product, s)}{body_extra}")
    return lines


def _factory(scope: Scope, item: Item) -> list[str]:
    s, k, v = item.style, item.knobs, item.variant
    terms = "".join(f" + mix({use_expr(scope, r)})" for r in item.refs)
    maker = f"make_{item.id}"
    if v == "partial":
        return [
            f"def {maker}(k, x):",
            *_doc(s, "    "),
            *_comment(s, "    "),
            f"    return k * x + {lit(k['k2'], s)}{terms}",
            "",
            "",
            f"{item.id} = functools.partial({maker}, {lit(k['k'], s)})",
        ]
    if v == "lambda":
        inner = [f"    return lambda x: x - k + {lit(k['k2'], s)}{terms}"]
    else:
        inner = [
            "    def inner(x):",
            f"        return x * k + {lit(k['k2'], s)}{terms}",
            "",
            "    return inner",
        ]
    arg = "" if v == "default" else lit(k["k"], s)
    params = f"k={lit(k['k'], s)}" if v == "default" else "k"
    return [
        f"def {maker}({params}):",
        *_doc(s, "    "),
        *_comment(s, "    "),
        *inner,
        "",
        "",
        f"{item.id} = {maker}({arg})",
    ]


def _class(scope: Scope, item: Item) -> list[str]:
    s, k, v = item.style, item.knobs, item.variant
    if v == "derived":
        base = scope.name(item.refs[0])
        extra = "".join(f" + mix({use_expr(scope, r)})" for r in item.refs[1:])
        return [
            f"class {item.id}({base}):",
            *_doc(s, "    "),
            *_comment(s, "    "),
            f"    SCALE = {lit(k['k'], s)}",
            "",
            "    def value(self):",
            f"        return super().value() + {lit(k['k2'], s)}{extra}",
        ]
    extra = "".join(f" + mix({use_expr(scope, r)})" for r in item.refs)
    if v == "dataclass":
        return [
            "@dataclasses.dataclass",
            f"class {item.id}:",
            *_doc(s, "    "),
            *_comment(s, "    "),
            "    v: int",
            f"    SCALE: int = {lit(k['k'], s)}",
            "",
            "    def value(self):",
            f"        return self.v * self.SCALE + {lit(k['k2'], s)}{extra}",
        ]
    if v == "attr_ref":  # a class attribute computed from other names
        attr = (
            f"mix({use_expr(scope, item.refs[0])}) + {lit(k['k'], s)}"
            if item.refs
            else lit(k["k"], s)
        )
        return [
            f"class {item.id}:",
            *_doc(s, "    "),
            *_comment(s, "    "),
            f"    SCALE = {attr}",
            "",
            "    def __init__(self, v):",
            "        self.v = v",
            "",
            "    def value(self):",
            f"        return self.v * self.SCALE + {lit(k['k2'], s)}",
        ]
    lines = [
        f"class {item.id}:",
        *_doc(s, "    "),
        *_comment(s, "    "),
        f"    SCALE = {lit(k['k'], s)}",
        "",
        "    def __init__(self, v):",
        "        self.v = v",
        "",
    ]
    if v == "property":
        lines += [
            "    @property",
            "    def twice(self):",
            f"        return self.v * {lit(k['k2'], s)}",
            "",
            "    def value(self):",
            f"        return self.twice + self.SCALE{extra}",
        ]
    elif v == "static":
        lines += [
            "    @staticmethod",
            "    def bump(x):",
            f"        return x + {lit(k['k2'], s)}",
            "",
            "    def value(self):",
            f"        return self.bump(self.v) * self.SCALE{extra}",
        ]
    else:
        lines += [
            "    def value(self):",
            f"        return {par('self.v * self.SCALE', s)} + {lit(k['k2'], s)}{extra}",
        ]
    return lines


def _instance(scope: Scope, item: Item) -> list[str]:
    s = item.style
    cls = scope.name(item.refs[0])
    return [*_comment(s, ""), f"{item.id} = {call(cls, [lit(item.knobs['k'], s)], s, '')}"]


def _table(scope: Scope, item: Item) -> list[str]:
    s = item.style
    funcs = [scope.name(r) for r in item.refs]
    extra = f"lambda x: x + {lit(item.knobs['k'], s)}"
    if item.variant == "list":
        body = "[" + ", ".join([*funcs, extra]) + "]"
    else:
        keys = "abcdefgh"
        entries = [f"'{keys[i]}': {f}" for i, f in enumerate(funcs)] + [f"'z': {extra}"]
        body = "{" + ", ".join(entries) + "}"
    return [*_comment(s, ""), f"{item.id} = {body}"]


def _subreactor(scope: Scope, item: Item) -> list[str]:
    s, k = item.style, item.knobs
    terms = "".join(f" + mix({use_expr(scope, r)})" for r in item.refs)
    reads = "".join(f" + mix(pipe.read_config({p!r}))" for p in item.reads)
    return [
        "@SubreactorFunc",
        f"def {item.id}(pipe, x):",
        *_doc(s, "    "),
        *_comment(s, "    "),
        f"    return x + {lit(k['k'], s)}{terms}{reads}",
    ]


def _arrsub(scope: Scope, item: Item) -> list[str]:
    s, k = item.style, item.knobs
    return [
        f"class {item.id}(np.ndarray):",
        *_doc(s, "    "),
        *_comment(s, "    "),
        f"    tag = {lit(k['k'], s)}",
        "",
        "    def __array_finalize__(self, obj):",
        f"        self.label = getattr(obj, 'label', {lit(k['k2'], s)})",
    ]


def _post(scope: Scope, item: Item) -> list[str]:
    """A statement after a definition that changes what it holds."""
    s, value, v = item.style, lit(item.knobs["k"], item.style), item.variant
    target_item = scope.project.item(item.target)
    assert target_item is not None
    if target_item.module == scope.module:
        name = item.target
    else:  # another module's definition, patched from here
        name = f"{scope.module_ref(target_item.module)}.{item.target}"
    statement = {
        "rebind": f"{name} = {value}",
        "aug": f"{name} += {value}",
        "setitem": f"{name}['z'] = {value}",
        "append": f"{name}.append({value})",
        "setattr": f"{name}.SCALE = {value}",
        "defaults": f"{name}.__defaults__ = ({value},)",
        "kwdefaults": f"{name}.__kwdefaults__ = {{'d': {value}}}",
        "attr": f"{name}.v = {value}",
        "table": f"{name}[{'0' if target_item.variant == 'list' else repr('a')}] = "
        + (scope.name(item.refs[0]) if item.refs else f"lambda x: x * {value}"),
    }[v]
    return [*_comment(s, ""), statement]


def _config(scope: Scope, item: Item) -> list[str]:
    s, k = item.style, item.knobs
    if item.variant == "dict":
        return [
            *_comment(s, ""),
            f"CONFIG = {{'alpha': {lit(k['alpha'], s)}, 'beta': [{lit(k['beta'], s)}, 2], "
            f"'gamma': 'g{k['gamma']}'}}",
        ]
    return [
        "class Settings(ConfigBase):",
        *_doc(s, "    "),
        *_comment(s, "    "),
        "    def __init__(self):",
        "        super().__init__()",
        f"        self.alpha = {lit(k['alpha'], s)}",
        f"        self.beta = [{lit(k['beta'], s)}, 2]",
        f"        self.gamma = 'g{k['gamma']}'",
        "",
        "    @property",
        "    def area(self):",
        f"        return self.alpha * {lit(k['prop'], s)} + len(self.beta)",
        "",
        "",
        "CONFIG = Settings()",
    ]


def value_expr(scope: Scope, out: Output, knob: int, style: Style) -> str:
    k = lit(knob, style)
    ref = scope.name(out.ref) if out.ref else ""
    return {
        "int": f"acc * {k} % 1000",
        "float": f"acc / {k}",
        "str": f"'s' + str(acc + {k})",
        "bytes": f"bytes([acc % 256, {k} % 256])",
        "list": f"[acc, {k}, [acc % 7]]",
        "dict": f"{{'acc': acc, 'k': {k}}}",
        "tuple": f"(acc, {k})",
        "nested": f"{{'t': (acc, [{k}]), 'l': [{{'x': acc}}], 'n': None}}",
        "frozenset": f"frozenset({{acc, {k}}})",
        "ndarray": f"np.arange(3) * acc + {k}",
        "farray": f"np.linspace(0, acc, 4) / {k}",
        "array2d": f"np.arange(6).reshape(2, 3) * acc + {k}",
        "npscalar": f"np.int64(acc * {k})",
        "masked": f"np.ma.masked_array(np.arange(3) * acc + {k}, mask=[0, 1, 0])",
        "arrsub": f"(np.arange(3) * acc + {k}).view({ref})",
        "instance": f"{ref}(acc + {k})",
        "function": ref,
    }[out.kind]


def _reactor(scope: Scope, item: Item) -> list[str]:
    s, k, v = item.style, item.knobs, item.variant
    ind = "        " if v == "factory" else "    "
    params = "pipe, config" + (f", k={lit(k['k'], s)}" if v == "default" else "")
    base = "k" if v in ("factory", "default") else lit(k["k"], s)
    outer = scope
    if "local_import" in item.flags:  # the user's names imported inside the function
        scope = Scope(outer.project, outer.module, local=True)
    body: list[str] = []
    args = []
    for name in item.inputs:
        body.append(f"{ind}a_{name} = yield pipe.receive({name!r})")
        args.append(f"{name}=a_{name}")
    body.append(f"{ind}note({item.id!r}{''.join(', ' + a for a in args)})")
    body.append(f"{ind}acc = mix({', '.join([base, *(f'a_{n}' for n in item.inputs)])})")
    for ref in item.refs:
        body.append(f"{ind}acc += mix({use_expr(scope, ref)})")
    for read in item.reads:
        expr = f"config.{read[4:]}" if read.startswith("cfg.") else f"pipe.read_config({read!r})"
        body.append(f"{ind}acc += mix({expr})")
    for path in item.files:
        body.append(f"{ind}acc += mix(open(pipe.track_file({path!r})).read())")
    for n, sub in enumerate(item.subs):
        body.append(f"{ind}s{n} = yield from {scope.name(sub)}(pipe, acc)")
        body.append(f"{ind}acc = ({par(f'acc + s{n}', s)}) % 1000")
    for flag in item.flags:
        if flag.startswith("mutate_input:"):
            name = flag.split(":", 1)[1]
            body.append(f"{ind}a_{name}.append(acc) if isinstance(a_{name}, list) else None")
    for n, out in enumerate(item.outputs):
        body.append(f"{ind}o{n} = {value_expr(scope, out, k[f'o{n}'], s)}")
        body.append(f"{ind}pipe.send({out.name!r}, o{n})")
        if f"mutate_sent:{out.name}" in item.flags:
            body.append(f"{ind}o{n}.append(-1) if isinstance(o{n}, list) else None")
    local = [f"{ind}{line}" for line in scope.imports] if scope is not outer else []
    body = [*_doc(s, ind), *_comment(s, ind), *local, *body]
    if v == "factory":
        return [
            f"def make_{item.name}(k):",
            f"    def {item.name}({params}):",
            *body,
            "",
            f"    return {item.name}",
            "",
            "",
            f"{item.name} = ReactorFunc(make_{item.name}({lit(k['k'], s)}))",
        ]
    return ["@ReactorFunc", f"def {item.name}({params}):", *body]


def _collector(scope: Scope, item: Item) -> list[str]:
    names = ", ".join(repr(n) for n in item.inputs)
    return [
        "@ReactorFunc",
        f"def {item.id}(pipe):",
        "    values = {}",
        f"    for name in ({names}{',' if len(item.inputs) == 1 else ''}):",
        "        values[name] = yield pipe.receive(name)",
        f"    note({item.id!r})",
        f"    pipe.send({SERVED!r}, serve(values))",
    ]


_RENDERERS: dict[str, Any] = {
    "const_int": _const,
    "const_expr": _const,
    "const_container": _const,
    "const_array": _const,
    "func": _func,
    "factory": _factory,
    "class": _class,
    "instance": _instance,
    "table": _table,
    "subreactor": _subreactor,
    "arrsub": _arrsub,
    "post": _post,
    "config": _config,
    "reactor": _reactor,
    "collector": _collector,
}

HEADER = [
    "import dataclasses",
    "import functools",
    "",
    "import numpy as np",
    "from pyplantd import ConfigBase, Plant, ReactorFunc, SubreactorFunc",
    f"from {RUNTIME_MODULE} import mix, note, plant_dir, serve",
]


def render_module(project: Project, module: str) -> str:
    scope = Scope(project, module)
    items = [i for i in project.items if i.module == module]
    ordered = [i for i in items if i.kind != "post"] + [i for i in items if i.kind == "post"]
    body: list[str] = []
    if any(i.kind == "func" and i.variant == "wrapped" for i in items):
        name = f"{module.replace('.', '_')}_traced"
        body += [
            "", "", f"def {name}(fn):", "    @functools.wraps(fn)", "    def wrapper(x):",
            "        return fn(x)", "", "    return wrapper",
        ]  # fmt: skip
    for item in ordered:
        body += ["", "", *render_item(scope, item)]
    if module == PIPELINE:
        for other in project.modules:  # every module is imported, so the daemon watches it
            if other != PIPELINE and not any(
                line.split()[1] == other for line in scope.imports if line.startswith("import ")
            ):
                scope._need(f"import {other}  # noqa: F401")
        config = project.config()
        body += [
            "",
            "",
            "if __name__ == '__main__':",
            "    with Plant(plant_dir(), function_hash=lambda func: 'same') as plant:"
            if project.sabotage
            else "    with Plant(plant_dir()) as plant:",
            "        plant.set_config(CONFIG)" if config else "",
            f"        plant.run_reactor({COLLECTOR})",
        ]
    style = project.module_style.get(module, Style())
    head = [f'"""{style.doc}"""', ""] if style.doc else []
    head += [f"# {style.comment}"] if style.comment else []
    user_imports = sorted(scope.imports, key=lambda line: (not line.startswith("import "), line))
    text = "\n".join([*head, *HEADER, *user_imports, *body]) + "\n"
    if project.broken == module:
        text += "\n\ndef half_typed(:\n"
    return text


def render(project: Project) -> dict[str, str]:
    """Every file of the project: path -> text (modules, package markers, data files)."""
    files: dict[str, str] = {}
    for module in project.modules:
        files[module_path(module, project.modules)] = render_module(project, module)
    for module in project.modules:  # packages nobody defines anything in still need a marker
        for parent in ancestors(module):
            files.setdefault(module_path(parent, project.modules), "")
    for name, number in project.files.items():
        files[name] = f"{number}\n"
    return files
