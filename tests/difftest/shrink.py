"""Shrinking a failing sequence to a minimal project: greedily drop edits, reactors, definitions,
uses, reads, files and modules while the same kind of failure persists; and printing a sequence
as files plus the diff of each edit.
"""

from __future__ import annotations

import dataclasses
import difflib
import time
from collections.abc import Callable
from functools import partial

from .edits import apply_edit
from .model import COLLECTOR, PIPELINE, Item, Project
from .render import render
from .sequence import Outcome, Sequence


def without_reactor(project: Project, reactor_id: str) -> Project:
    new = project.copy()
    reactor = new.item(reactor_id)
    assert reactor is not None
    gone = {o.name for o in reactor.outputs}
    new.items = [i for i in new.items if i.id != reactor_id]
    for item in new.reactors():
        item.inputs = [n for n in item.inputs if n not in gone]
        item.flags = [f for f in item.flags if f.split(":", 1)[-1] not in gone]
    return new


def referenced(project: Project) -> set[str]:
    found = set()
    for item in project.items:
        if item.kind != "post":
            found.update(item.all_refs())
    return found


def without_item(project: Project, item_id: str) -> Project | None:
    """The project without a definition nothing references (and the statements after it)."""
    if item_id in referenced(project):
        return None
    new = project.copy()
    new.items = [i for i in new.items if i.id != item_id and i.target != item_id]
    return new


def candidates(project: Project) -> list[tuple[str, Callable[[], Project | None]]]:
    """Smaller projects to try, largest cuts first."""
    found: list[tuple[str, Callable[[], Project | None]]] = []
    for reactor in project.reactors():
        if reactor.id != COLLECTOR:
            found.append(
                (f"drop reactor {reactor.id}", partial(without_reactor, project, reactor.id))
            )
    for item in project.items:
        if item.kind not in ("reactor", "collector", "config"):
            found.append((f"drop {item.id}", partial(without_item, project, item.id)))
    for item in project.items:
        for field_name in ("refs", "subs", "reads", "files", "inputs", "flags", "outputs"):
            values = getattr(item, field_name)
            minimum = (
                1 if field_name == "outputs" or (field_name == "refs" and _needs_ref(item)) else 0
            )
            if item.kind == "collector" or len(values) <= minimum:
                continue
            for index in range(len(values)):
                drop = partial(_drop_field, project, item.id, field_name, index)
                found.append((f"drop {field_name}[{index}] of {item.id}", drop))
    for item in project.items:  # simpler spellings of the same thing
        if item.kind == "reactor" and item.variant != "plain":
            found.append((f"plain {item.id}", partial(_set_variant, project, item.id, "plain")))
    config = project.config()
    if config.variant == "class" and not any(
        r.startswith("cfg.") for item in project.items for r in item.reads
    ):
        found.append(("dict config", partial(_set_variant, project, config.id, "dict")))
    for module in project.modules:
        if module != PIPELINE and not any(i.module == module for i in project.items):
            found.append((f"drop module {module}", partial(_drop_module, project, module)))
    for name in project.files:
        if not any(name in r.files for r in project.reactors()):
            found.append((f"drop file {name}", partial(_drop_file, project, name)))
    return found


def _needs_ref(item: Item) -> bool:
    return item.kind in ("const_expr", "instance", "table") or (
        item.kind == "class" and item.variant == "derived"
    )


def _drop_field(project: Project, item_id: str, field_name: str, index: int) -> Project | None:
    new = project.copy()
    item = new.item(item_id)
    assert item is not None
    values = getattr(item, field_name)
    dropped = values.pop(index)
    if field_name == "outputs":
        for other in new.reactors():
            other.inputs = [n for n in other.inputs if n != dropped.name]
        return new
    if field_name == "refs" and item.kind == "class" and item.variant == "derived" and index == 0:
        return None
    return new


def _set_variant(project: Project, item_id: str, variant: str) -> Project:
    new = project.copy()
    item = new.item(item_id)
    assert item is not None
    item.variant = variant
    return new


def _drop_module(project: Project, module: str) -> Project:
    new = project.copy()
    new.modules = [m for m in new.modules if m != module]
    return new


def _drop_file(project: Project, name: str) -> Project:
    new = project.copy()
    del new.files[name]
    return new


def shrink(
    outcome: Outcome,
    replay: Callable[[Sequence], Outcome],
    budget_seconds: float = 300.0,
    log: Callable[[str], None] = lambda line: None,
) -> Outcome:
    """The smallest sequence found that still fails the same way."""
    failing = outcome.failure
    assert failing is not None
    kind = failing.failure
    deadline = time.monotonic() + budget_seconds
    best = outcome
    sequence = outcome.sequence
    # Only the edits up to the failing one matter.
    applied = [s.edit for s in outcome.steps if s.edit is not None]
    sequence = dataclasses.replace(sequence, edits=applied)

    root = failing.roots[0].split()[0] if failing.roots else None

    def fails(candidate: Sequence) -> Outcome | None:
        result = replay(candidate)
        step = result.failure
        if step is None or step.failure != kind:
            return None
        if root is not None and root not in [r.split()[0] for r in step.roots]:
            return None  # another stale value: maybe another cause
        return result

    improved = True
    while improved and time.monotonic() < deadline:
        improved = False
        for index in range(len(sequence.edits) - 1):  # the last edit is the failing one
            edits = sequence.edits[:index] + sequence.edits[index + 1 :]
            trial = dataclasses.replace(sequence, edits=edits)
            result = fails(trial)
            if result is not None:
                log(f"  dropped edit {index}: {sequence.edits[index].description}")
                sequence, best, improved = trial, result, True
                break
            if time.monotonic() > deadline:
                break
        if improved:
            continue
        for label, make in candidates(sequence.project):
            if time.monotonic() > deadline:
                break
            smaller = make()
            if smaller is None or not _edits_apply(smaller, sequence):
                continue
            trial = dataclasses.replace(sequence, project=smaller)
            result = fails(trial)
            if result is not None:
                log(f"  {label}")
                sequence, best, improved = trial, result, True
                break
    return best


def _edits_apply(project: Project, sequence: Sequence) -> bool:
    state: Project | None = project
    for edit in sequence.edits:
        assert state is not None
        state = apply_edit(state, edit)
        if state is None:
            return False
    return True


def describe(outcome: Outcome) -> str:
    """The project's files, then each edit as a diff, then what failed."""
    sequence = outcome.sequence
    files = render(sequence.project)
    lines = [f"# sequence {sequence.key} ({', '.join(sequence.flavours)})"]
    for name, text in sorted(files.items()):
        lines += [f"--- {name}", text.rstrip("\n")]
    state = sequence.project
    for step in outcome.steps:
        if step.edit is None:
            lines.append(f"### step 0: first run {'-> ' + step.failure if step.failure else 'ok'}")
        else:
            after = apply_edit(state, step.edit)
            assert after is not None
            new_files = render(after)
            lines.append(f"### step {step.index}: {step.label()}")
            for name in sorted(new_files):
                if files.get(name) != new_files[name]:
                    lines += difflib.unified_diff(
                        files.get(name, "").splitlines(), new_files[name].splitlines(),
                        name, name, n=1, lineterm="",
                    )  # fmt: skip
            files, state = new_files, after
        if step.failure:
            lines += [f"=> {step.failure}:", step.detail]
        elif step.over:
            lines.append(f"=> over-run: {', '.join(step.over)} (required: {step.required})")
    return "\n".join(lines)
