"""Random edits of a project model: 70 % change a value somewhere (a literal in any definition, a
reference, a statement after a definition, a data file, a config value; some keep the file's
size and mtime), 30 % must change nothing (comments, docstrings, formatting).

An edit names what it changes by id, so it still applies to a shrunk project, or says it no
longer can (`apply_edit` returns None).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .generator import CONFIG_PARAMS, knob
from .model import (
    FUNCTION_KINDS,
    INT_KINDS,
    PIPELINE,
    USE_KINDS,
    Item,
    Project,
    Style,
    may_reference,
    module_path,
)
from .render import render

WORDS = ["tidy", "note", "why not", "see issue", "TODO later", "keep", "faster", "as before"]
POST_VARIANTS = {  # definition kind (and variant) -> statements after it that change its value
    "const_int": ["rebind", "aug"],
    "const_expr": ["rebind", "aug"],
    "const_container:list": ["append"],
    "const_container:comp": ["append"],
    "const_container:dict": ["setitem"],
    "const_container:dictcomp": ["setitem"],
    "const_container:nested": ["setitem"],
    "class": ["setattr"],
    "func:default": ["defaults"],
    "func:kwonly": ["kwdefaults"],
    "instance": ["attr"],
    "table": ["table"],
}


@dataclass
class Edit:
    op: str  # knob / ref / post / file / rename / break / comment / doc / fmt / module_...
    target: str  # item id, module or data file
    key: str = ""  # knob name, ref index, style field
    value: int | str = 0
    post: Item | None = None
    save: str = "inplace"  # inplace / atomic
    keep_stat: bool = False  # restore size and mtime after writing (when the size is equal)
    noop: bool = False  # must change nothing that runs
    undo: bool = False  # back to an earlier value: its earlier results may be restored
    description: str = ""
    files: list[str] = field(default_factory=list)  # filled in when applied


def apply_edit(project: Project, edit: Edit) -> Project | None:
    """The project after `edit`, or None if what it edits is gone (a shrunk project)."""
    new = project.copy()
    new.broken = ""  # every edit after a broken save fixes it
    if edit.op == "break":
        if edit.target not in new.modules:
            return None
        new.broken = edit.target
        return new
    if edit.op == "file":
        if edit.target not in new.files:
            return None
        new.files[edit.target] = int(edit.value)
        return new
    if edit.op in ("module_comment", "module_doc"):
        if edit.target not in new.modules:
            return None
        style = new.module_style.setdefault(edit.target, Style())
        setattr(style, "comment" if edit.op == "module_comment" else "doc", str(edit.value))
        return new
    if edit.op == "post":
        assert edit.post is not None
        post = edit.post
        if new.item(post.target) is None or post.module not in new.modules:
            return None
        if any(new.item(r) is None for r in post.refs):
            return None
        new.items.append(Item(**{**post.__dict__, "style": Style(**post.style.__dict__)}))
        return new
    item = new.item(edit.target)
    if item is None:
        return None
    if edit.op == "knob":
        if edit.key not in item.knobs:
            return None
        item.knobs[edit.key] = int(edit.value)
    elif edit.op == "ref":
        index = int(edit.key)
        if index >= len(item.refs) or new.item(str(edit.value)) is None:
            return None
        item.refs[index] = str(edit.value)
    elif edit.op == "rename":
        item.renamed = str(edit.value)
    elif edit.op in ("comment", "doc"):
        setattr(item.style, edit.op, str(edit.value))
    elif edit.op == "fmt":
        item.style.fmt = int(edit.value)
    return new


def changed_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(p for p in after if before.get(p) != after[p])


class EditMaker:
    """Draws edits that apply to the current project and change at least one file's bytes."""

    def __init__(
        self, rng: random.Random, first_id: int, exclude: frozenset[str] = frozenset()
    ) -> None:
        self.rng = rng
        self.next_id = first_id
        # edit ops (`post`, `ref`, `rename`, `undo`, `break`...), post variants (`defaults`...),
        # `keep_stat` (rewrites keeping size and mtime), `prop` (config property code)
        self.exclude = exclude
        self.history: list[tuple[str, str, int]] = []  # knob edits: (target, knob, old value)

    def edit(self, project: Project) -> tuple[Edit, Project]:
        before = render(project)
        for _ in range(200):
            draw = self._value_edit if self.rng.random() < 0.7 else self._noop_edit
            edit = draw(project)
            if edit is None:
                continue
            after_project = apply_edit(project, edit)
            if after_project is None:
                continue
            after = render(after_project)
            files = changed_files(before, after)
            if not files:
                continue
            edit.files = files
            edit.save = self.rng.choice(["inplace", "atomic"])
            if edit.op == "knob":
                item = project.item(edit.target)
                assert item is not None
                self.history.append((edit.target, edit.key, item.knobs[edit.key]))
            sizes_equal = all(len(before.get(f, "")) == len(after[f]) for f in files)
            if not edit.noop and sizes_equal and len(files) == 1:
                edit.keep_stat = self.rng.random() < 0.6 and "keep_stat" not in self.exclude
            return edit, after_project
        raise RuntimeError("no applicable edit found")  # cannot happen: knobs always exist

    # -- edits that change a value ----------------------------------------------------------
    def _value_edit(self, project: Project) -> Edit | None:
        weights = {
            "knob": 10, "ref": 2, "post": 3, "post_knob": 1, "file": 1, "config": 2, "rename": 1,
            "undo": 2, "break": 1,
        }  # fmt: skip
        ops = [op for op in weights if op not in self.exclude]
        choice = self.rng.choices(ops, weights=[weights[op] for op in ops])[0]
        return getattr(self, f"_{choice}")(project)

    def _new_number(self, old: int) -> int:
        if self.rng.random() < 0.5:  # same number of digits: the file keeps its size
            return self.rng.choice([n for n in range(10, 100) if n != old])
        return self.rng.choice([n for n in (2, 3, 5, 7, 100, 123, 1000) if n != old])

    def _knob(self, project: Project) -> Edit | None:
        items = [i for i in project.items if i.knobs and i.kind not in ("post", "config")]
        if not items:
            return None
        item = self.rng.choice(items)
        key = self.rng.choice(sorted(item.knobs))
        value = self._new_number(item.knobs[key])
        where = module_path(item.module, project.modules)
        text = f"{item.kind} {item.id} ({item.variant or '-'}) in {where}: {key} "
        return Edit("knob", item.id, key, value, description=text + f"{item.knobs[key]} -> {value}")

    def _config(self, project: Project) -> Edit | None:
        config = project.config()
        keys = [*CONFIG_PARAMS, "prop"] if config.variant == "class" else CONFIG_PARAMS
        key = self.rng.choice([k for k in keys if k not in self.exclude])
        value = self._new_number(config.knobs[key])
        text = f"config ({config.variant}) {key}: {config.knobs[key]} -> {value}"
        return Edit("knob", config.id, key, value, description=text)

    def _post_knob(self, project: Project) -> Edit | None:
        posts = [i for i in project.items if i.kind == "post"]
        if not posts:
            return None
        post = self.rng.choice(posts)
        value = self._new_number(post.knobs["k"])
        text = f"statement after {post.target} ({post.variant}) in {post.module}: "
        return Edit("knob", post.id, "k", value, description=text + f"{post.knobs['k']} -> {value}")

    def _ref(self, project: Project) -> Edit | None:
        candidates = []
        for item in project.items:
            for index, ref in enumerate(item.refs):
                role = role_of(item, index)
                options = [o for o in _visible(project, item, role) if o not in (ref, item.id)]
                if options and item.kind != "post":
                    candidates.append((item, index, options))
        if not candidates:
            return None
        item, index, options = self.rng.choice(candidates)
        new = self.rng.choice(options)
        text = f"{item.kind} {item.id} in {item.module}: use {new} instead of {item.refs[index]}"
        return Edit("ref", item.id, str(index), new, description=text)

    def _post(self, project: Project) -> Edit | None:
        options = []
        for item in project.items:
            for key in (f"{item.kind}:{item.variant}", item.kind):
                for variant in POST_VARIANTS.get(key, []):
                    if variant not in self.exclude:
                        options.append((item, variant))
        if not options:
            return None
        target, variant = self.rng.choice(options)
        module = target.module
        later = [
            m
            for m in project.modules
            if m != target.module and may_reference(m, module, project.modules)
        ]
        if variant in ("rebind", "setattr", "attr") and later and self.rng.random() < 0.3:
            module = self.rng.choice(later)  # patched from another module
        refs: list[str] = []
        if variant == "table" and self.rng.random() < 0.5:
            funcs = [  # not one that calls the table: it would call itself
                f
                for f in _visible_in(project, module, FUNCTION_KINDS)
                if f not in target.refs and target.id not in _closure(project, f)
            ]
            refs = [self.rng.choice(funcs)] if funcs else []
        post = Item(f"post{self.next_id}", "post", module, variant, {"k": knob(self.rng)}, refs)
        post.target = target.id
        self.next_id += 1
        text = f"statement after {target.kind} {target.id}: {variant} in {module}"
        return Edit("post", target.id, post=post, description=text)

    def _break(self, project: Project) -> Edit | None:
        """A save with a syntax error (a half-typed line); the next edit fixes it."""
        if project.broken:
            return None
        module = self.rng.choice(project.modules)
        return Edit("break", module, description=f"syntax error saved in {module}")

    def _undo(self, project: Project) -> Edit | None:
        """An earlier literal edit reverted: the earlier result may be restored, not re-run."""
        options = []
        for target, key, old in self.history:
            item = project.item(target)
            if item is not None and item.knobs.get(key, old) != old:
                options.append((item, key, old))
        if not options:
            return None
        item, key, old = self.rng.choice(options)
        text = f"undo: {item.kind} {item.id} in {item.module}: {key} {item.knobs[key]} -> {old}"
        return Edit("knob", item.id, key, old, undo=True, description=text)

    def _rename(self, project: Project) -> Edit | None:
        """A reactor renamed: the old name must never run or feed a result again."""
        reactors = [r for r in project.reactors() if r.kind == "reactor"]
        if not reactors:
            return None
        reactor = self.rng.choice(reactors)
        name = f"{reactor.id}_v{self.rng.randint(2, 9)}"
        if name == reactor.name:
            return None
        text = f"reactor {reactor.name} in {reactor.module} renamed {name}"
        return Edit("rename", reactor.id, value=name, description=text)

    def _file(self, project: Project) -> Edit | None:
        tracked = sorted({f for r in project.reactors() for f in r.files})
        if not tracked:  # a file no reactor reads is no input: nobody watches it
            return None
        name = self.rng.choice(tracked)
        value = self._new_number(project.files[name])
        return Edit("file", name, value=value, description=f"data file {name}: -> {value}")

    # -- edits that must change nothing -----------------------------------------------------
    def _noop_edit(self, project: Project) -> Edit | None:
        rng = self.rng
        op = rng.choice(["comment", "doc", "fmt", "fmt", "module_comment", "module_doc"])
        if op.startswith("module"):
            module = rng.choice(project.modules)
            style = project.module_style.get(module, Style())
            old = style.comment if op == "module_comment" else style.doc
            text = "" if old and rng.random() < 0.3 else rng.choice(WORDS)
            return Edit(op, module, value=text, noop=True, description=f"{op} in {module}")
        items = [i for i in project.items if i.kind != "collector"]
        item = rng.choice(items)
        if op == "doc" and item.kind in ("instance", "table", "post"):
            return None
        if op == "fmt":
            value: int | str = item.style.fmt ^ (1 << rng.randint(0, 3))
        else:
            old = getattr(item.style, op)
            value = (
                "" if old and rng.random() < 0.3 else rng.choice(WORDS) + f" {rng.randint(1, 9)}"
            )
        where = module_path(item.module, project.modules)
        text = f"{op} of {item.kind} {item.id} in {where}"
        return Edit(op, item.id, op, value, noop=True, description=text)


