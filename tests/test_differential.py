"""The differential tester's bounded slice (tests/difftest): 100 one-shot and 20 daemon sequences
of random edits on random projects, fixed seeds. After every edit the value served (one-shot: a
run through a fork server; daemon: a real `pyplantd watch` and real saves) must equal what a fresh
run in an empty plant dir serves, and that must equal plain Python's evaluation.

A failure of a class in KNOWN (each an open engine defect, named by its rule) makes the chunk
xfail with the list of what was seen; any other class fails it with the minimal project's text
and the replay command. When a fix lands, delete its line from KNOWN: the slice then proves it.
The long run is `python bench/differential.py --oneshot 1000 --daemon 200 --jobs 2 --shrink`.
"""

from __future__ import annotations

import ast
import dataclasses
import re
import time

import pytest
from difftest.campaign import Tally, run_all, summary
from difftest.edits import Edit, apply_edit
from difftest.render import render
from difftest.sequence import Outcome, Sequence, Step, make_sequence
from difftest.shrink import describe, shrink

ONESHOT_SEEDS = range(0, 100)
DAEMON_SEEDS = range(0, 20)
CHUNK = 25  # one-shot sequences per test (15-40 s on 2 busy cores)
DAEMON_CHUNK = 10  # daemon sequences per test (20-60 s)
# Time bounds: a loaded machine runs fewer sequences (the test says how many) rather than time
# out; 4 x 40 + 2 x 60 s keep the slice near three minutes.
SECONDS = {"oneshot": 40, "daemon": 60}
JOBS = 2  # sequences at once: each waits on its own subprocesses most of the time

# Failure class (a regex on diagnose.classify's name) -> the engine rule that is wrong.
KNOWN = {
    r"^timing-dependent ": (
        "a daemon failure two replays did not show again (a race under load): see the report"
    ),
}


def known_rule(failure_class: str) -> str | None:
    found = (rule for pattern, rule in KNOWN.items() if re.search(pattern, failure_class))
    return next(found, None)


def judge(tally: Tally, command: str) -> None:
    report = summary(tally, command)
    print(report)
    unknown = {c: o for c, o in tally.classes.items() if known_rule(c) is None}
    if unknown:
        details = [
            f"{name}\n  replay: {outcomes[0].sequence.replay_command()} --shrink\n"
            + describe(outcomes[0])
            for name, outcomes in unknown.items()
        ]
        pytest.fail("failure classes not in KNOWN:\n\n" + "\n\n".join(details), pytrace=False)
    if tally.classes:
        known = "; ".join(f"{c} ({len(o)}): {known_rule(c)}" for c, o in tally.classes.items())
        pytest.xfail(f"known engine defects: {known}")


def run_chunk(mode: str, seeds: range, first: int, size: int) -> None:
    chosen = seeds[first : first + size]
    deadline = time.monotonic() + SECONDS[mode]
    tally = run_all([make_sequence(seed, mode) for seed in chosen], JOBS, deadline=deadline)
    ran = sum(tally.sequences.values())
    print(f"{ran} of {len(chosen)} {mode} sequences within {SECONDS[mode]} s")
    assert ran > 0, f"no {mode} sequence finished within {SECONDS[mode]} s"
    judge(tally, f"seeds {chosen.start}..{chosen.stop - 1}, {mode}")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("first", range(0, len(ONESHOT_SEEDS), CHUNK))
def test_oneshot_runs_serve_what_a_fresh_run_computes(first: int) -> None:
    run_chunk("oneshot", ONESHOT_SEEDS, first, CHUNK)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("first", range(0, len(DAEMON_SEEDS), DAEMON_CHUNK))
def test_daemon_saves_serve_what_a_fresh_run_computes(first: int) -> None:
    run_chunk("daemon", DAEMON_SEEDS, first, DAEMON_CHUNK)


