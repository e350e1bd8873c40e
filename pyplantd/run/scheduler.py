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

from ..config import ConfigBase
from ..errors import (
    AllocationError,
    AmbiguousIngredientError,
    DependencyCycleError,
    IngredientNotFoundError,
    PayloadDamagedError,
    RunCancelled,
    StoreError,
    reactor_failed_error,
)
from ..events import EventBus, EventType, PlantEvent
from ..fingerprint import hash_bytes
from ..reactor import SubreactorStarted, function_id, start_reactor
from ..signatures.origins import is_user_file
from ..signatures.sends import confirmed_sends, send_candidates
from ..signatures.signature import CodeSignature, SignatureComputer
from ..signatures.value_code import ValueCode
from ..store.plant_store import PlantStore, output_record
from ..store.records import IngredientRecord, ReactorRecord, Version
from ..store.writer import PendingWrite
from .judge import (
    TARGET,
    Decision,
    code_changes,
    code_signature,
    param_state,
    static_reasons,
    version_key,
    version_matches,
)
from .pipework import Pipework, Receive, Sent

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
    """An ingredient this run can serve: sent in this run (its value held by the store), or
    stored."""

    sent: Sent | None = None
    record: IngredientRecord | None = None
    store: PlantStore | None = None  # of a sent value: can fingerprint it in memory
    producer: Reactor | None = None  # the reactor of this run that sent it or served it cached
    _computed: str | None = None

    def ready(self) -> bool:
        return self.sent is None or self.sent.payload.done()

    def fingerprint(self) -> str:
        """Content fingerprint. For a value sent in this run whose write is still going on,
        computed from the value in memory (equal to what the writer records) rather than
        waiting for the disk; only types that need their file wait. A stored value's is
        computed when it becomes available (see ValueCode.fingerprint)."""
        if self.record is not None:
            return self._computed or self.record.fingerprint
        assert self.sent is not None
        if self.sent.payload.done() or self.store is None:
            fingerprint: str = self.sent.payload.wait().fingerprint
            return fingerprint
        if self._computed is None:
            self._computed = self.store.sent_fingerprint(self.sent.type, self.sent.payload)
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
        self._send_index: dict[str, list[Reactor]] | None = None
        self.value_code = ValueCode(ctx.signatures, ctx.track_versions)

    # -- main loop --------------------------------------------------------------------------
    def execute(self) -> list[Decision]:
        outer = self.ctx.store.code_of  # a run started from a reactor of another run
        self.ctx.store.code_of = self.value_code.of  # sent values' fingerprints cover it
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
                self.ctx.store.warm.drop_unwritten()
                self.ctx.store.code_of = outer
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
            if task.started:
                self._emit(EventType.reactor_resumed, task.reactor)
        while True:
            if self.ctx.should_stop():
                raise RunCancelled()
            if not task.started and task.kind == "run":
                task.started, task.started_at = True, time.time()
                self._emit(EventType.reactor_started, task.reactor, func=task.reactor.func)
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
        if task.kind == "run":
            self.ctx.events.step(task.reactor.name)
        return command

    # -- ingredients ------------------------------------------------------------------------
    def _request(self, task: _Task, name: str) -> tuple[bool, Any]:
        """The ingredient's value (fingerprint for checks) if available; else suspend `task`."""
        task.awaiting = None
        if task.pipe is not None and name in task.pipe.touched.sent:
            return True, self._value_of(_Available(sent=task.pipe.touched.sent[name]))
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
        if task.started:  # a running reactor now waits (checks of cached ones are not shown)
            self._emit(EventType.reactor_waiting, task.reactor, ingredient=name)
        self._provide(name)
        return False, None

    def _value_of(self, available: _Available) -> Any:
        sent = available.sent
        if sent is not None:
            if sent.handle is not None:
                return sent.handle
            if sent.uncached:  # PyPlant's useCache=False: each consumer reads its own copy
                return self.ctx.store.load_uncached(sent.payload.wait(), sent.type)
            return self.ctx.store.load_sent(sent.name, sent.type, sent.payload)
        assert available.record is not None
        return self.ctx.store.load(available.record)

    def _make_available(self, name: str, available: _Available) -> None:
        earlier = self.available.get(name)
        if earlier is not None and earlier.producer is not available.producer:
            assert earlier.producer is not None and available.producer is not None
            raise _ambiguous(name, [earlier.producer, available.producer])
        self.available[name] = available
        self.providing.discard(name)
        for waiter in reversed(self.waiters.pop(name, [])):
            self.ready.append(waiter)

    def _provide(self, name: str) -> None:
        """Start whatever can produce `name`: its recorded producer, checked or re-run."""
        if name in self.providing:
            return
        senders = self._code_senders(name)
        if len(senders) > 1:  # whatever ran before, a consumer's value would be a guess
            raise _ambiguous(name, senders)
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

    # -- the graph as the code states it (see sends) ----------------------------------------
    def _code_senders(
        self, name: str, besides: Reactor | None = None, confirm: bool = False
    ) -> list[Reactor]:
        """Defined reactors (but `besides`) whose code sends `name` as a literal; a lone one
        is confirmed from its source only if `confirm` (it cannot collide with anyone)."""
        if self._send_index is None:
            self._send_index = {}
            for reactor in self.ctx.reactors.values():
                for sent in send_candidates(reactor.func):
                    self._send_index.setdefault(sent, []).append(reactor)
        candidates = [r for r in self._send_index.get(name, ()) if r is not besides]
        if not candidates or (besides is None and len(candidates) == 1 and not confirm):
            return candidates
        return [r for r in candidates if name in confirmed_sends(r.func)]

    def _known_senders(self, name: str) -> list[Reactor]:
        """Reactors that send `name`, by their code or by their last run."""
        senders = self._code_senders(name, confirm=True)
        record = self.ctx.store.ingredients.get(name)
        recorded = self.ctx.reactors.get(record.producer) if record else None
        return [*senders, recorded] if recorded and recorded not in senders else senders

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
        checks = _match_inputs(candidates, self._input_changed)
        self.ready.append(_Task(reactor, "check", checks, reasons))

    def _input_changed(self, name: str) -> str:
        why = self.value_code.why.get(name)  # a stored value whose code changed since it was sent
        return f"input '{name}' changed" + (f" ({why})" if why else "")

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
            if version.key == current_key and self._outputs_current(version):
                continue  # that is `current`, checked first
            code = self._code(reactor, version.record.subreactors)
            if version_matches(
                version, code, ctx.config, ctx.store, ctx.signatures, ctx.track_versions
            ):
                found.append(version)
        return found

    def _outputs_current(self, version: Version) -> bool:
        """Are the version's outputs still its reactor's? (Not once another reactor, since
        renamed or deleted, sent one of them.)"""
        ingredients, reactor_id = self.ctx.store.ingredients, version.record.id
        return all(
            o.name not in ingredients or ingredients[o.name].producer == reactor_id
            for o in version.outputs
        )

    def _start_run(self, reactor: Reactor, reasons: list[str]) -> None:
        pipe = Pipework(reactor.name, self.ctx.store, self.ctx.config)
        task = _Task(reactor, "run", start_reactor(reactor.func, pipe, pipe.config), reasons)
        task.pipe = pipe
        pipe.on_send = lambda sent: self._sent(task, sent)
        pipe.on_progress = lambda report: self._emit(
            EventType.reactor_progress, reactor, **report.fields()
        )
        self.status[reactor.id] = "running"
        self.ready.append(task)

    def _note_subreactor(self, task: _Task, func: Callable[..., Any]) -> None:
        if task.pipe is not None and func not in task.pipe.touched.subreactors:
            task.pipe.touched.subreactors.append(func)
        self._emit(EventType.subreactor_started, task.reactor, subreactor=func.__name__)

    def _sent(self, task: _Task, sent: Sent) -> Sent:
        """A reactor sent an ingredient: waiters may go on at once (unless another reactor's
        code sends it too: raised in the sender, at its `send`)."""
        others = self._code_senders(sent.name, besides=task.reactor)
        if others:
            raise _ambiguous(sent.name, [task.reactor, *others])
        if sent.payload.done() and sent.payload.wait().fingerprint is None:
            # out-of-core data is not hashed: its fingerprint is its provenance
            fingerprint = hash_bytes(self._provenance(task), sent.name)
            payload = replace(sent.payload.wait(), fingerprint=fingerprint)
            sent = replace(sent, payload=PendingWrite.completed(sent.name, payload))
        available = _Available(sent=sent, store=self.ctx.store, producer=task.reactor)
        self._make_available(sent.name, available)
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
        reasons = self._early_cutoff(match)
        version = store.versions[(reactor.id, version_key(match))]
        if store.reactors.get(reactor.id) is not match or not self._outputs_current(version):
            store.restore(version)
            why = "; ".join(task.reasons) or "inputs changed back"
            reasons = [f"restored an earlier result ({why})"]
        self.status[reactor.id] = "cached"
        self.decisions[reactor.id] = Decision(reactor.name, reactor.id, "cached", reasons)
        for name in match.outputs:
            record = store.ingredients[name]
            now = self.value_code.fingerprint(record)  # here: the writer thread may read it
            available = _Available(record=record, producer=reactor, _computed=now)
            self._make_available(name, available)
        self._emit(EventType.reactor_cached, reactor, reasons=reasons)

    def _early_cutoff(self, record: ReactorRecord) -> list[str]:
        """Why a reactor is served although a producer of its inputs re-ran in this run: what
        it sent is identical (early cutoff)."""
        remade = [
            name
            for name in record.inputs
            if (available := self.available.get(name)) is not None and available.sent is not None
        ]
        if not remade:
            return []
        names = ", ".join(f"'{name}'" for name in remade)
        inputs = "input" if len(remade) == 1 else "inputs"
        return [f"{inputs} {names} unchanged (early cutoff)"]

    def _finish_run(self, task: _Task) -> None:
        pipe, reactor = task.pipe, task.reactor
        assert pipe is not None
        if pipe.touched.allocated:
            names = ", ".join(f"'{n}'" for n in sorted(pipe.touched.allocated))
            self._fail(task, AllocationError(
                f"Reactor '{reactor.name}' allocated {names} but never sent it. "
                "Commit it with pipe.send(name, handle) before the reactor ends."
            ))  # fmt: skip
        pipe._release_temporary()
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
        raise reactor_failed_error(
            f"Reactor '{reactor.name}' failed: {message}", reactor.name, exc
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
        raise self._stuck_error()

    def _discover(self) -> bool:
        """Start one reactor that might send an awaited ingredient (new or changed ones, or one
        that sent it before): a new one runs; one with stored results is checked, since an
        earlier result may serve (an undone rename or edit)."""
        awaited = set(self.waiters)
        for reactor in self.ctx.reactors.values():
            if reactor.id in self.status:
                continue
            record = self.ctx.store.reactors.get(reactor.id)
            if record is None:
                self.tried.append(reactor.name)
                self._start_run(reactor, self._static_reasons(reactor))
                return True
            code = self._code(reactor, record.subreactors)
            if code_changes(record, code, self.ctx.track_versions) or awaited & set(record.outputs):
                self.tried.append(reactor.name)
                self._start_check(reactor)
                return True
        return False

    def _drop_waiter(self, task: _Task) -> None:
        for name, tasks in list(self.waiters.items()):
            if task in tasks:
                tasks.remove(task)
                if not tasks:
                    del self.waiters[name]
        task.gen.close()

    def _stuck_error(self) -> Exception:
        """Why nothing can go on: a reactor waiting for its own output, reactors waiting for
        each other, or an ingredient nobody sends."""
        waiting: dict[str, tuple[Reactor, str]] = {}
        for name, tasks in self.waiters.items():
            for task in tasks:
                waiting.setdefault(task.reactor.id, (task.reactor, name))
        for reactor, name in waiting.values():
            if name in send_candidates(reactor.func) and name in confirmed_sends(reactor.func):
                return DependencyCycleError(
                    f"Reactor '{reactor.name}' receives ingredient '{name}', which it sends "
                    "itself, so it would wait for ever. Receive it only after sending it, or "
                    "have another reactor send it."
                )
        cycle = self._wait_cycle(waiting)
        if cycle:
            detail = ", ".join(
                f"'{r.name}' waits for '{waiting[r.id][1]}' (sent by '{s.name}')"
                for r, s in zip(cycle, cycle[1:] + cycle[:1], strict=True)
            )
            return DependencyCycleError(
                f"Reactors wait for each other: {detail}. Break the cycle so that one of them "
                "does not receive what another sends."
            )
        unsent = [(r, n) for r, n in waiting.values() if not self._known_senders(n)]
        reactor, name = (unsent or list(waiting.values()))[0]
        tried = ", ".join(self.tried) or "none"
        return IngredientNotFoundError(
            f"Reactor '{reactor.name}' waits for ingredient '{name}', but no reactor sends it "
            f"(tried: {tried}). Check the name, or add the reactor that sends it with "
            "plant.add_reactors(...)."
        )

    def _wait_cycle(self, waiting: dict[str, tuple[Reactor, str]]) -> list[Reactor]:
        """Waiting reactors each waiting for what the next one sends, if there are such."""
        follows = {
            rid: [s for s in self._known_senders(name) if s.id in waiting and s.id != rid]
            for rid, (_reactor, name) in waiting.items()
        }
        for start in waiting:
            path, seen = [start], {start}
            while follows[path[-1]]:
                following = follows[path[-1]][0].id
                if following in seen:
                    return [waiting[rid][0] for rid in path[path.index(following) :]]
                path.append(following)
                seen.add(following)
        return []

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
    candidates: Iterable[ReactorRecord], changed: Callable[[str], str]
) -> Generator[_Await, str | None, tuple[ReactorRecord | None, list[str]]]:
    """The first candidate whose recorded inputs all have their recorded fingerprints now."""
    first_reasons: list[str] = []
    for record in candidates:
        for name, fingerprint in record.inputs.items():
            current = yield _Await(name)
            if current != fingerprint:
                first_reasons = first_reasons or [changed(name)]
                break
        else:
            return record, []
    return None, first_reasons


def _ambiguous(name: str, reactors: list[Reactor]) -> AmbiguousIngredientError:
    names = " and ".join(f"'{r.name}'" for r in reactors[:2])
    more = f" (and {len(reactors) - 2} more)" if len(reactors) > 2 else ""
    return AmbiguousIngredientError(
        f"Ingredient '{name}' is sent by two reactors, {names}{more}: what its consumers get "
        "would depend on which ran last. Give one of them another name."
    )
