"""One run of the plant: drive reactor generators, check cached ones, find producers on demand.

Every unit of work is a *task* driving a generator: a `run` task executes a reactor, a `check`
task verifies a cached reactor by awaiting its recorded inputs. Both suspend on an ingredient
that is not available yet; whoever makes it available wakes them. This keeps "which reactor is
ready" separate from "how a reactor runs".
"""

from __future__ import annotations

import itertools
import logging
import time
import traceback
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

import numpy as np

from .config import ConfigBase
from .decisions import (
    TARGET,
    Decision,
    code_changes,
    code_signature,
    param_state,
    static_reasons,
    version_key,
    version_matches,
)
from .errors import (
    AllocationError,
    DependencyCycleError,
    IngredientNotFoundError,
    PayloadDamagedError,
    ReactorFailedError,
    RunCancelled,
    StoreError,
)
from .events import EventBus, EventType, PlantEvent
from .fingerprint import hash_bytes
from .origins import is_user_file
from .pipework import Pipework, Receive, Sent
from .reactor import SubreactorStarted, function_id, start_reactor
from .signature import CodeSignature, SignatureComputer
from .store.plant_store import PlantStore, output_record
from .store.records import IngredientRecord, ReactorRecord, Version
from .store.specs import IngredientTypeSpec
from .store.writer import PendingWrite

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reactor:
    """A registered reactor function."""

    id: str
    name: str
    func: Callable[..., Any]


@dataclass(frozen=True)
class _Await:
    """Yielded by check tasks: the fingerprint of an ingredient, once it is available."""

    name: str


_FINISHED = object()  # _advance's answer when the generator ended


@dataclass
class _Available:
    """An ingredient this run can serve: sent in this run, or stored."""

    sent: Sent | None = None
    record: IngredientRecord | None = None
    spec: IngredientTypeSpec | None = None  # of a sent value: can fingerprint it in memory
    _computed: str | None = None

    def ready(self) -> bool:
        return self.sent is None or self.sent.payload.done()

    def fingerprint(self) -> str:
        """Content fingerprint. For a value sent in this run whose write is still going on,
        computed from the value in memory (equal to what the writer records) rather than
        waiting for the disk; only types that need their file wait."""
        if self.record is not None:
            return self.record.fingerprint
        assert self.sent is not None
        if self.sent.payload.done() or self.spec is None:
            fingerprint: str = self.sent.payload.wait().fingerprint
            return fingerprint
        if self._computed is None:
            self._computed = self.spec.value_fingerprint(self.sent.value)
        if self._computed is None:
            self.spec = None
            return self.fingerprint()
        return self._computed


@dataclass
class _Task:
    reactor: Reactor
    kind: str  # "run" or "check"
    gen: Generator[Any, Any, Any]
    reasons: list[str]
    pipe: Pipework | None = None
    awaiting: str | None = None
    started: bool = False
    started_at: float = 0.0
    elapsed: float = 0.0


@dataclass
class RunContext:
    store: PlantStore
    config: ConfigBase
    reactors: dict[str, Reactor]
    signatures: SignatureComputer
    events: EventBus
    forced: set[str] = field(default_factory=set)
    track_versions: bool = True
    # Polled between reactor steps (every receive and send): True cancels the run.
    should_stop: Callable[[], bool] = lambda: False
    # A reactor's sys.exit() or KeyboardInterrupt: False ends the process after recording the
    # reactor as failed, as `python pipeline.py` would; True (the daemon) only fails the reactor.
    exits_are_failures: bool = False


# The reactor whose code is executing right now, if any (one engine thread runs reactors).
# The daemon's console prefixes printed lines with it; its cancel signal interrupts only then.
_running: list[str] = []


def running_reactor() -> str | None:
    return _running[-1] if _running else None


