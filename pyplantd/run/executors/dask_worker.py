"""The worker side of the dask executor: what runs inside a dask worker process.

A job runs the shared job driver until the reactor parks on a receive it cannot answer, or ends;
the live generator then stays in this process's table of parked jobs (generators cannot be
pickled) and the task returns small events. Sent values are written here, durably, through a
PayloadStore (no lock, no manifest); only references leave the process. Never imports the plant,
the scheduler or the manifest, and never needs `distributed` to be imported by the coordinator.
"""

from __future__ import annotations

import contextlib
import copy
import io
import pickle
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config import ConfigBase
from ...errors import PayloadDamagedError, RunCancelled
from ...reactor import start_reactor
from ...signatures.origins import is_user_file
from ...store.payload_store import PayloadStore
from ...store.payloads import Payload
from ...store.records import IngredientRecord
from ...store.specs import IngredientTypeSpec
from ...store.writer import PendingWrite
from ..pipework import Pipework, _delete_allocation
from ..pipework import Sent as PipeSent
from .base import (
    Failed,
    Finished,
    IngredientRef,
    JobEvent,
    Lost,
    Need,
    Output,
    Progress,
    ReactorJob,
    Sent,
    Started,
    Subreactor,
)
from .driver import DrivenJob, abandon, drive

# Events that only tell how a job goes: streamed to the coordinator while the job runs (see
# _Outbox), and also returned with the step that made them; each is numbered in its attempt so
# that the coordinator shows it once, in order.
TOLD = (Started, Output, Progress, Subreactor)


@dataclass(frozen=True)
class RemoteJob:
    """A job as it travels to a worker: code (pickled by value for the user's modules), the
    config without its coordinator-side hooks, and references to inputs; never a value."""

    job_id: str
    reactor_id: str
    name: str
    func: Callable[..., Any]
    config: ConfigBase
    plant_dir: str
    prefetch: dict[str, IngredientRef]
    specs: list[IngredientTypeSpec] = field(default_factory=list)  # the plant's custom types
    memory_budget: int = 2**30  # larger inputs (not mapped arrays) are read out of core
    attempt: int = 0  # the coordinator's count of restarts (its streamed events say it)
    topic: str = ""  # the dask event topic its told events are streamed on ("": not streamed)


@dataclass(frozen=True)
class RemoteTouched:
    """What a remote job read and wrote, for its record (the coordinator knows the fingerprints
    of the inputs: it gave their references)."""

    inputs: list[str]  # names the reactor received, in order
    params: list[str]
    files: dict[str, str]  # tracked file -> fingerprint
    sent: list[str]


@dataclass(frozen=True)
class Failure:
    """A reactor's exception as text (an exception object may not unpickle on the coordinator):
    its type, message, the innermost place in the user's code, the trimmed traceback."""

    type: str
    message: str
    path: str = ""
    line: int = 0
    column: int = 0
    traceback: str = ""


@dataclass
class _Job:
    remote: RemoteJob
    run: DrivenJob
    pipe: Pipework
    payloads: PayloadStore
    events: list[JobEvent]
    received: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # payload paths, deleted if it is abandoned
    told: int = 0  # told events so far in this attempt (the next one's number)
    worker: Any = None  # the dask worker it runs on (None: not on a worker, nothing streamed)

    def tell(self, event: JobEvent) -> None:
        """An event for the coordinator: returned with this step; a told one also streamed."""
        self.events.append(event)
        if isinstance(event, TOLD):
            if self.worker is not None and self.remote.topic:
                _outbox.put(self, self.told, event)
            self.told += 1


# This process's parked jobs and cancelled job ids (a worker runs several tasks' threads).
_parked: dict[str, _Job] = {}
_cancelled: set[str] = set()
_lock = threading.Lock()


# What a task returns: the address of the worker that ran it, the job's events, and the number
# (in its attempt) of the first told event among them.
Report = tuple[str, list[JobEvent], int]


def start(pickled: bytes) -> Report:
    """Run a job (a pickled RemoteJob) from its start until it parks or ends; its events,
    Started first."""
    remote: RemoteJob = pickle.loads(pickled)
    where, worker = _worker_address(), _this_worker()
    payloads = PayloadStore(Path(remote.plant_dir), create=False)
    payloads.register_specs(remote.specs)
    payloads.names_only = True  # the coordinator signs the code values name
    events: list[JobEvent] = []
    pipe = Pipework(remote.name, _WorkerStore(payloads), remote.config)  # type: ignore[arg-type]
    prefetch = _Inputs(remote.prefetch, payloads, remote.memory_budget)
    rjob = ReactorJob(
        remote.job_id, remote.reactor_id, remote.name, remote.func, pipe.config,
        prefetch=prefetch, pipe=pipe, should_stop=lambda: remote.job_id in _cancelled,
    )  # fmt: skip
    gen = start_reactor(remote.func, pipe, pipe.config)
    job = _Job(remote, DrivenJob(rjob, gen, where, events.append), pipe, payloads, events)
    job.worker, job.run.report = worker, job.tell
    prefetch.received = job.received
    pipe.on_send = lambda sent: _note_sent(job, sent)
    pipe.on_progress = lambda report: job.tell(Progress(remote.job_id, report.fields()))
    return where, _drive(job, None), 0