def role_of(item: Item, index: int) -> tuple[str, ...]:
    """Which kinds of definition reference `index` of `item` may point to."""
    if item.kind == "table" or item.kind == "post":
        return FUNCTION_KINDS
    if item.kind == "instance" or (
        item.kind == "class" and item.variant == "derived" and index == 0
    ):
        return ("class",)
    if item.kind in ("const_expr", "const_array"):
        return INT_KINDS
    return USE_KINDS


def _visible_in(
    project: Project, module: str, kinds: tuple[str, ...], before: str = ""
) -> list[str]:
    found = []
    for item in project.items:
        if item.id == before:
            break
        if item.kind in kinds and may_reference(module, item.module, project.modules):
            found.append(item.id)
    return found


def _visible(project: Project, item: Item, kinds: tuple[str, ...]) -> list[str]:
    """Definitions `item` may reference: earlier in its module, or in a module imported first."""
    found = _visible_in(project, item.module, kinds, before=item.id)
    # nothing that reaches `item` (a statement after a table can point back): no recursion
    return [f for f in found if item.id not in _closure(project, f)]


def _closure(project: Project, item_id: str) -> set[str]:
    """The item and everything it references, transitively."""
    posts: dict[str, list[str]] = {}
    for post in project.items:
        if post.kind == "post":
            posts.setdefault(post.target, []).extend(post.refs)
    seen: set[str] = set()
    todo = [item_id]
    while todo:
        current = project.item(todo.pop())
        if current is None or current.id in seen:
            continue
        seen.add(current.id)
        todo.extend(current.all_refs())
        todo.extend(posts.get(current.id, []))
    return seen


def make_edits(
    project: Project, seed: int, count: int, first_id: int, exclude: frozenset[str] = frozenset()
) -> list[Edit]:
    rng = random.Random(seed)
    maker = EditMaker(rng, first_id, exclude)
    edits = []
    for _ in range(count):
        edit, project = maker.edit(project)
        edits.append(edit)
    return edits


__all__ = ["PIPELINE", "Edit", "EditMaker", "apply_edit", "make_edits", "role_of"]
