"""One run of the plant: drive reactor generators, check cached ones, find producers on demand.

Every unit of work is a *task* driving a generator: a `run` task executes a reactor, a `check`
task verifies a cached reactor by awaiting its recorded inputs. Both suspend on an ingredient
that is not available yet; whoever makes it available wakes them. This keeps "which reactor is
ready" separate from "how a reactor runs".
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import traceback
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from ..config import ConfigBase
from ..errors import (
    AllocationError,
    AmbiguousIngredientError,
    DependencyCycleError,
    IngredientNotFoundError,
    PayloadDamagedError,
    PlantError,
    RunCancelled,
    StoreError,
    reactor_failed_error,
)
from ..events import EventBus, EventType, PlantEvent
from ..fingerprint import hash_bytes
from ..reactor import function_id, needs_main_thread
from ..signatures.origins import is_user_file
from ..signatures.sends import confirmed_sends, send_candidates
from ..signatures.signature import SignatureComputer
from ..store.plant_store import PlantStore
from ..store.records import IngredientRecord, ReactorRecord
from ..store.writer import PendingWrite
from .executors.base import (
    MAIN,
    Failed,
    Finished,
    JobEvent,
    Need,
    Output,
    Progress,
    ReactorJob,
    Started,
    Stepped,
    Subreactor,
)
from .executors.base import Sent as SentRemotely
from .executors.driver import Call, running_reactor
from .executors.inline import InlineExecutor
from .judge import TARGET, Decision, Judge, version_key
from .pipework import Pipework, Sent
from .recorder import Recorder

__all__ = ["Reactor", "Run", "RunContext", "failure_message", "running_reactor"]

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


_job_numbers = itertools.count(1)  # job ids stay unique across runs sharing an executor
# How long the coordinator waits for a job's event before it looks at should_stop again.
_STOP_POLL_SECONDS = 0.05


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
    kind: str  # "run" (a reactor, driven by the executor) or "check" (driven here)
    gen: Generator[Any, Any, Any] | None  # of a check
    reasons: list[str]
    pipe: Pipework | None = None
    job: ReactorJob | None = None  # of a run
    awaiting: tuple[str, ...] = ()  # names it is parked on
    multi: bool = False  # parked on a tuple of receives
    answers: dict[str, Any] = field(default_factory=dict)  # awaited names already available
    submitted: bool = False
    queued: bool = False  # in `ready`
    started: bool = False
    started_at: float = 0.0
    elapsed: float = 0.0
    where: str = MAIN
    # A remote reactor waiting, before it is submitted, for its recorded inputs (see _gated);
    # `ungated` once it is started without them; what it was given as prefetch.
    gated: bool = False
    ungated: bool = False
    prefetched: dict[str, _Available] = field(default_factory=dict)
    here: bool = True  # runs in this process (values, sends through its pipe), else remotely


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
    # Where reactors run (see pyplantd.run.executors); the caller opens and closes it.
    executor: Any = field(default_factory=InlineExecutor)


class Run:
    def __init__(
        self, ctx: RunContext, targets: list[Reactor], targets_always_run: bool = True
    ) -> None:
        self.ctx = ctx
        self.targets = targets
        self.targets_always_run = targets_always_run
        self.executor = ctx.executor
        self.jobs: dict[str, _Task] = {}  # submitted and not ended
        self.parallel = ctx.executor.slots > 1
        self.available: dict[str, _Available] = {}
        self.status: dict[str, str] = {}
        self.decisions: dict[str, Decision] = {}
        self.ready: list[_Task] = []
        self.waiters: dict[str, list[_Task]] = {}
        self.providing: set[str] = set()
        self.tried: list[str] = []
        self.judge = Judge(ctx.store, ctx.config, ctx.signatures, ctx.track_versions, ctx.forced)
        self.recorder = Recorder(ctx.store, self.judge)
        self.write_errors = self.recorder.write_errors
        self._send_index: dict[str, list[Reactor]] | None = None

    # -- main loop --------------------------------------------------------------------------
    def execute(self) -> list[Decision]:
        outer = self.ctx.store.code_of  # a run started from a reactor of another run
        self.ctx.store.code_of = self.judge.code_of  # sent values' fingerprints cover it
        elsewhere = not self.executor.in_process
        if elsewhere:  # payloads written by workers are unreferenced until their commit
            self.ctx.store.job_started()
        try:
            for target in reversed(self.targets):
                if self.targets_always_run:
                    self._start_run(target, self._target_reasons(target))
                else:  # after a save, targets follow the same rules as every other reactor
                    self._start_check(target)
            self._loop()
        finally:
            try:
                self._abandon_unfinished()
            finally:
                self.recorder.wait()  # finished reactors stay cached even if the run failed
                self.ctx.store.drop_unwritten()
                self.ctx.store.code_of = outer
                if elsewhere:  # what lost or killed workers left: gone, unless jobs still run
                    self.ctx.store.job_ended()
                    self.ctx.store.sweep()
        if self.write_errors:
            raise self.write_errors[0]
        return list(self.decisions.values())

    def _loop(self) -> None:
        """Hand ready reactors to the executor and handle what comes back, until every target
        is done. Check tasks (comparing fingerprints) run here, never in the executor."""
        while True:
            events = self.executor.events(0)
            if events:
                self._handle(events)
                continue
            if self.ready:
                self._dispatch(self.ready.pop())
                continue
            running = sum(1 for t in self.jobs.values() if not t.awaiting)
            if running:
                if running < self.executor.slots and self._fill_slot():
                    continue
                self._handle(self.executor.events(_STOP_POLL_SECONDS))
                if self.ctx.should_stop():
                    raise RunCancelled()
                continue
            if not self.waiters:
                return
            self._unstick()

    def _fill_slot(self) -> bool:
        """A parallel executor has a free slot while reactors run: if an awaited ingredient
        has no producer going yet, start the next reactor that might send it (as _unstick
        would once everything waits), rather than leave the slot idle."""
        if not any(name not in self.providing for name in self.waiters):
            return False
        return self._discover()

    def _dispatch(self, task: _Task) -> None:
        task.queued = False
        if task.kind == "check":
            self._step_check(task)
            return
        assert task.job is not None
        if not task.submitted:
            if not task.here and self._gated(task):
                return
            task.submitted = True
            self.jobs[task.job.job_id] = task
            self.executor.submit(task.job)
            return
        if not task.awaiting:
            return  # woken twice: answered already
        answers = self._gather(task)
        if answers is not None:
            self._emit(EventType.reactor_resumed, task.reactor)
            self.executor.answer(task.job.job_id, answers)

    def _gated(self, task: _Task) -> bool:
        """A reactor in another process that ran before starts once what it received last
        time is available, and gets those inputs with the job (one round trip, not one per
        receive): True while it waits for some. Only for inputs whose producers are going;
        one it no longer receives costs nothing but the wait (see _unstick)."""
        record = self.ctx.store.reactor(task.reactor.id)
        if record is None or task.ungated:
            return False
        waiting = [n for n in record.inputs if n not in self.available and n in self.providing]
        if waiting:
            task.gated = True
            self._wait(task, waiting[0])
            return True
        task.gated = False
        assert task.job is not None and task.pipe is not None
        for name in record.inputs:
            available = self.available.get(name)
            if available is None or name in task.job.prefetch:
                continue
            from . import remote  # a reactor in another process

            try:
                ref = remote.ref_for(self.ctx.store, name, available.sent, available.record)
            except PayloadDamagedError:
                continue  # asked for when received: repaired then
            task.job.prefetch[name] = ref
            task.prefetched[name] = available
        return False

    def _handle(self, events: list[JobEvent]) -> None:
        """Handle a batch of events. When one fails the run, the reactors of the batch that
        finished are still recorded (they stay cached), and then the failure is raised."""
        for index, event in enumerate(events):
            try:
                self._handle_one(event)
            except BaseException:
                for later in events[index + 1 :]:
                    if isinstance(later, Call):
                        later.refuse()
                    elif isinstance(later, Finished) and later.job_id in self.jobs:
                        task = self.jobs.pop(later.job_id)
                        task.elapsed = later.elapsed
                        with contextlib.suppress(PlantError):  # the run fails already
                            self._note_remote_finish(task, later)
                            self._finish_run(task)
                raise

    def _handle_one(self, event: JobEvent) -> None:
        task = self.jobs.get(event.job_id)
        if task is None:  # a job of an earlier, cancelled run sharing the executor
            if isinstance(event, Call):
                event.refuse()
            return
        if isinstance(event, Call):
            event.run()
        elif isinstance(event, Need):
            task.awaiting, task.multi, task.answers = event.names, event.multi, {}
            answers = self._gather(task, first=True)
            if answers is not None:
                self.executor.answer(event.job_id, answers)
        elif isinstance(event, SentRemotely):
            assert task.pipe is not None
            from . import remote  # a reactor in another process

            remote.note_params(task.pipe, event.params)
            for name in event.received:  # from its prefetch, by then (for provenance)
                if name in task.prefetched:
                    task.pipe._note_input(name, task.prefetched[name])
            sent = self._sent(task, remote.sent_from(event, self.ctx.store))
            task.pipe.touched.sent[sent.name] = sent
        elif isinstance(event, Finished):
            del self.jobs[event.job_id]
            task.elapsed = event.elapsed
            self._note_remote_finish(task, event)
            self._finish_run(task)
        elif isinstance(event, Failed):
            del self.jobs[event.job_id]
            task.elapsed = event.elapsed
            error = event.error or RuntimeError(f"{event.type}: {event.message}")
            if isinstance(error, RunCancelled):
                raise error
            self._fail(task, error)
        else:
            self._report(task, event)

    def _note_remote_finish(self, task: _Task, event: Finished) -> None:
        """What a reactor that ran in another process read and wrote, into its pipework."""
        if event.touched is None:
            return
        assert task.pipe is not None
        for name in event.touched[0].inputs:  # received from its prefetch
            if name in task.prefetched:
                task.pipe._note_input(name, task.prefetched[name])
        from . import remote  # a reactor in another process

        unsent = remote.note_finished(task.pipe, event.touched)
        if unsent:  # (the worker deleted them)
            self._fail(task, _unsent_allocations(task.reactor, unsent))

    def _report(self, task: _Task, event: JobEvent) -> None:
        """What a job tells as it goes (on its own thread for inline and main-thread jobs)."""
        if isinstance(event, Stepped):
            self.ctx.events.step(task.reactor.name)
        elif isinstance(event, Progress):
            self._emit(EventType.reactor_progress, task.reactor, **event.fields)
        elif isinstance(event, Started):
            task.started, task.started_at, task.where = True, event.at, event.where
            self._emit(
                EventType.reactor_started, task.reactor, func=task.reactor.func, where=event.where
            )
        elif isinstance(event, Subreactor):
            name = event.subreactor_id.rpartition(":")[2].rpartition(".")[2]
            if not task.here and task.pipe is not None:
                from . import remote  # a reactor in another process

                remote.note_subreactor(task.pipe, event.subreactor_id)
            self._emit(EventType.subreactor_started, task.reactor, subreactor=name)
        elif isinstance(event, Output):  # printed on a worker: out here, as the reactor's
            from . import remote  # a reactor in another process

            remote.print_as(task.reactor.name, event.stream, event.text)

    def _step_check(self, task: _Task) -> None:
        """Drive a check task: it awaits fingerprints of recorded inputs, here."""
        assert task.gen is not None
        value: Any = None
        if task.awaiting:
            got, value = self._request(task, task.awaiting[0])
            if not got:
                return
        while True:
            if self.ctx.should_stop():
                raise RunCancelled()
            try:
                command = task.gen.send(value)
            except StopIteration as stop:
                self._finish_check(task, stop.value)
                return
            got, value = self._request(task, command.name)
            if not got:
                return

    # -- ingredients ------------------------------------------------------------------------
    def _request(self, task: _Task, name: str) -> tuple[bool, Any]:
        """A check's fingerprint of `name` if available; else suspend the check."""
        task.awaiting = ()
        available = self.available.get(name)
        if available is not None:
            try:
                return True, available.fingerprint()
            except StoreError as err:  # its payload could not be written: not comparable
                self.write_errors.append(err)
                return True, None
        task.awaiting = (name,)
        self._wait(task, name)
        self._provide(name)
        return False, None

    def _gather(self, task: _Task, first: bool = False) -> dict[str, Any] | None:
        """The values of the names a parked reactor awaits, once all are available; until then
        it waits for the missing ones, whose producers all start now."""
        missing = []
        for name in task.awaiting:
            if name not in task.answers:
                got, value = self._value_for(task, name)
                if got:
                    task.answers[name] = value
                else:
                    missing.append(name)
        if not missing:
            answers, task.awaiting, task.answers = task.answers, (), {}
            return answers
        if first and task.started:
            # a running reactor now waits (checks of cached ones are not shown)
            self._emit(EventType.reactor_waiting, task.reactor, ingredient=missing[0])
        for name in missing:
            self._wait(task, name)
        for name in missing:
            self._provide(name)
        return None

    def _value_for(self, task: _Task, name: str) -> tuple[bool, Any]:
        assert task.pipe is not None
        if name in task.pipe.touched.sent:
            own = task.pipe.touched.sent[name]
            if not task.here:
                from . import remote  # a reactor in another process

                return True, remote.ref_for(self.ctx.store, name, own, None)
            return True, self._value_of(_Available(sent=own))
        available = self.available.get(name)
        if available is None:
            return False, None
        try:
            if task.here:
                value = self._value_of(available)
            else:  # a reactor in another process reads the payload itself
                from . import remote  # a reactor in another process

                value = remote.ref_for(self.ctx.store, name, available.sent, available.record)
        except PayloadDamagedError as err:
            self._repair(name, err)
            return False, None
        task.pipe._note_input(name, available)
        return True, value

    def _wait(self, task: _Task, name: str) -> None:
        waiting = self.waiters.setdefault(name, [])
        if task not in waiting:
            waiting.append(task)

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
            if not waiter.queued:
                waiter.queued = True
                self.ready.append(waiter)

    def _provide(self, name: str) -> None:
        """Start whatever can produce `name`: its recorded producer, checked or re-run."""
        if name in self.providing:
            return
        senders = self._code_senders(name)
        if len(senders) > 1:  # whatever ran before, a consumer's value would be a guess
            raise _ambiguous(name, senders)
        record = self.ctx.store.ingredient(name)
        producer = self.ctx.reactors.get(record.producer) if record else None
        if producer is None:
            if self.parallel:
                self._start_code_sender(name)
            return  # unknown: _unstick tries new reactors when nothing else can go on
        state = self.status.get(producer.id)
        if state in ("checking", "running"):
            self.providing.add(name)
        elif state is None:
            self.providing.add(name)
            self._start_check(producer)

    def _start_code_sender(self, name: str) -> None:
        """Eager discovery (parallel executors): the one reactor whose code sends `name`
        starts now, as _discover would start it once everything waits, so that the producers
        of several awaited names run together on a first run."""
        senders = self._code_senders(name, confirm=True)
        if len(senders) != 1 or senders[0].id in self.status:
            return
        reactor = senders[0]
        self.providing.add(name)
        self.tried.append(reactor.name)
        if self.ctx.store.reactor(reactor.id) is None:
            self._start_run(reactor, self.judge.static_reasons(reactor))
        else:
            self._start_check(reactor)

    def _repair(self, name: str, err: PayloadDamagedError) -> None:
        """A stored payload is bad: forget it and let its producer run again."""
        logger.warning("%s Its producer will run again.", err)
        record = self.ctx.store.ingredient(name)
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
        record = self.ctx.store.ingredient(name)
        recorded = self.ctx.reactors.get(record.producer) if record else None
        return [*senders, recorded] if recorded and recorded not in senders else senders

    # -- starting and checking reactors -----------------------------------------------------
    def _target_reasons(self, target: Reactor) -> list[str]:
        return [TARGET, *self.judge.static_reasons(target)]

    def _start_check(self, reactor: Reactor) -> None:
        """Serve the reactor's stored result if its inputs still match; else an earlier result
        that matches the present (an undone edit); else run it."""
        reasons = self.judge.static_reasons(reactor)
        record = self.ctx.store.reactor(reactor.id)
        current = [record] if record is not None and not reasons else []
        # looked at only if `current` fails. Never for a target: its side effects (a plot, a file
        # it writes) show the version that ran last, and restoring another would leave them so.
        earlier = self.judge.restorable_records(reactor) if reactor not in self.targets else ()
        if not current and not self.ctx.store.versions_of(reactor.id):
            self._start_run(reactor, reasons)
            return
        self.status[reactor.id] = "checking"
        candidates = itertools.chain(current, earlier)
        checks = _match_inputs(candidates, self.judge.input_changed)
        self.ready.append(_Task(reactor, "check", checks, reasons))

    def _start_run(self, reactor: Reactor, reasons: list[str]) -> None:
        pipe = Pipework(reactor.name, self.ctx.store, self.ctx.config)
        task = _Task(reactor, "run", None, reasons, pipe=pipe)
        job_id = f"{reactor.name}#{next(_job_numbers)}"
        record = self.ctx.store.reactor(reactor.id)
        task.job = ReactorJob(
            job_id, reactor.id, reactor.name, reactor.func, self.ctx.config,
            placement=MAIN if reactor in self.targets or needs_main_thread(reactor.func) else None,
            last_duration=record.duration if record is not None else None, pipe=pipe,
            should_stop=self.ctx.should_stop, report=lambda event: self._report(task, event),
            on_abandon=lambda: self.ctx.store.discard(pipe._abandon()),
        )  # fmt: skip
        task.here = self.executor.in_process or self.executor.placed_here(task.job)
        if not task.here:
            task.job.store = self.ctx.store
        call = self.executor.call
        pipe.on_send = lambda sent: call(lambda: self._sent(task, sent), job_id)
        self.status[reactor.id] = "running"
        self.ready.append(task)
        if self.parallel:
            self._start_recorded_producers(reactor)

    def _start_recorded_producers(self, reactor: Reactor) -> None:
        """Gating from records: the producers of what the reactor received last time start now,
        with it, rather than one at a time as it asks (in parallel executors only: inline keeps
        the order it always had)."""
        record = self.ctx.store.reactor(reactor.id)
        for name in record.inputs if record is not None else ():
            if name not in self.available:
                # ambiguous: raised where the reactor asks for it, if it still does
                with contextlib.suppress(AmbiguousIngredientError):
                    self._provide(name)

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
        params = self.judge.param_states(touched.params)
        inputs = {name: source.fingerprint() for name, source in touched.inputs.items()}
        return hash_bytes(self.judge.code(task.reactor, subs).digest, repr(params), repr(inputs))

    # -- endings ----------------------------------------------------------------------------
    def _finish_check(self, task: _Task, result: tuple[ReactorRecord | None, list[str]]) -> None:
        match, input_reasons = result
        reactor, store = task.reactor, self.ctx.store
        if match is None:
            self._start_run(reactor, task.reasons or input_reasons)
            return
        reasons = self._early_cutoff(match)
        if store.reactor(reactor.id) is not match or not self.judge.outputs_current(match):
            store.restore(store.version(reactor.id, version_key(match)))  # decoded only here
            why = "; ".join(task.reasons) or "inputs changed back"
            reasons = [f"restored an earlier result ({why})"]
        self.status[reactor.id] = "cached"
        self.decisions[reactor.id] = Decision(reactor.name, reactor.id, "cached", reasons)
        for name in match.outputs:
            record = store.ingredient(name)
            assert record is not None  # the version's outputs are current (outputs_current)
            now = self.judge.stored_fingerprint(record)  # here: the writer thread may read it
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
            self._fail(task, _unsent_allocations(reactor, list(pipe.touched.allocated)))
        try:
            pipe._seal()  # allocations of PyPlant-interface specs: stored as the reactor left them
        except Exception as exc:
            self._fail(task, exc)
        pipe._release_temporary()
        self.recorder.commit_later(reactor, pipe.touched, task.elapsed)
        self.status[reactor.id] = "ran"
        self.decisions[reactor.id] = Decision(
            reactor.name,
            reactor.id,
            "ran",
            task.reasons,
            task.elapsed,
            task.started_at,
            task.where,
        )
        self._emit(EventType.reactor_finished, reactor, duration=task.elapsed, where=task.where)

    def _fail(self, task: _Task, exc: BaseException) -> NoReturn:
        """Record the reactor as failed, then raise ReactorFailedError, or the exception itself
        when it ends the process (sys.exit, KeyboardInterrupt) and this run lets it."""
        reactor = task.reactor
        self.status[reactor.id] = "failed"
        if task.pipe is not None:
            for name in task.pipe.touched.sent:
                self.available.pop(name, None)
            self.ctx.store.discard(task.pipe._abandon())
        ends_process = isinstance(exc, SystemExit | KeyboardInterrupt)
        message = failure_message(exc, with_place=not isinstance(exc, Exception))
        self.decisions[reactor.id] = Decision(
            reactor.name, reactor.id, "failed", [*task.reasons, message], task.elapsed,
            task.started_at, task.where if task.started else "",
        )  # fmt: skip
        self._emit(EventType.reactor_failed, reactor, error=message, exception=exc)
        if ends_process and not self.ctx.exits_are_failures:
            raise exc
        raise reactor_failed_error(
            f"Reactor '{reactor.name}' failed: {message}", reactor.name, exc
        ) from exc

    def _abandon_unfinished(self) -> None:
        """After a failure or a cancel: stop the reactors still going (their own cleanup runs:
        finally, with) and delete what they sent uncommitted. A reactor running on another
        thread stops at its next yield and cleans up there."""
        checks = [t for t in self.ready if t.kind == "check"]
        checks += [t for waiting in self.waiters.values() for t in waiting if t.kind == "check"]
        for task in {id(t): t for t in checks}.values():
            assert task.gen is not None
            task.gen.close()  # compares fingerprints only: nothing to clean
        for task in self.jobs.values():
            assert task.pipe is not None
            task.pipe.stopped = True
        self.executor.cancel(list(self.jobs))
        self.jobs.clear()
        self.ready.clear()
        self.waiters.clear()

    # -- when nothing is ready --------------------------------------------------------------
    def _unstick(self) -> None:
        gated = [t for ts in self.waiters.values() for t in ts if t.gated]
        if gated:  # a recorded input is not coming: start them, they ask for what they need
            for name, tasks in list(self.waiters.items()):
                self.waiters[name] = [t for t in tasks if not t.gated]
                if not self.waiters[name]:
                    del self.waiters[name]
            for task in gated:
                task.gated, task.ungated, task.queued = False, True, True
                self.ready.append(task)
            return
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
            record = self.ctx.store.reactor(reactor.id)
            if record is None:
                self.tried.append(reactor.name)
                self._start_run(reactor, self.judge.static_reasons(reactor))
                return True
            if self.judge.code_changed(reactor, record) or awaited & set(record.outputs):
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
        assert task.gen is not None  # a check
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


def _unsent_allocations(reactor: Reactor, names: list[str]) -> AllocationError:
    listed = ", ".join(f"'{n}'" for n in sorted(names))
    return AllocationError(
        f"Reactor '{reactor.name}' allocated {listed} but never sent it. "
        "Commit it with pipe.send(name, handle) before the reactor ends."
    )


def _ambiguous(name: str, reactors: list[Reactor]) -> AmbiguousIngredientError:
    names = " and ".join(f"'{r.name}'" for r in reactors[:2])
    more = f" (and {len(reactors) - 2} more)" if len(reactors) > 2 else ""
    return AmbiguousIngredientError(
        f"Ingredient '{name}' is sent by two reactors, {names}{more}: what its consumers get "
        "would depend on which ran last. Give one of them another name."
    )
