"""A sequence (a seeded project and its edits) and what running it gave: steps, failures.

Depends on the generator and the edits; nothing here runs anything.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from .edits import Edit, make_edits
from .generator import generate, new_id_counter
from .model import Project


# -- sequences ----------------------------------------------------------------------------------
@dataclass
class Sequence:
    seed: int
    mode: str  # oneshot / daemon
    project: Project
    edits: list[Edit]
    flavours: list[str]  # oneshot: python / cli per step; daemon: [native] or [poll]
    exclude: frozenset[str] = frozenset()
    bytecode: bool = True  # False: no __pycache__ is read or written (to tell its part apart)

    @property
    def key(self) -> str:
        return f"{self.mode}:{self.seed}"

    def replay_command(self) -> str:
        without = f" --exclude {','.join(sorted(self.exclude))}" if self.exclude else ""
        edits = f" --edits {len(self.edits)}"
        pyc = "" if self.bytecode else " --no-bytecode"
        return f"python bench/differential.py --replay {self.key}{edits}{without}{pyc}"


def make_sequence(
    seed: int, mode: str, edits: int | None = None, exclude: frozenset[str] = frozenset()
) -> Sequence:
    """The sequence a seed stands for; `exclude` leaves features out (see Generator)."""
    rng = random.Random(seed * 7919 + (1 if mode == "daemon" else 0))
    project = generate(seed, exclude)
    count = edits if edits is not None else rng.randint(3, 7)
    first = new_id_counter(project)
    edit_list = make_edits(project, rng.randrange(1 << 30), count, first, exclude)
    if mode == "oneshot":
        flavours = [rng.choice(["python", "cli"]) for _ in range(count + 1)]
    else:
        flavours = ["poll" if rng.random() < 0.2 else "native"]
    return Sequence(seed, mode, project, edit_list, flavours, exclude)


# -- results ------------------------------------------------------------------------------------
@dataclass
class Step:
    index: int
    edit: Edit | None  # None: the first run
    failure: str = ""  # stale / semantic / error / no-run / crash / side-effect / invalid
    detail: str = ""
    ran: list[str] = field(default_factory=list)
    required: list[str] = field(default_factory=list)
    over: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    why: str = ""
    bytecode_hazard: bool = False  # a module rewritten keeping its size and mtime second
    roots: list[str] = field(default_factory=list)  # stale ingredients whose inputs were right

    def label(self) -> str:
        if self.edit is None:
            return "first run"
        flags = [self.edit.save]
        if self.edit.keep_stat:
            flags.append("size+mtime kept")
        if self.bytecode_hazard:
            flags.append("same size, same mtime second")
        return f"{self.edit.description} [{', '.join(flags)}]"


@dataclass
class Outcome:
    sequence: Sequence
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0
    extra_runs: int = 0  # daemon runs nobody asked for
    stat_only: bool = False  # the failure goes away when the edit does not keep size+mtime
    bytecode_only: bool = False  # ... and when __pycache__ is not used
    unreproduced: bool = False  # a daemon failure that two replays did not show again

    @property
    def failure(self) -> Step | None:
        return next((s for s in self.steps if s.failure), None)

    def signature(self) -> str:
        """A failure key: what failed, where, on which kind of edit (see diagnose.classify for
        the class it belongs to)."""
        step = self.failure
        if step is None:
            return ""
        return failure_signature(self.sequence, step, self.bytecode_only)

    def failure_class(self) -> str:
        from .diagnose import classify

        return classify(self)


def failure_signature(sequence: Sequence, step: Step, bytecode_only: bool = False) -> str:
    edit = step.edit
    if edit is None:
        root = " <" + step.roots[0].split(" (", 1)[1].rstrip(")") + ">" if step.roots else ""
        return f"{step.failure}:{sequence.mode}:first-run{root}"
    project = sequence.project
    target = project.item(edit.post.target if edit.post else edit.target)
    what = f"{target.kind}/{target.variant or '-'}" if target else edit.target.split("/")[0]
    extra = ":bytecode" if bytecode_only else (":keep-stat" if edit.keep_stat else "")
    variant = f"/{edit.post.variant}" if edit.post else ""
    root = " <" + step.roots[0].split(" (", 1)[1].rstrip(")") + ">" if step.roots else ""
    return f"{step.failure}:{sequence.mode}:{edit.op}{variant}:{what}{extra}{root}"


def stale_roots(project: Project, stale: list[str], ran: dict[str, Any]) -> list[str]:
    """Stale ingredients whose producer received only right values: where staleness starts.
    Each as `name (value kind, producer ran|cached)`; a cached producer is listed last."""
    producers = {o.name: (r, o.kind) for r in project.reactors() for o in r.outputs}
    found = []
    for name in stale:
        reactor, kind = producers[name]
        if not any(n in stale for n in reactor.inputs):
            found.append(
                f"{name} ({kind}, {reactor.id} {'ran' if reactor.id in ran else 'cached'})"
            )
    return sorted(found, key=lambda text: ("cached" in text, text))


def show(entry: list[str] | None) -> str:
    return "(missing)" if entry is None else entry[1]