def resume(job_id: str, answers: dict[str, IngredientRef]) -> Report:
    """Go on with a job parked here; Lost when it is not (its worker died: this is another)."""
    where = _worker_address()
    with _lock:
        job = _parked.pop(job_id, None)
    if job is None:
        return where, [Lost(job_id, f"its worker is gone (the answer reached {where})")], 0
    job.events = []
    first = job.told
    values = {
        name: _load(ref, job.payloads, job.remote.memory_budget) for name, ref in answers.items()
    }
    job.received.extend(answers)
    return where, _drive(job, values), first


def cancel(job_ids: list[str]) -> int:
    """Mark jobs cancelled (a running one stops at its next yield) and close those parked here,
    deleting what they sent; returns how many were parked here."""
    closed = []
    with _lock:
        _cancelled.update(job_ids)
        for job_id in job_ids:
            job = _parked.pop(job_id, None)
            if job is not None:
                closed.append(job)
    for job in closed:
        _abandon(job)
    return len(closed)


def forget_cancelled(job_ids: list[str]) -> None:
    with _lock:
        _cancelled.difference_update(job_ids)


def parked_jobs() -> list[str]:
    """The ids of the jobs parked in this process (tests check that none is left)."""
    with _lock:
        return sorted(_parked)


def _drive(job: _Job, answer: dict[str, Any] | None) -> list[JobEvent]:
    job_id = job.remote.job_id
    out = _Lines(job_id, job.tell)
    try:
        with (
            contextlib.redirect_stdout(out.stream("stdout")),
            contextlib.redirect_stderr(out.stream("stderr")),
            _findable(job.remote.func),
        ):
            event = drive(job.run, answer)
    except RunCancelled:
        _abandon(job)
        return []
    finally:
        out.flush()
        _outbox.drop(job)  # what is not streamed yet goes with the step's result
    if isinstance(event, Need):
        with _lock:
            if job_id in _cancelled:  # cancelled while it ran: nobody will answer
                cancelled = True
            else:
                cancelled = False
                _parked[job_id] = job
        if cancelled:
            _abandon(job)
            return []
        return [*job.events, event]
    if isinstance(event, Finished):
        try:  # PyPlant-spec allocations it sent: stored now, by content, as in process
            job.pipe._seal()
        except Exception as exc:  # the spec's store failed: the reactor's failure
            event = Failed(job_id, event.elapsed, event.where, error=exc)
    job.payloads.close()
    if isinstance(event, Failed):
        _discard_allocations(job)
        failure = _failure(event.error)
        event = Failed(
            job_id, event.elapsed, event.where, None, failure.type, failure.message,
            _as_text(failure),
        )  # fmt: skip
        return [*job.events, event]
    if isinstance(event, Finished):
        touched = job.pipe.touched
        allocated = sorted(touched.allocated)  # never sent: the coordinator fails the reactor
        _discard_allocations(job)  # (and the files go now, here)
        record = RemoteTouched(
            list(job.received), list(touched.params), dict(touched.files), list(job.sent)
        )
        event = Finished(job_id, event.elapsed, event.where, (record, allocated))
    return [*job.events, event]


_ABSENT = object()


@contextlib.contextmanager
def _findable(func: Callable[..., Any]) -> Iterator[None]:
    """While the job runs: the classes and functions its code uses that came by value (their
    modules, the script or the user's helpers, do not exist here) are found under their module
    and name, so that a value naming them pickles by reference exactly as on the coordinator
    (and a received one unpickles)."""
    placed: list[tuple[str, str, Any]] = []  # module, name, what was there
    created: list[str] = []
    for obj in _by_value(getattr(func, "__globals__", {})):
        module_name, name = obj.__module__, obj.__qualname__
        module = sys.modules.get(module_name)
        if module is None:
            module = sys.modules[module_name] = types.ModuleType(module_name)
            created.append(module_name)
        elif module.__dict__.get(name, _ABSENT) is obj:
            continue
        placed.append((module_name, name, module.__dict__.get(name, _ABSENT)))
        setattr(module, name, obj)
    try:
        yield
    finally:
        for module_name, name, before in reversed(placed):
            module = sys.modules.get(module_name)
            if module is None:
                continue
            if before is _ABSENT:
                module.__dict__.pop(name, None)
            else:
                setattr(module, name, before)
        for module_name in created:
            sys.modules.pop(module_name, None)


