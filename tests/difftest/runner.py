"""Runs edit sequences on generated projects and compares, after every edit, what the run served
(one-shot through the fork server, or a real `pyplantd watch`) with the oracles:

- the plain-Python evaluation of the same source (oracle.py), after every step;
- on a difference, a fresh `python pipeline.py` in an empty plant dir on a clean copy, which
  tells a stale value (served != fresh run) from a fresh run that is itself wrong (fresh run
  != plain Python, e.g. a consumer's mutation reaching another consumer).

It also counts over-runs: reactors that ran though nothing they depend on changed.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pyplant_client import Client, ClientError

from .daemon import WatchDaemon, daemon_env
from .edits import Edit, apply_edit, changed_files
from .impact import required_by_edit
from .model import COLLECTOR, SERVED, Project
from .render import render
from .sequence import Outcome, Sequence, Step, show, stale_roots
from .workspace import read_ran, read_served, save, tail, write_tree
from .zygote import Zygote

REPO = Path(__file__).resolve().parents[2]
DAEMON_START_TIMEOUT = 120.0
DAEMON_RUN_TIMEOUT = 20.0  # a save's run takes well under a second


class Executor:
    """Runs sequences in `workdir` with one fork server."""

    def __init__(self, zygote: Zygote, workdir: Path) -> None:
        self.zygote = zygote
        self.workdir = workdir

    def run_classified(self, sequence: Sequence) -> Outcome:
        """`run`; for a failure on a rewrite that kept the file's size and mtime, replays that
        tell whether keeping them is the cause, and then whether CPython's __pycache__ is; for
        another daemon failure, two replays that tell whether it depends on timing."""
        outcome = self.run(sequence)
        step = outcome.failure
        if step is None or step.edit is None:
            return outcome
        done = [s.edit for s in outcome.steps if s.edit is not None]
        if not any(edit.keep_stat for edit in done):
            if sequence.mode == "daemon" and step.failure in ("stale", "side-effect"):
                # a value served under the daemon may depend on timing: does it happen again?
                outcome.unreproduced = all(self._passes(sequence, step) for _ in range(2))
            return outcome
        # A rewrite keeping size and mtime may have been missed silently and recorded a result
        # under the wrong signature, which only a later edit shows: replay with none kept.
        edits = [dataclasses.replace(e, keep_stat=False) for e in sequence.edits]
        outcome.stat_only = self._passes(dataclasses.replace(sequence, edits=edits), step)
        hazard = any(s.bytecode_hazard for s in outcome.steps)
        if outcome.stat_only and hazard and sequence.bytecode:
            no_pycache = dataclasses.replace(sequence, bytecode=False)
            outcome.bytecode_only = self._passes(no_pycache, step)
        return outcome

    def _passes(self, sequence: Sequence, step: Step) -> bool:
        """True if `sequence` gets past the step that failed, or there no longer serves the
        stale value where it started (another one may have another cause)."""
        again = self.run(sequence).failure
        if again is None or again.index > step.index:
            return True
        names = [root.split()[0] for root in again.roots]
        return (
            bool(step.roots) and again.index == step.index and step.roots[0].split()[0] not in names
        )

    def run(self, sequence: Sequence) -> Outcome:
        started = time.monotonic()
        root = Path(tempfile.mkdtemp(prefix=f"seq{sequence.seed}-", dir=self.workdir))
        try:
            if sequence.mode == "daemon":
                outcome = self._daemon(sequence, root)
            else:
                outcome = self._oneshot(sequence, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        outcome.seconds = time.monotonic() - started
        return outcome

    # -- oracles --------------------------------------------------------------------------------
    def plain(self, project: Project, root: Path) -> tuple[dict[str, list[str]] | None, Any, str]:
        """(served, per-reactor inputs, error) of the plain-Python evaluation."""
        copy_dir = Path(tempfile.mkdtemp(prefix="plain-", dir=root))
        try:
            write_tree(copy_dir, render(project))
            reactors = {r.id: [r.module, r.name] for r in project.reactors()}
            reply = self.zygote.run(
                kind="plain", project=str(copy_dir), out=str(copy_dir), reactors=reactors,
                producers=project.producers(),
            )  # fmt: skip
            if reply["rc"] != 0:
                return None, {}, tail(copy_dir / "stdout.txt")
            return read_served(copy_dir), read_ran(copy_dir), ""
        finally:
            shutil.rmtree(copy_dir, ignore_errors=True)

    def fresh(self, project: Project, root: Path) -> tuple[dict[str, list[str]] | None, str]:
        """What `python pipeline.py` serves in an empty plant dir, on a clean copy."""
        copy_dir = Path(tempfile.mkdtemp(prefix="fresh-", dir=root))
        try:
            write_tree(copy_dir, render(project))
            reply = self.zygote.run(
                kind="run", mode="python", project=str(copy_dir), plant=str(copy_dir / "plant"),
                out=str(copy_dir),
            )  # fmt: skip
            if reply["rc"] != 0:
                return None, tail(copy_dir / "stdout.txt")
            return read_served(copy_dir), ""
        finally:
            shutil.rmtree(copy_dir, ignore_errors=True)

    def judge(
        self,
        step: Step,
        project: Project,
        root: Path,
        served: dict[str, list[str]] | None,
        run_error: str,
        ran: dict[str, Any],
    ) -> Any:
        """Compare with the oracles; fills step.failure. Returns the oracle's reactor inputs."""
        expected, inputs, error = self.plain(project, root)
        if expected is None:
            step.failure, step.detail = "invalid", f"the plain-Python oracle failed:\n{error}"
            return inputs
        if served is None or run_error:
            step.failure, step.detail = "error", run_error or "nothing served"
            return inputs
        if served == expected:
            return inputs
        fresh, fresh_error = self.fresh(project, root) if step.edit is not None else (served, "")
        if fresh is None:
            step.failure = "semantic"
            step.detail = f"a fresh run in an empty plant dir failed:\n{fresh_error}"
            return inputs
        stale = sorted(n for n in expected if served.get(n) != fresh.get(n))
        wrong = sorted(n for n in expected if fresh.get(n) != expected.get(n))
        if stale:
            step.failure = "stale"
            step.roots = stale_roots(project, stale, ran)
            pad = " " * max(map(len, stale))
            step.detail = "\n".join(
                f"  {n}: served {show(served.get(n))}\n  {pad}  fresh  {show(fresh.get(n))}"
                for n in stale
            )
        else:
            step.failure = "semantic"
            step.detail = "\n".join(
                f"  {n}: fresh run {show(fresh.get(n))}\n  {' ' * len(n)}  plain     "
                f"{show(expected.get(n))}"
                for n in wrong
            )
        return inputs

    def account(
        self,
        step: Step,
        before: Project,
        after: Project,
        ran: dict[str, Any],
        inputs: Any,
        previous: Any,
    ) -> None:
        """Over-runs: reactors that ran though neither their code, params, files nor inputs
        changed."""
        assert step.edit is not None
        required = required_by_edit(before, after, step.edit)
        required |= {r for r, seen in inputs.items() if previous.get(r) != seen}
        executed = set(ran) - {COLLECTOR}
        required.discard(COLLECTOR)
        step.ran, step.required = sorted(executed), sorted(required)
        step.over = sorted(executed - required)
        # after an undo the engine may restore earlier versions instead of running
        step.missed = [] if step.edit.undo else sorted(required - executed)

    # -- one-shot -------------------------------------------------------------------------------
    def _oneshot(self, sequence: Sequence, root: Path) -> Outcome:
        outcome = Outcome(sequence)
        project_dir, out = root / "project", root / "out"
        out.mkdir()
        state = sequence.project
        files = render(state)
        write_tree(project_dir, files)
        previous: Any = {}
        steps: list[tuple[Edit | None, Project]] = [(None, state)]
        for change in sequence.edits:
            after = apply_edit(state, change)
            if after is not None:
                steps.append((change, after))
                state = after
        state = sequence.project
        for index, (edit, after) in enumerate(steps):
            step = Step(index, edit)
            if edit is not None:
                new_files = render(after)
                for name in changed_files(files, new_files):
                    kept = save(project_dir / name, new_files[name], edit)
                    step.bytecode_hazard |= kept and name.endswith(".py") and name != "pipeline.py"
                files = new_files
            for name in ("served.json", "ran.jsonl"):
                (out / name).unlink(missing_ok=True)
            mode = sequence.flavours[index % len(sequence.flavours)]
            reply = self.zygote.run(
                kind="run", mode=mode, project=str(project_dir), plant=str(project_dir / "plant"),
                out=str(out), bytecode=sequence.bytecode,
            )  # fmt: skip
            error = "" if reply["rc"] == 0 else f"exit {reply['rc']}:\n{tail(out / 'stdout.txt')}"
            if after.broken:  # a syntax error: the run must fail, and the next edit fixes it
                if not error:
                    step.failure, step.detail = "error", "a script with a syntax error ran"
                outcome.steps.append(step)
                if step.failure:
                    break
                continue
            ran = read_ran(out)
            inputs = self.judge(step, after, root, read_served(out), error, ran)
            if edit is not None and not step.failure:
                self.account(step, state, after, ran, inputs, previous)
                if step.over and mode == "cli":
                    step.why = tail(out / "stdout.txt", 60)
            outcome.steps.append(step)
            if step.failure:
                break
            previous, state = inputs, after
        return outcome

    # -- daemon ---------------------------------------------------------------------------------
    def _daemon(self, sequence: Sequence, root: Path) -> Outcome:
        outcome = Outcome(sequence)
        project_dir, out = root / "project", root / "out"
        out.mkdir()
        state = sequence.project
        files = render(state)
        write_tree(project_dir, files)
        poll = sequence.flavours[0] == "poll"
        env = daemon_env(REPO, out)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        if not sequence.bytecode:
            env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONPYCACHEPREFIX=str(root / "no-pycache"))
        daemon = WatchDaemon(project_dir, env, poll)
        client: Client | None = None
        try:
            lines = daemon.next_run(DAEMON_START_TIMEOUT)
            step = Step(0, None)
            error = "" if lines is not None else "no first run:\n" + daemon.transcript()
            if lines is not None:
                client = Client.find(project_dir, timeout=DAEMON_RUN_TIMEOUT)
            served = fetch_served(client)
            previous = self.judge(step, state, root, served, error, read_ran(out))
            side_effects(step, served, out)
            if lines is not None and run_failed(lines):
                step.failure, step.detail = "error", "\n".join(lines)
            outcome.steps.append(step)
            if step.failure:
                return outcome
            for index, edit in enumerate(sequence.edits, 1):
                after = apply_edit(state, edit)
                if after is None:
                    continue
                step = Step(index, edit)
                if daemon.pending():
                    if any(line.startswith("memory: ") for line in daemon.pending()):
                        outcome.extra_runs += 1
                    daemon.skip_pending()
                (out / "ran.jsonl").unlink(missing_ok=True)
                new_files = render(after)
                for name in changed_files(files, new_files):
                    kept = save(project_dir / name, new_files[name], edit)
                    step.bytecode_hazard |= kept and name.endswith(".py") and name != "pipeline.py"
                files = new_files
                if after.broken:  # the daemon must say so and keep the last good state
                    if not daemon.wait_for("did not load", DAEMON_RUN_TIMEOUT):
                        step.failure = "no-run" if daemon.proc.poll() is None else "crash"
                        step.detail = "a syntax error was not reported:\n" + "\n".join(
                            daemon.pending()[-30:]
                        )
                    outcome.steps.append(step)
                    if step.failure:
                        break
                    continue
                lines = daemon.next_run(DAEMON_RUN_TIMEOUT)
                error = ""
                if lines is None:
                    exited = daemon.proc.poll()
                    step.failure = "no-run" if exited is None else "crash"
                    said = "\n".join(line for line in daemon.pending()[-40:] if line.strip("│ "))
                    step.detail = f"no run after the save (daemon exit code {exited}):\n{said}"
                elif run_failed(lines):
                    error = "\n".join(lines)
                inputs, ran = previous, read_ran(out)
                if not step.failure:
                    served = fetch_served(client)
                    inputs = self.judge(step, after, root, served, error, ran)
                    side_effects(step, served, out)
                if not step.failure:
                    self.account(step, state, after, ran, inputs, previous)
                    if step.over and lines:
                        step.why = "\n".join(lines)
                outcome.steps.append(step)
                if step.failure:
                    break
                previous, state = inputs, after
        finally:
            if client is not None:
                client.close()
            daemon.stop()
        return outcome


def fetch_served(client: Client | None) -> dict[str, list[str]] | None:
    """What the daemon holds as the collector's output, through the real client."""
    if client is None:
        return None
    try:
        served: dict[str, list[str]] = client.fetch(SERVED)
    except ClientError:
        return None
    return served


def side_effects(step: Step, served: dict[str, list[str]] | None, out: Path) -> None:
    """The collector's own record of its last execution must show what the daemon serves: a
    target that is restored instead of run leaves its side effects (a plot, a file) behind."""
    if step.failure or served is None:
        return
    recorded = read_served(out) or {}
    if recorded != served:
        differ = sorted(n for n in served if recorded.get(n) != served[n])
        step.failure = "side-effect"
        step.detail = "the target's last execution saw other values than the daemon serves:\n"
        step.detail += "\n".join(
            f"  {n}: served     {show(served.get(n))}\n  {n}: target saw {show(recorded.get(n))}"
            for n in differ
        )


def run_failed(lines: list[str]) -> bool:
    """A daemon run that reported a failed reactor, an error, or a failed run."""
    summary = lines[-2] if len(lines) >= 2 else ""
    return ", failed, " in summary or any(
        line.startswith(("  ✗", "error:", "Error:")) for line in lines
    )
