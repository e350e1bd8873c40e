"""Names the class of a failure from what the generator knows: where the stale value starts,
whether its producer ran, and how that producer reaches what the edit changed. Failures with
one cause get one name, so a long run reports a few classes instead of hundreds of seeds.
"""

from __future__ import annotations

import re
from collections import deque

from .model import Item, Project
from .sequence import Outcome, Step

ROUND_TRIP_KINDS = ("masked", "arrsub")


def path_to(project: Project, start: Item, target: str) -> list[Item] | None:
    """The definitions from `start` to `target`, following references (and statements after a
    definition, which change it); None if `start` does not reach it."""
    posts: dict[str, list[str]] = {}
    for item in project.items:
        if item.kind == "post":
            posts.setdefault(item.target, []).extend(item.refs)
    queue: deque[list[Item]] = deque([[start]])
    seen = {start.id}
    while queue:
        path = queue.popleft()
        if path[-1].id == target:
            return path
        for ref in [*path[-1].all_refs(), *posts.get(path[-1].id, [])]:
            found = project.item(ref)
            if found is not None and found.id not in seen:
                seen.add(found.id)
                queue.append([*path, found])
    return None


def classify(outcome: Outcome) -> str:
    step = outcome.failure
    if step is None:
        return ""
    if outcome.unreproduced:
        return f"timing-dependent (not seen in 2 replays): {_classify(outcome, step)}"
    return _classify(outcome, step)


def _classify(outcome: Outcome, step: Step) -> str:
    sequence = outcome.sequence
    mode = sequence.mode
    if step.failure == "semantic":
        mutating = any(f.startswith("mutate") for r in sequence.project.reactors() for f in r.flags)
        return (
            f"fresh run != plain Python ({'a received or sent list mutated' if mutating else '?'})"
        )
    if step.failure == "side-effect":
        return (
            f"side effects of a target that was restored, not run ({mode}): its inputs changed "
            "back to an earlier version"
        )
    if step.failure in ("error", "invalid", "crash"):
        return f"{step.failure} ({mode}): {error_gist(step.detail)}"
    if step.failure != "stale":
        op = step.edit.op if step.edit else "first run"
        before = outcome.steps[step.index - 1] if step.index > 0 else None
        if before is not None and before.edit is not None and before.edit.op == "break":
            where = "the pipeline" if before.edit.target == "pipeline" else "a helper module"
            return f"{step.failure} ({mode}) on the save fixing a syntax error in {where}"
        return f"{step.failure} ({mode}, {op})"
    if outcome.stat_only:
        cause = "CPython's __pycache__" if outcome.bytecode_only else "a (size, mtime) cache"
        return f"rewrite keeping size and mtime missed ({mode}): {cause}"
    return f"{_stale_class(sequence.project, step, outcome)} ({mode})"


def error_gist(detail: str) -> str:
    """The error's message without what varies between seeds (names, numbers, paths)."""
    lines = [line.strip() for line in detail.splitlines() if line.strip()]
    chosen = next((x for x in lines if x.startswith(("error:", "Error:", "✗"))), None)
    if chosen is None or re.match(r"^\w+(Error|Exception)", lines[-1] if lines else ""):
        chosen = next((x for x in reversed(lines) if re.match(r"^\w+(Error|Exception)", x)), "")
    chosen = re.sub(r"(/[^\s:'\"]+)+", "<path>", chosen)
    chosen = re.sub(r"\b(0x)?[0-9a-f]{8,}\b", "#", chosen)
    chosen = re.sub(r"(?<=[A-Za-z_])\d+", "#", chosen)
    return chosen[:160]


def _stale_class(project: Project, step: Step, outcome: Outcome) -> str:
    if not step.roots:
        return "stale"
    rest = step.roots[0].split(" (", 1)[1]
    kind, producer_state = rest.rstrip(")").split(", ")
    producer_id, state = producer_state.split()
    if kind in ROUND_TRIP_KINDS and state == "cached":
        return f"ndarray subclass ({kind}) comes back from disk as a plain ndarray"
    edit = step.edit
    if edit is None:
        return "stale at first run"
    state_project = _project_at(outcome, step)
    producer = state_project.item(producer_id)
    assert producer is not None
    if producer.renamed and outcome.sequence.mode == "daemon":
        return f"{_edit_what(state_project, edit, edit.target)}: after a rename of the producer"
    target = edit.post.target if edit.op == "post" and edit.post else edit.target
    what = _edit_what(state_project, edit, target)
    edited = state_project.item(target)
    if edited is not None and edited.kind == "post":
        target = edited.target  # what the statement changes
    if state == "ran":
        return f"{what}: its user ran but served an old value"
    if edit.op == "file":
        return f"{what}: its reader not re-run"
    item = state_project.item(target)
    if item is not None and item.kind == "config":
        return f"{what}: its reader not re-run"
    in_script = item is not None and item.kind == "class" and item.module == "pipeline"
    if in_script and outcome.sequence.mode == "daemon":
        what += " defined in the script"
    path = path_to(state_project, producer, target) if item is not None else None
    if path is None:
        received = _received_kinds(state_project, producer)
        return f"{what}: not re-run, reaches it only through a received {received} value"
    via = [f"{i.kind}/{i.variant}" if i.variant else i.kind for i in path[1:-1]]
    return f"{what}: user not re-run" + (f" (via {' -> '.join(via)})" if via else "")


def _edit_what(project: Project, edit: object, target: str) -> str:
    from .edits import Edit

    assert isinstance(edit, Edit)
    item = project.item(target)
    if edit.op == "file":
        return "tracked data file changed"
    if item is None:
        return f"{edit.op} {target}"
    described = f"{item.kind}/{item.variant}" if item.variant else item.kind
    if item.kind == "config":
        return f"config {described} {'property code' if edit.key == 'prop' else 'value'}"
    if edit.op == "post" and edit.post is not None:
        return f"statement after a {described} ({edit.post.variant})"
    if edit.op == "knob" and item.kind == "post":
        return f"statement after a definition ({item.variant}) changed"
    if edit.op == "rename":
        return f"reactor renamed ({described})"
    if edit.op == "ref":
        return f"{described} now uses another definition"
    return f"literal in {described} ({edit.key})"


def _received_kinds(project: Project, reactor: Item) -> str:
    kinds = {o.name: o.kind for r in project.reactors() for o in r.outputs}
    found = sorted({kinds[n] for n in reactor.inputs if n in kinds})
    return "/".join(found) or "no"


def _project_at(outcome: Outcome, step: Step) -> Project:
    from .edits import apply_edit

    state = outcome.sequence.project
    for done in outcome.steps:
        if done.edit is not None:
            state = apply_edit(state, done.edit) or state
        if done is step:
            break
    return state