def _by_value(names: dict[str, Any]) -> Iterator[Any]:
    """Top-level classes and functions among a function's globals (and in the modules among
    them that came by value), whose modules cannot be imported here."""
    for value in names.values():
        members = [value]
        if isinstance(value, types.ModuleType) and sys.modules.get(value.__name__) is not value:
            members = [v for v in vars(value).values() if _defined_in(v, value.__name__)]
        for member in members:
            if isinstance(member, type | types.FunctionType) and _unimportable(member):
                yield member


def _defined_in(value: Any, module_name: str) -> bool:
    return isinstance(value, type | types.FunctionType) and value.__module__ == module_name


def _unimportable(obj: Any) -> bool:
    qualname = getattr(obj, "__qualname__", "")
    if "." in qualname or "<" in qualname:
        return False  # nested: pickle could not name it anywhere
    module = sys.modules.get(obj.__module__)
    return module is None or module.__dict__.get(qualname, _ABSENT) is not obj


def _abandon(job: _Job) -> None:
    """A cancelled job: its generator closed, what it sent and allocated deleted."""
    with contextlib.suppress(Exception):
        abandon(job.run)
    job.payloads.remove(job.pipe._abandon())
    job.payloads.close()


def _discard_allocations(job: _Job) -> None:
    """What the reactor allocated and did not get stored (files, datasets, PyPlant-spec
    allocations, sent or not): deleted here, where they are."""
    touched = job.pipe.touched
    for _type_name, handle in [*touched.allocated.values(), *touched.sealing.values()]:
        with contextlib.suppress(Exception):  # the reactor failed already: delete the rest
            _delete_allocation(handle)
    touched.allocated.clear()
    touched.sealing.clear()
    job.pipe._release_temporary()


def _note_sent(job: _Job, sent: PipeSent) -> PipeSent:
    payload: Payload = sent.payload.wait()
    job.sent.append(payload.path)
    ref = IngredientRef(
        sent.name, sent.type, payload.path, payload.size, payload.fingerprint,
        payload.checksum, payload.meta,
    )  # fmt: skip
    received = tuple(name for name in job.received if name in job.remote.prefetch)
    job.events.append(Sent(job.remote.job_id, ref, tuple(job.pipe.touched.params), received))
    return sent


class _Inputs(dict[str, Any]):
    """Prefetched inputs, read from their payloads only when the reactor receives them (what
    it does not receive is not one of its inputs)."""

    def __init__(self, refs: dict[str, IngredientRef], payloads: PayloadStore, budget: int) -> None:
        super().__init__(refs)
        self.payloads, self.budget = payloads, budget
        self.received: list[str] = []

    def __getitem__(self, name: str) -> Any:
        ref = super().__getitem__(name)
        self.received.append(name)
        return _load(ref, self.payloads, self.budget)


def _load(ref: IngredientRef, payloads: PayloadStore, budget: int) -> Any:
    record = IngredientRecord(
        ref.name, "", ref.type, ref.fingerprint or "", ref.path, ref.size, dict(ref.meta), 0.0,
        ref.checksum or "",
    )  # fmt: skip
    if ref.type == "file":  # a file ingredient is its path, as the plant gives it
        if payloads.files.present(ref.path, ref.size) is None:  # (refuses another user's)
            raise PayloadDamagedError(
                f"Payload of ingredient '{ref.name}' ({ref.path}) is missing or has the wrong size."
            )
        return str(payloads.files.resolve(ref.path))
    return payloads.load(record, budget)


class _WorkerStore:
    """What a Pipework needs of a store, over a PayloadStore: every write is durable (data and
    name on disk) before `send` returns, so a reference to it can be reported at once."""

    def __init__(self, payloads: PayloadStore) -> None:
        self.payloads = payloads

    @property
    def custom_specs(self) -> list[IngredientTypeSpec]:
        return self.payloads.custom_specs

    def spec(self, type_name: str) -> IngredientTypeSpec:
        return self.payloads.spec(type_name)

    def write(self, name: str, type_name: str, value: Any) -> PendingWrite:
        return PendingWrite.completed(name, self.payloads.write(name, type_name, value))

    def write_uncached(self, name: str, type_name: str, value: Any) -> PendingWrite:
        payload = self.payloads.write_uncached(name, type_name, value)
        self.payloads.files.sync_names()
        return PendingWrite.completed(name, payload)

    def allocate_file(self, name: str, suffix: str = "") -> Path:
        return self.payloads.allocate_file(name, suffix)

    def allocate_hdf(self, name: str, shape: Any, dtype: Any, **options: Any) -> Any:
        return self.payloads.allocate_hdf(name, shape, dtype, **options)

    def write_allocated(
        self, name: str, type_name: str, allocation: Any, sent: Any
    ) -> PendingWrite:
        payload = self.payloads.write_allocated(name, type_name, allocation, sent)
        self.payloads.files.sync_names()
        return PendingWrite.completed(name, payload)

    def commit_file(self, name: str, temp: Path) -> tuple[PendingWrite, str]:
        payload, path = self.payloads.commit_file(name, temp)
        self.payloads.files.sync_names()
        return PendingWrite.completed(name, payload), path

    def commit_hdf(self, name: str, dataset: Any) -> tuple[PendingWrite, Any]:
        payload, handle = self.payloads.commit_hdf(name, dataset)
        self.payloads.files.sync_names()
        return PendingWrite.completed(name, payload), handle