class Run:
    def __init__(
        self, ctx: RunContext, targets: list[Reactor], targets_always_run: bool = True
    ) -> None:
        self.ctx = ctx
        self.targets = targets
        self.targets_always_run = targets_always_run
        self.current: _Task | None = None
        self.available: dict[str, _Available] = {}
        self.status: dict[str, str] = {}
        self.decisions: dict[str, Decision] = {}
        self.ready: list[_Task] = []
        self.waiters: dict[str, list[_Task]] = {}
        self.providing: set[str] = set()
        self.tried: list[str] = []
        self.commits: list[PendingWrite] = []
        self.write_errors: list[StoreError] = []
        self._codes: dict[str, CodeSignature] = {}

    # -- main loop --------------------------------------------------------------------------
    def execute(self) -> list[Decision]:
        try:
            for target in reversed(self.targets):
                if self.targets_always_run:
                    self._start_run(target, self._target_reasons(target))
                else:  # after a save, targets follow the same rules as every other reactor
                    self._start_check(target)
            while self.ready or self.waiters:
                if self.ready:
                    self._step(self.ready.pop())
                else:
                    self._unstick()
        finally:
            try:
                self._abandon_unfinished()
            finally:
                self._wait_for_commits()  # finished reactors stay cached even if the run failed
        if self.write_errors:
            raise self.write_errors[0]
        return list(self.decisions.values())

    def _step(self, task: _Task) -> None:
        self.current = task
        value: Any = None
        if task.awaiting is not None:
            got, value = self._request(task, task.awaiting)
            if not got:
                return
        while True:
            if self.ctx.should_stop():
                raise RunCancelled()
            if not task.started and task.kind == "run":
                task.started, task.started_at = True, time.time()
                self._emit(EventType.reactor_started, task.reactor)
            command = self._advance(task, value)
            if command is _FINISHED:
                return
            if isinstance(command, Receive | _Await):
                got, value = self._request(task, command.name)
                if not got:
                    return
            elif isinstance(command, SubreactorStarted):
                self._note_subreactor(task, command.func)
                value = None
            else:
                value = command  # PyPlant compatibility: a plain yielded value is given back

    def _advance(self, task: _Task, value: Any) -> Any:
        """Run the reactor's code up to its next yield; its time is what the user's code took."""
        tick = time.perf_counter()
        _running.append(task.reactor.name)
        try:
            command = task.gen.send(value)
        except StopIteration as stop:
            task.elapsed += time.perf_counter() - tick
            _running.pop()
            self.current = None
            self._finish(task, stop.value)
            return _FINISHED
        except RunCancelled:
            _running.pop()
            raise
        except BaseException as exc:  # whatever the reactor's code raised is its failure
            task.elapsed += time.perf_counter() - tick
            _running.pop()
            self._fail(task, exc)
        task.elapsed += time.perf_counter() - tick
        _running.pop()
        return command

    # -- ingredients ------------------------------------------------------------------------
    def _request(self, task: _Task, name: str) -> tuple[bool, Any]:
        """The ingredient's value (fingerprint for checks) if available; else suspend `task`."""
        task.awaiting = None
        if task.pipe is not None and name in task.pipe.touched.sent:
            return True, task.pipe.touched.sent[name].value
        available = self.available.get(name)
        if available is not None:
            if task.kind == "check":
                try:
                    return True, available.fingerprint()
                except StoreError as err:  # its payload could not be written: not comparable
                    self.write_errors.append(err)
                    return True, None
            try:
                value = self._value_of(available)
            except PayloadDamagedError as err:
                self._repair(name, err)
            else:
                assert task.pipe is not None
                task.pipe._note_input(name, available)
                return True, value
        task.awaiting = name
        self.waiters.setdefault(name, []).append(task)
        self._provide(name)
        return False, None

    def _value_of(self, available: _Available) -> Any:
        if available.sent is not None:
            return available.sent.value
        assert available.record is not None
        return self.ctx.store.load(available.record)

    def _make_available(self, name: str, available: _Available) -> None:
        self.available[name] = available
        self.providing.discard(name)
        for waiter in reversed(self.waiters.pop(name, [])):
            self.ready.append(waiter)

    def _provide(self, name: str) -> None:
        """Start whatever can produce `name`: its recorded producer, checked or re-run."""
        if name in self.providing:
            return
        record = self.ctx.store.ingredients.get(name)
        producer = self.ctx.reactors.get(record.producer) if record else None
        if producer is None:
            return  # unknown: _unstick tries new reactors when nothing else can go on
        state = self.status.get(producer.id)
        if state in ("checking", "running"):
            self.providing.add(name)
        elif state is None:
            self.providing.add(name)
            self._start_check(producer)

    def _repair(self, name: str, err: PayloadDamagedError) -> None:
        """A stored payload is bad: forget it and let its producer run again."""
        logger.warning("%s Its producer will run again.", err)
        record = self.ctx.store.ingredients.get(name)
        self.ctx.store.forget([name])
        self.available.pop(name, None)
        if record is not None and self.status.get(record.producer) == "cached":
            del self.status[record.producer]
            self.decisions.pop(record.producer, None)

    # -- starting and checking reactors -----------------------------------------------------
    def _code(self, reactor: Reactor, subreactor_ids: list[str]) -> CodeSignature:
        key = reactor.id + "|" + ",".join(subreactor_ids)
        if key not in self._codes:
            self._codes[key] = code_signature(self.ctx.signatures, reactor.func, subreactor_ids)
        return self._codes[key]

    def _static_reasons(self, reactor: Reactor) -> list[str]:
        record = self.ctx.store.reactors.get(reactor.id)
        code = self._code(reactor, record.subreactors if record else [])
        ctx = self.ctx
        reasons = static_reasons(
            record, code, ctx.config, ctx.store, ctx.signatures, ctx.track_versions
        )
        return (["forced"] if reactor.id in ctx.forced else []) + reasons

    def _target_reasons(self, target: Reactor) -> list[str]:
        return [TARGET, *self._static_reasons(target)]

    def _start_check(self, reactor: Reactor) -> None:
        """Serve the reactor's stored result if its inputs still match; else an earlier result
        that matches the present (an undone edit); else run it."""
        reasons = self._static_reasons(reactor)
        record = self.ctx.store.reactors.get(reactor.id)
        current = [record] if record is not None and not reasons else []
        earlier = self._restorable_records(reactor)  # looked at only if `current` fails
        if not current and not self.ctx.store.versions_of(reactor.id):
            self._start_run(reactor, reasons)
            return
        self.status[reactor.id] = "checking"
        candidates = itertools.chain(current, earlier)
        self.ready.append(_Task(reactor, "check", _match_inputs(candidates), reasons))

    def _restorable_records(self, reactor: Reactor) -> Iterator[ReactorRecord]:
        for version in self._restorable(reactor):
            yield version.record

    def _restorable(self, reactor: Reactor) -> list[Version]:
        if reactor.id in self.ctx.forced:
            return []
        ctx = self.ctx
        current = ctx.store.reactors.get(reactor.id)
        current_key = version_key(current) if current is not None else None
        found = []
        for version in ctx.store.versions_of(reactor.id):
            code = self._code(reactor, version.record.subreactors)
            if version.key != current_key and version_matches(
                version, code, ctx.config, ctx.store, ctx.signatures, ctx.track_versions
            ):
                found.append(version)
        return found

    def _start_run(self, reactor: Reactor, reasons: list[str]) -> None:
        pipe = Pipework(reactor.name, self.ctx.store, self.ctx.config)
        task = _Task(reactor, "run", start_reactor(reactor.func, pipe, pipe.config), reasons)
        task.pipe = pipe
        pipe.on_send = lambda sent: self._sent(task, sent)
        self.status[reactor.id] = "running"
        self.ready.append(task)

    def _note_subreactor(self, task: _Task, func: Callable[..., Any]) -> None:
        if task.pipe is not None and func not in task.pipe.touched.subreactors:
            task.pipe.touched.subreactors.append(func)
        self._emit(EventType.subreactor_started, task.reactor, subreactor=func.__name__)

    def _sent(self, task: _Task, sent: Sent) -> Sent:
        """A reactor sent an ingredient: waiters may go on at once."""
        if sent.payload.done() and sent.payload.wait().fingerprint is None:
            # out-of-core data is not hashed: its fingerprint is its provenance
            fingerprint = hash_bytes(self._provenance(task), sent.name)
            payload = replace(sent.payload.wait(), fingerprint=fingerprint)
            sent = replace(sent, payload=PendingWrite.completed(sent.name, payload))
        if isinstance(sent.value, np.ndarray) and sent.value.flags.writeable:
            view = sent.value.view()
            view.flags.writeable = False  # consumers share the array; none may change it
            sent = replace(sent, value=view)
        spec = self.ctx.store.spec(sent.type)
        self._make_available(sent.name, _Available(sent=sent, spec=spec))
        return sent

    def _provenance(self, task: _Task) -> str:
        assert task.pipe is not None
        touched = task.pipe.touched
        subs = [function_id(f) for f in touched.subreactors]
        params = self._param_states(touched.params)
        inputs = {name: source.fingerprint() for name, source in touched.inputs.items()}
        return hash_bytes(self._code(task.reactor, subs).digest, repr(params), repr(inputs))

    def _param_states(self, names: list[str]) -> dict[str, list[str]]:
        config, signatures = self.ctx.config, self.ctx.signatures
        states = {name: param_state(config, name, signatures) for name in names}
        return {name: state for name, state in states.items() if state is not None}

    # -- endings ----------------------------------------------------------------------------
    def _finish(self, task: _Task, result: Any) -> None:
        if task.kind == "check":
            self._finish_check(task, result)
        else:
            self._finish_run(task)

    def _finish_check(self, task: _Task, result: tuple[ReactorRecord | None, list[str]]) -> None:
        match, input_reasons = result
        reactor, store = task.reactor, self.ctx.store
        if match is None:
            self._start_run(reactor, task.reasons or input_reasons)
            return
        reasons: list[str] = []
        if store.reactors.get(reactor.id) is not match:
            store.restore(store.versions[(reactor.id, version_key(match))])
            why = "; ".join(task.reasons) or "inputs changed back"
            reasons = [f"restored an earlier result ({why})"]
        self.status[reactor.id] = "cached"
        self.decisions[reactor.id] = Decision(reactor.name, reactor.id, "cached", reasons)
        for name in match.outputs:
            self._make_available(name, _Available(record=store.ingredients[name]))
        self._emit(EventType.reactor_cached, reactor, reasons=reasons)

    def _finish_run(self, task: _Task) -> None:
        pipe, reactor = task.pipe, task.reactor
        assert pipe is not None
        if pipe.touched.allocated:
            names = ", ".join(f"'{n}'" for n in sorted(pipe.touched.allocated))
            self._fail(task, AllocationError(
                f"Reactor '{reactor.name}' allocated {names} but never sent it. "
                "Commit it with pipe.send(name, handle) before the reactor ends."
            ))  # fmt: skip
        self.commits.append(self._commit_later(task))
        self.status[reactor.id] = "ran"
        self.decisions[reactor.id] = Decision(
            reactor.name, reactor.id, "ran", task.reasons, task.elapsed, task.started_at
        )
        self._emit(EventType.reactor_finished, reactor, duration=task.elapsed)

    def _commit_later(self, task: _Task) -> PendingWrite:
        """Queue the reactor's commit behind its payloads; what needs the engine (code, params)
        is computed now, the fingerprints when the writer gets there."""
        assert task.pipe is not None
        touched, reactor = task.pipe.touched, task.reactor
        subs = [function_id(f) for f in touched.subreactors]
        code, params = self._code(reactor, subs), self._param_states(touched.params)
        sent, inputs, files = list(touched.sent.values()), dict(touched.inputs), dict(touched.files)

        def build() -> Version:
            now = time.time()
            fingerprints = {name: source.fingerprint() for name, source in inputs.items()}
            record = ReactorRecord(
                reactor.id, reactor.name, code.digest, code.parts, params, fingerprints,
                [s.name for s in sent], subs, files, duration=task.elapsed, finished_at=now,
            )  # fmt: skip
            outputs = [
                replace(output_record(s.payload, s.name, reactor.id, s.type), created_at=now)
                for s in sent
            ]
            return Version(version_key(record), record, outputs, now)

        return self.ctx.store.commit_later(reactor.name, build)

    def _wait_for_commits(self) -> None:
        """The durability barrier: a run ends when what it made is on disk and recorded."""
        for commit in self.commits:
            try:
                commit.wait()
            except StoreError as err:  # that reactor re-runs next time; the run fails at its end
                self.write_errors.append(err)
        self.commits.clear()

    def _fail(self, task: _Task, exc: BaseException) -> NoReturn:
        """Record the reactor as failed, then raise ReactorFailedError, or the exception itself
        when it ends the process (sys.exit, KeyboardInterrupt) and this run lets it."""
        reactor = task.reactor
        self.current = None
        self.status[reactor.id] = "failed"
        if task.pipe is not None:
            for name in task.pipe.touched.sent:
                self.available.pop(name, None)
            self.ctx.store.discard(task.pipe._abandon())
        ends_process = isinstance(exc, SystemExit | KeyboardInterrupt)
        message = failure_message(exc, with_place=not isinstance(exc, Exception))
        self.decisions[reactor.id] = Decision(
            reactor.name, reactor.id, "failed", [*task.reasons, message], task.elapsed,
            task.started_at,
        )  # fmt: skip
        self._emit(EventType.reactor_failed, reactor, error=message, exception=exc)
        if ends_process and not self.ctx.exits_are_failures:
            raise exc
        raise ReactorFailedError(
            f"Reactor '{reactor.name}' failed: {message}", reactor.name
        ) from exc

    def _abandon_unfinished(self) -> None:
        """After a failure: close suspended reactors and delete what they sent uncommitted."""
        tasks = self.ready + [t for waiting in self.waiters.values() for t in waiting]
        if self.current is not None and self.current not in tasks:
            tasks.append(self.current)  # interrupted mid-step (cancelled, Ctrl-C)
        self.current = None
        for task in tasks:
            try:
                task.gen.close()  # runs the reactor's own cleanup (finally, with)
            except Exception as exc:  # it is abandoned already: its cleanup cannot fail it
                logger.warning(
                    "Reactor '%s' raised while being stopped: %s", task.reactor.name, exc
                )
            if task.pipe is not None:
                self.ctx.store.discard(task.pipe._abandon())
        self.ready.clear()
        self.waiters.clear()

    # -- when nothing is ready --------------------------------------------------------------
    def _unstick(self) -> None:
        if self._discover():
            return
        checks = [t for ts in self.waiters.values() for t in ts if t.kind == "check"]
        if checks:  # records disagree with each other: stop trusting one, run it for real
            task = checks[-1]
            self._drop_waiter(task)
            self._start_run(task.reactor, ["its recorded inputs are no longer produced"])
            return
        if self._serve_orphans():
            return
        raise self._stuck_error()

    def _discover(self) -> bool:
        """Run one reactor that might send an awaited ingredient (new or changed ones)."""
        awaited = set(self.waiters)
        for reactor in self.ctx.reactors.values():
            if reactor.id in self.status:
                continue
            record = self.ctx.store.reactors.get(reactor.id)
            reasons = self._static_reasons(reactor)
            code = self._code(reactor, record.subreactors) if record else None
            changed = record is None or bool(
                code and code_changes(record, code, self.ctx.track_versions)
            )
            if changed or awaited & set(record.outputs if record else ()):
                self.tried.append(reactor.name)
                self._start_run(reactor, reasons or ["sends an awaited ingredient"])
                return True
        return False

    def _serve_orphans(self) -> bool:
        """Stored ingredients whose producer this script does not define are served as stored."""
        served = False
        for name in list(self.waiters):
            record = self.ctx.store.ingredients.get(name)
            orphan = record is not None and record.producer not in self.ctx.reactors
            if orphan and record is not None and self.ctx.store.intact(record):
                self._make_available(name, _Available(record=record))
                served = True
        return served

    def _drop_waiter(self, task: _Task) -> None:
        for name, tasks in list(self.waiters.items()):
            if task in tasks:
                tasks.remove(task)
                if not tasks:
                    del self.waiters[name]
        task.gen.close()

    def _stuck_error(self) -> Exception:
        waiting = [(t.reactor.name, name) for name, ts in self.waiters.items() for t in ts]
        tried = ", ".join(self.tried) or "none"
        if len(waiting) > 1:
            detail = ", ".join(f"'{r}' waits for '{n}'" for r, n in waiting)
            return DependencyCycleError(
                f"Reactors wait for each other: {detail}; no other reactor sends these "
                f"(tried: {tried}). Break the cycle so that one of them does not receive what "
                "another sends."
            )
        reactor, name = waiting[0]
        return IngredientNotFoundError(
            f"Reactor '{reactor}' waits for ingredient '{name}', but no reactor sends it "
            f"(tried: {tried}). Check the name, or add the reactor that sends it with "
            "plant.add_reactors(...)."
        )

    def _emit(self, event_type: EventType, reactor: Reactor, **data: Any) -> None:
        self.ctx.events.emit(PlantEvent(event_type, reactor.name, {"id": reactor.id, **data}))


def failure_message(exc: BaseException, with_place: bool = False) -> str:
    """`ValueError: bad data`; `with_place` adds where the user's code raised it (for what is
    not an Exception, such as sys.exit, which prints no traceback)."""
    message = type(exc).__name__ + (f": {exc}" if str(exc) else "")
    if with_place:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if is_user_file(f.filename)]
        if frames:
            message += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return message


def _match_inputs(
    candidates: Iterable[ReactorRecord],
) -> Generator[_Await, str | None, tuple[ReactorRecord | None, list[str]]]:
    """The first candidate whose recorded inputs all have their recorded fingerprints now."""
    first_reasons: list[str] = []
    for record in candidates:
        for name, fingerprint in record.inputs.items():
            current = yield _Await(name)
            if current != fingerprint:
                first_reasons = first_reasons or [f"input '{name}' changed"]
                break
        else:
            return record, []
    return None, first_reasons
