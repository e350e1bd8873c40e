"""Dry-run plans: what a run would execute and why, from the records alone, running nothing.

A plan cannot know whether an upstream re-run will produce identical data (early cutoff), so a
reactor downstream of one that runs is reported as "may run".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..signatures.value_code import ValueCode
from .judge import NEW_REACTOR, TARGET, code_signature, static_reasons
from .scheduler import Reactor, RunContext


@dataclass
class PlannedStep:
    reactor: str
    action: str  # run / may run / cached / unknown
    reasons: list[str] = field(default_factory=list)
    expected: float | None = None  # seconds, from the last real run
    reactor_id: str = ""


class Planner:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.steps: dict[str, PlannedStep] = {}
        self.durations = ctx.store.manifest.last_durations()
        self.value_code = ValueCode(ctx.signatures, ctx.track_versions)

    def plan(self, targets: list[Reactor], targets_always_run: bool = True) -> list[PlannedStep]:
        """With `targets_always_run=False` targets are judged like any other reactor (the graph's
        states: what is stale and why, nothing forced)."""
        target_ids = {t.id for t in targets} if targets_always_run else set()
        for reactor in self._upstream_first(targets):
            self._evaluate(reactor, reactor.id in target_ids)
        return list(self.steps.values())

    def _producers(self, reactor: Reactor) -> list[Reactor]:
        record = self.ctx.store.reactors.get(reactor.id)
        found = []
        for name in record.inputs if record else ():
            ingredient = self.ctx.store.ingredients.get(name)
            producer = self.ctx.reactors.get(ingredient.producer) if ingredient else None
            if producer is not None:
                found.append(producer)
        return found

    def _upstream_first(self, targets: list[Reactor]) -> list[Reactor]:
        """Post-order over recorded dependencies, iteratively (chains can be 1000s deep)."""
        order: list[Reactor] = []
        seen: set[str] = set()
        stack: list[tuple[Reactor, bool]] = [(t, False) for t in reversed(targets)]
        while stack:
            reactor, expanded = stack.pop()
            if expanded:
                order.append(reactor)
                continue
            if reactor.id in seen:
                continue
            seen.add(reactor.id)
            stack.append((reactor, True))
            stack.extend((p, False) for p in reversed(self._producers(reactor)) if p.id not in seen)
        return order

    def _evaluate(self, reactor: Reactor, is_target: bool) -> None:
        store = self.ctx.store
        record = store.reactors.get(reactor.id)
        code = code_signature(
            self.ctx.signatures, reactor.func, record.subreactors if record else []
        )
        ctx = self.ctx
        reasons = static_reasons(
            record, code, ctx.config, store, ctx.signatures, ctx.track_versions
        )
        if record is not None:
            reasons += self._input_reasons(record.inputs)
        if is_target:
            action, reasons = "run", [TARGET, *reasons]
        elif not reasons:
            action = "cached"
        else:
            action = "may run" if all(r.startswith("input") for r in reasons) else "run"
        if NEW_REACTOR in reasons:
            reasons.append("its inputs are known only once it has run")
        self.steps[reactor.id] = PlannedStep(
            reactor.name, action, reasons, self.durations.get(reactor.name), reactor.id
        )

    def _input_reasons(self, inputs: dict[str, str]) -> list[str]:
        """Inputs that will or may differ from what the reactor received: its producer re-runs,
        or already made a new version since (e.g. a run of the producer alone)."""
        reasons = []
        for name, received in inputs.items():
            ingredient = self.ctx.store.ingredients.get(name)
            producer = self.ctx.reactors.get(ingredient.producer) if ingredient else None
            upstream = self.steps.get(producer.id) if producer else None
            if ingredient is None or producer is None or upstream is None:
                reasons.append(f"input '{name}' has no known producer")
            elif upstream.action != "cached":
                verb = "runs" if upstream.action == "run" else "may run"
                reasons.append(f"input '{name}' may change ({producer.name} {verb})")
            elif self.value_code.fingerprint(ingredient) != received:
                why = self.value_code.why.get(name)  # the code the stored value names changed
                reasons.append(f"input '{name}' changed" + (f" ({why})" if why else ""))
        return reasons