class _Lines:
    """What the job's code prints, as Output events, one per line."""

    def __init__(self, job_id: str, tell: Callable[[JobEvent], None]) -> None:
        self.job_id, self.tell = job_id, tell
        self.streams: dict[str, _LineStream] = {}

    def stream(self, name: str) -> _LineStream:
        self.streams[name] = _LineStream(lambda text: self.tell(Output(self.job_id, name, text)))
        return self.streams[name]

    def flush(self) -> None:
        for stream in self.streams.values():
            stream.finish()


class _LineStream(io.TextIOBase):
    def __init__(self, emit: Callable[[str], None]) -> None:
        self.emit, self.pending = emit, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self.emit(line)
        return len(text)

    def finish(self) -> None:
        if self.pending:
            self.emit(self.pending)
            self.pending = ""


def _failure(exc: BaseException | None) -> Failure:
    """The exception as text, placed at the innermost frame of the user's code; the traceback
    of the user's own frames as `pyplantd run` prints one (terminal.report.user_traceback)."""
    if exc is None:
        return Failure("Error", "")
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if is_user_file(f.filename)]
    where = frames[-1] if frames else None
    lines = []
    for frame in frames:
        lines.append(f"  {frame.filename}:{frame.lineno}, in {frame.name}")
        if frame.line:
            lines.append(f"    {frame.line}")
    lines.append(f"{type(exc).__name__}: {exc}")
    column = (getattr(where, "colno", None) or 0) + 1 if where else 0
    return Failure(
        type(exc).__name__, str(exc), where.filename if where else "",
        where.lineno or 0 if where else 0, column, "\n".join(lines),
    )  # fmt: skip


def _as_text(failure: Failure) -> str:
    """The failure's place and trimmed traceback in one string (Failed.traceback): the first
    line is `path:line:column`, empty when the user's code is not on the traceback."""
    place = f"{failure.path}:{failure.line}:{failure.column}" if failure.path else ""
    return place + "\n" + failure.traceback


def named_code(args: tuple[Any, ...], filename: str) -> types.CodeType:
    """A code object as pickled, with the name of its file (see dask.pickle_job)."""
    return types.CodeType(*args).replace(co_filename=filename)


def bare_config(config: ConfigBase) -> ConfigBase:
    """A copy of the config without the hooks a coordinator-side view carries (they hold the
    coordinator's pipework, which must not travel)."""
    bare = copy.copy(config)
    for hook in ("_reader", "_root_reader", "_decided"):
        bare.__dict__.pop(hook, None)
    return bare


class _Outbox:
    """Told events of the jobs running in this process, sent to the coordinator in batches
    while they run (dask's event topics: one message on the worker's batched stream per job and
    interval, no round trip), so that a remote reactor's lines and progress show as they come,
    not when it parks or ends. A job's step takes back what was not sent yet (_drive)."""

    INTERVAL = 0.1  # seconds: a line shows this late at most, plus dask's own batching

    def __init__(self) -> None:
        self._pending: dict[int, tuple[_Job, int, list[JobEvent]]] = {}  # id(job) -> first, events
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def put(self, job: _Job, number: int, event: JobEvent) -> None:
        with self._lock:
            entry = self._pending.get(id(job))
            if entry is None:
                self._pending[id(job)] = (job, number, [event])
            else:
                entry[2].append(event)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._send_forever, name="pyplantd-job-events", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def drop(self, job: _Job) -> None:
        with self._lock:
            self._pending.pop(id(job), None)

    def _send_forever(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.INTERVAL)  # let a burst of lines gather into one message
            with self._lock:
                self._wake.clear()
                batches, self._pending = self._pending, {}
            for job, first, events in batches.values():
                message = {
                    "job": job.remote.job_id, "attempt": job.remote.attempt, "first": first,
                    "events": pickle.dumps(events, protocol=pickle.HIGHEST_PROTOCOL),
                }  # fmt: skip
                with contextlib.suppress(Exception):  # closing: the step's result has them
                    job.worker.log_event(job.remote.topic, message)


_outbox = _Outbox()


def _this_worker() -> Any:
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):
        return None


def _worker_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return "here"
