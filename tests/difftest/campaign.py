"""Many sequences: run them (in parallel, one fork server per worker), count, group failures
into classes by signature, shrink one example of each class, and write the report.
"""

from __future__ import annotations

import queue
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .runner import Executor
from .sequence import Outcome, Sequence, Step
from .shrink import describe, shrink
from .workspace import scratch_root
from .zygote import Zygote


@dataclass
class Tally:
    sequences: Counter[str] = field(default_factory=Counter)  # mode -> count
    edits: Counter[str] = field(default_factory=Counter)  # mode -> edits run
    failures: Counter[str] = field(default_factory=Counter)  # failure kind -> count
    stale_values: int = 0  # stale ingredients at the failing steps
    over_runs: Counter[str] = field(default_factory=Counter)  # edit class -> reactors over-run
    over_steps: int = 0
    late_runs: int = 0  # re-runs after a rewrite that kept size+mtime: late, not over-runs
    missed: Counter[str] = field(default_factory=Counter)  # edit class -> required, did not run
    extra_daemon_runs: int = 0
    classes: dict[str, list[Outcome]] = field(default_factory=dict)
    over_examples: dict[str, tuple[Outcome, Step]] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, outcome: Outcome) -> None:
        mode = outcome.sequence.mode
        self.sequences[mode] += 1
        self.edits[mode] += sum(1 for s in outcome.steps if s.edit is not None)
        self.extra_daemon_runs += outcome.extra_runs
        kept = False  # an earlier rewrite kept size and mtime: it may be seen only now
        for step in outcome.steps:
            if step.edit is None:
                continue
            kind = edit_class(step.edit.op, outcome, step.edit.target)
            if step.over and kept:
                self.late_runs += len(step.over)
            elif step.over:
                self.over_runs[kind] += len(step.over)
                self.over_steps += 1
                self.over_examples.setdefault(kind, (outcome, step))
            if step.missed:
                self.missed[kind] += len(step.missed)
            kept |= step.edit.keep_stat
        failing = outcome.failure
        if failing is not None:
            self.failures[failing.failure] += 1
            if failing.failure == "stale":
                self.stale_values += failing.detail.count(": served ")
            self.classes.setdefault(outcome.failure_class(), []).append(outcome)


def edit_class(op: str, outcome: Outcome, target: str) -> str:
    item = outcome.sequence.project.item(target)
    return f"{op} {item.kind}" if item is not None else op


def run_all(
    sequences: Iterable[Sequence],
    jobs: int = 1,
    on_outcome: Callable[[Outcome], None] = lambda outcome: None,
    deadline: float | None = None,
) -> Tally:
    """Run every sequence (until `deadline`, a time.monotonic() value) and count."""
    todo: queue.Queue[Sequence] = queue.Queue()
    for sequence in sequences:
        todo.put(sequence)
    tally = Tally()
    lock = threading.Lock()
    errors: list[BaseException] = []
    started = time.monotonic()

    def work() -> None:
        workdir = Path(tempfile.mkdtemp(prefix="difftest-", dir=scratch_root()))
        zygote = Zygote()
        try:
            executor = Executor(zygote, workdir)
            while deadline is None or time.monotonic() < deadline:
                try:
                    sequence = todo.get_nowait()
                except queue.Empty:
                    return
                outcome = executor.run_classified(sequence)
                with lock:
                    tally.add(outcome)
                    on_outcome(outcome)
        except BaseException as error:  # reported by the caller's thread
            errors.append(error)
        finally:
            zygote.close()
            shutil.rmtree(workdir, ignore_errors=True)

    threads = [threading.Thread(target=work, name=f"difftest-{n}") for n in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    tally.seconds = time.monotonic() - started
    return tally


def shrink_classes(
    tally: Tally, budget: float, log: Callable[[str], None] = lambda line: None
) -> dict[str, Outcome]:
    """One minimal example per failure class."""
    minimal: dict[str, Outcome] = {}
    workdir = Path(tempfile.mkdtemp(prefix="difftest-shrink-", dir=scratch_root()))
    zygote = Zygote()
    try:
        executor = Executor(zygote, workdir)
        for signature, outcomes in sorted(tally.classes.items()):
            first = min(outcomes, key=lambda o: len(o.sequence.project.items))
            log(f"shrinking {signature} ({first.sequence.key})")
            minimal[signature] = shrink(first, executor.run, budget, log)
    finally:
        zygote.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return minimal


def summary(tally: Tally, command: str) -> str:
    """A Markdown report: counts, failure classes with seeds, over-runs by edit class."""
    out = [
        f"command: `{command}`",
        "",
        "| | one-shot | daemon |",
        "| --- | --- | --- |",
        f"| sequences | {tally.sequences['oneshot']} | {tally.sequences['daemon']} |",
        f"| edits run | {tally.edits['oneshot']} | {tally.edits['daemon']} |",
        "",
        f"failing sequences: {dict(tally.failures) or 0}; stale values at the failing steps: "
        f"{tally.stale_values}; wall time {tally.seconds:.0f} s",
        f"over-runs (reactors re-run though nothing they use changed): "
        f"{sum(tally.over_runs.values())} in {tally.over_steps} edits"
        + (f", by edit: {dict(tally.over_runs)}" if tally.over_runs else ""),
        f"re-runs seen late, after an earlier rewrite kept size and mtime (not counted as "
        f"over-runs): {tally.late_runs}",
        f"required re-runs not done (value unchanged anyway): {dict(tally.missed) or 0}",
        f"daemon runs no save asked for: {tally.extra_daemon_runs}",
    ]
    for kind, (outcome, step) in sorted(tally.over_examples.items()):
        out += [
            "",
            f"over-run after `{kind}`: {outcome.sequence.key} step {step.index}, "
            f"{step.label()}: ran {', '.join(step.over)} (required: {step.required})",
        ]
        out += [f"    {line}" for line in why_lines(step)]
    if tally.classes:
        out += ["", "| failure class | sequences | seeds |", "| --- | --- | --- |"]
        for signature, outcomes in sorted(tally.classes.items(), key=lambda kv: -len(kv[1])):
            seeds = ", ".join(o.sequence.key for o in outcomes[:6])
            out.append(f"| `{signature}` | {len(outcomes)} | {seeds} |")
    return "\n".join(out)


def why_lines(step: Step) -> list[str]:
    """The lines of a run's report that explain the over-run reactors."""
    names = set(step.over)
    return [
        line.strip()
        for line in step.why.splitlines()
        if any(name in line.replace("(", " ").replace(":", " ").split() for name in names)
    ][:12]


def report_minimal(minimal: dict[str, Outcome]) -> str:
    parts = []
    for signature, outcome in minimal.items():
        parts += [
            f"### `{signature}`",
            f"replay: `{outcome.sequence.replay_command()}`",
            "```",
            describe(outcome),
            "```",
        ]
    return "\n".join(parts)


def progress(outcome: Outcome) -> None:
    step = outcome.failure
    status = f"{outcome.failure_class()} [{outcome.signature()}]" if step is not None else "ok"
    over = sum(len(s.over) for s in outcome.steps)
    print(
        f"{outcome.sequence.key}: {len(outcome.steps) - 1} edits, {outcome.seconds:.1f} s, "
        f"{status}{f', {over} over-runs' if over else ''}",
        file=sys.stderr,
        flush=True,
    )