# -- the tester itself ---------------------------------------------------------------------------
def test_a_seed_stands_for_one_project_and_one_edit_sequence() -> None:
    first, again = make_sequence(7, "oneshot"), make_sequence(7, "oneshot")
    assert render(first.project) == render(again.project)
    assert [e.description for e in first.edits] == [e.description for e in again.edits]
    assert render(first.project) != render(make_sequence(8, "oneshot").project)


def _code_shape(text: str) -> str:
    """The module's syntax tree without docstrings: what an edit that changes nothing keeps."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            node.body = [  # type: ignore[attr-defined]
                s
                for s in body
                if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
            ] or [ast.Pass()]
    return ast.dump(tree)


def test_edits_that_must_change_nothing_keep_the_code_and_the_others_change_it() -> None:
    checked = {True: 0, False: 0}
    for seed in range(150):
        sequence = make_sequence(seed, "oneshot")
        state = sequence.project
        for edit in sequence.edits:
            after = apply_edit(state, edit)
            assert after is not None
            before_files, after_files = render(state), render(after)
            changed = [n for n in after_files if before_files.get(n) != after_files[n]]
            assert changed, f"{sequence.key}: {edit.description} changed no file"
            if edit.op != "break" and not state.broken:
                shapes = [
                    _code_shape(before_files[n]) == _code_shape(after_files[n])
                    if n.endswith(".py")
                    else before_files[n] == after_files[n]
                    for n in changed
                ]
                assert all(shapes) == edit.noop, f"{sequence.key}: {edit.description}"
                checked[edit.noop] += 1
            state = after
    assert checked[True] > 100 and checked[False] > 300, checked


@pytest.mark.timeout(300)
def test_the_tester_catches_a_plant_that_ignores_code_changes() -> None:
    """A planted defect, through the real engine: a code hash that never changes."""
    clean = frozenset({"masked", "arrsub", "mutation", "instance", "function"})
    sequence = make_sequence(3, "oneshot", exclude=clean)  # none of the known defects
    reactor = next(r for r in sequence.project.reactors() if r.kind == "reactor")
    edit = Edit("knob", reactor.id, "k", reactor.knobs["k"] + 1, description="the reactor's k")
    sequence = dataclasses.replace(sequence, edits=[edit])
    assert not run_all([sequence]).classes  # the engine as it is: this edit re-runs the reactor
    sequence.project.sabotage = True
    tally = run_all([sequence])
    [(failure_class, [outcome])] = tally.classes.items()
    assert outcome.failure is not None and outcome.failure.failure == "stale", failure_class
    assert outcome.failure.index == 1 and "user not re-run" in failure_class


def test_shrinking_keeps_the_failing_cause_and_drops_everything_else() -> None:
    """With a stand-in for the engine: 'fails' while reactor X and the edit of K survive."""
    sequence = make_sequence(11, "oneshot")
    reactor = next(r for r in sequence.project.reactors() if r.kind == "reactor")
    edit = Edit("knob", reactor.id, "k", reactor.knobs["k"] + 1, description="the key edit")
    noise = [e for e in sequence.edits if e.op != "break"][:3]
    sequence = dataclasses.replace(sequence, edits=[*noise, edit])

    def replay(candidate: Sequence) -> Outcome:
        outcome = Outcome(candidate, [Step(0, None)])
        applied = [e for e in candidate.edits]
        for index, done in enumerate(applied, 1):
            failing = done is edit and candidate.project.item(reactor.id) is not None
            root = [f"{reactor.outputs[0].name} (int, {reactor.id} cached)"] if failing else []
            outcome.steps.append(Step(index, done, "stale" if failing else "", roots=root))
            if failing:
                break
        return outcome

    smallest = shrink(replay(sequence), replay, budget_seconds=60)
    assert [e.description for e in smallest.sequence.edits] == ["the key edit"]
    left = [i for i in smallest.sequence.project.reactors() if i.kind == "reactor"]
    assert [r.id for r in left] == [reactor.id]
