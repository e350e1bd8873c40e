"""Which reactors an edit requires to re-run, from the generator's knowledge of what each one
uses: the edited definition and everything that reaches it, the config parameters and data
files read. The runner adds reactors whose inputs changed (from the oracle). A reactor that runs
and is in neither set is an over-run.
"""

from __future__ import annotations

from .edits import Edit
from .model import Project

AREA_PARAMS = ("alpha", "beta")  # what Settings.area reads


def users(project: Project, changed: set[str]) -> set[str]:
    """`changed` and every item that references one of them, transitively; a statement after
    a definition changes that definition."""
    found = set(changed)
    grew = True
    while grew:
        grew = False
        for item in project.items:
            touched = item.id in found
            if not touched and any(ref in found for ref in item.all_refs()):
                found.add(item.id)
                grew = touched = True
            if touched and item.kind == "post" and item.target not in found:
                found.add(item.target)
                grew = True
    return found


def reads_of(project: Project, reactor_id: str) -> set[str]:
    """Config parameters a reactor reads, itself or through its subreactors ('area' for the
    property, which also reads alpha and beta)."""
    reactor = project.item(reactor_id)
    if reactor is None:
        return set()
    reads = list(reactor.reads)
    for sub in reactor.subs:
        item = project.item(sub)
        reads += item.reads if item else []
    params = {r.removeprefix("cfg.") for r in reads}
    if "area" in params:
        params |= set(AREA_PARAMS)
    return params


def required_by_edit(before: Project, after: Project, edit: Edit) -> set[str]:
    """Reactor ids whose code, params or files the edit changed."""
    if edit.noop:
        return set()
    reactors = [r.id for r in after.reactors()]
    if edit.op == "break":
        return set()
    if edit.op == "rename":
        return {edit.target}  # a new reactor for the engine: it runs once
    if edit.op == "file":
        return {r.id for r in after.reactors() if edit.target in r.files}
    target = edit.post.target if edit.op == "post" and edit.post else edit.target
    item = after.item(target)
    if item is not None and item.kind == "config":
        key = "area" if edit.key == "prop" else edit.key
        return {r for r in reactors if key in reads_of(after, r)}
    changed = users(after, {target}) | users(before, {target})
    return {r for r in reactors if r in changed}
