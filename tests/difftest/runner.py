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
import json
import os
import random
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyplant_client import Client, ClientError

from .daemon import WatchDaemon, daemon_env
from .edits import Edit, apply_edit, changed_files, make_edits
from .generator import generate, new_id_counter
from .impact import required_by_edit
from .model import COLLECTOR, SERVED, Project, render

REPO = Path(__file__).resolve().parents[2]
RUNTIME = Path(__file__).with_name("project_runtime.py")
RUN_TIMEOUT = 120.0  # one run of a tiny project takes well under a second; a loaded machine...
DAEMON_START_TIMEOUT = 120.0
DAEMON_RUN_TIMEOUT = 20.0  # a save's run takes well under a second
SECOND_NS = 1_000_000_000


def scratch_root() -> str:
    """Where sequences run: DIFFTEST_TMP, else /dev/shm when it has room (no disk flushes: the
    engine fsyncs every payload, which on a shared disk costs more than the runs), else /tmp."""
    chosen = os.environ.get("DIFFTEST_TMP")
    if chosen:
        return chosen
    shm = "/dev/shm"
    try:
        room = shutil.disk_usage(shm).free
    except OSError:
        room = 0
    if room > 512 * 2**20 and os.access(shm, os.W_OK):
        return shm
    return tempfile.gettempdir()


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


# -- the fork server ----------------------------------------------------------------------------
class Zygote:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO / "tests"), str(REPO), str(REPO / "client")]
        )}  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "difftest.zygote"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=env, cwd=tempfile.gettempdir(),
        )  # fmt: skip
        self._reply(120.0)

    def _reply(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"the fork server did not answer within {timeout} s")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def run(self, **job: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        job.setdefault("timeout", RUN_TIMEOUT)
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        return self._reply(float(job["timeout"]) + 60)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# -- files --------------------------------------------------------------------------------------
def write_tree(root: Path, files: dict[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(RUNTIME, root / "served.py")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def save(path: Path, text: str, edit: Edit) -> bool:
    """Write as an editor would; True if the file keeps its size and whole-second mtime (what
    CPython's bytecode cache checks)."""
    before = path.stat()
    if edit.save == "atomic":
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temp, path)
    else:
        with open(path, "w") as handle:
            handle.write(text)
    after = path.stat()
    if edit.keep_stat and after.st_size == before.st_size:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    elif after.st_mtime_ns < before.st_mtime_ns + SECOND_NS:
        # A person's saves are seconds apart; two saves within one second keeping the size
        # would fool CPython's bytecode cache, which only a kept mtime should test.
        os.utime(path, ns=(after.st_atime_ns, before.st_mtime_ns + SECOND_NS))
    after = path.stat()
    same_second = int(after.st_mtime) == int(before.st_mtime)
    return after.st_size == before.st_size and same_second


def read_served(out: Path) -> dict[str, list[str]] | None:
    try:
        served: dict[str, list[str]] = json.loads((out / "served.json").read_text())
    except (OSError, ValueError):
        return None
    return served


def read_ran(out: Path) -> dict[str, dict[str, str]]:
    """reactor -> the digests of its inputs, for each reactor that executed."""
    ran = {}
    try:
        lines = (out / "ran.jsonl").read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        record = json.loads(line)
        ran[record["reactor"]] = record["inputs"]
    return ran


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


# -- one sequence -------------------------------------------------------------------------------
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
        for edit in sequence.edits:
            after = apply_edit(state, edit)
            if after is not None:
                steps.append((edit, after))
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
