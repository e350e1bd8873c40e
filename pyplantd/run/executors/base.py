"""The executor interface: where and how a reactor's code runs, and the events it reports back.

The coordinator (scheduler.Run) decides what runs and records what ran; an executor only drives
jobs it is given and reports small events. Depends on nothing in pyplantd but the config type,
so that any executor (in-process or remote) can build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ...config import ConfigBase
    from ..pipework import Pipework

# Where a job ran, as events and `pyplant status` show it: the coordinator's main thread, a
# thread of the coordinating process, or a worker's address (e.g. "tcp://127.0.0.1:40211").
MAIN = "main"
THREAD = "thread"


@dataclass(frozen=True)
class IngredientRef:
    """What crosses a process boundary instead of a value: a durable payload in the plant dir.

    `path` is relative to the plant dir; the payload was written, fsynced and renamed before
    the ref was made, so whoever holds it can read it."""

    name: str
    type: str
    path: str
    size: int
    fingerprint: str | None
    checksum: str | None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReactorJob:
    """One execution of one reactor, as the coordinator hands it to an executor.

    An in-process executor drives `pipe` (built by the coordinator, whose `on_send` hook reports
    sends synchronously); a remote one builds its own pipework on the worker from `func` and
    `config` and reports each send as a `Sent` event carrying an `IngredientRef`."""

    job_id: str  # unique within the executor's life: run + reactor + attempt
    reactor_id: str
    name: str
    func: Callable[..., Any]
    config: ConfigBase
    # Inputs given before the reactor asks (gating from its record): name -> value in process,
    # name -> IngredientRef for remote executors.
    prefetch: dict[str, Any] = field(default_factory=dict)
    # MAIN: must run on the coordinator's main thread (targets, reactors that draw); None: anywhere.
    placement: str | None = None
    # How long its code took when it last ran (None: never): executors that can run a job
    # here or far away keep short ones here (see DaskExecutor.placed_here).
    last_duration: float | None = None
    pipe: Pipework | None = None  # in-process executors only
    # Polled at each yield of the reactor: True stops it there (cooperative cancel).
    should_stop: Callable[[], bool] = lambda: False
    # In-process executors call these on the job's own thread: `report` with Started,
    # Subreactor, Progress and Stepped events as they happen (a thread executor may queue them
    # for events() instead); `on_abandon` once a cancelled job's generator is closed (it
    # discards what the job sent uncommitted).
    report: Callable[[JobEvent], None] | None = None
    on_abandon: Callable[[], None] | None = None
    # Remote executors: the plant's store (PlantStore), for its plant dir, its custom ingredient
    # types and the count of jobs whose workers may still write payloads (no sweep meanwhile).
    store: Any = None


# -- events, executor -> coordinator: small and picklable (values only for in-process jobs) ----
@dataclass(frozen=True)
class JobEvent:
    job_id: str


@dataclass(frozen=True)
class Started(JobEvent):
    """The reactor's code starts, at `at` (time.time()), on `where` (MAIN, THREAD or a worker)."""

    where: str
    at: float


@dataclass(frozen=True)
class Need(JobEvent):
    """The job is parked on a receive of `names` (several for a tuple of receives); answer it with
    Executor.answer(job_id, {name: value-or-ref, ...}) once all are available."""

    names: tuple[str, ...]
    multi: bool = False  # a tuple of receives: the answer is given back as a tuple


@dataclass(frozen=True)
class Sent(JobEvent):
    """A remote job sent an ingredient; it is durable in the plant dir. (In-process jobs report
    sends through their pipework's `on_send` at once, never as this event.)"""

    ref: IngredientRef
    # What it had read by then (an out-of-core value's fingerprint is its provenance): params,
    # and inputs it received from its prefetch (those answered later the coordinator knows).
    params: tuple[str, ...] = ()
    received: tuple[str, ...] = ()


@dataclass(frozen=True)
class Subreactor(JobEvent):
    subreactor_id: str


@dataclass(frozen=True)
class Output(JobEvent):
    """A line the job's code printed or logged (remote jobs; in-process output goes to the
    process's own streams, prefixed per job)."""

    stream: str  # "stdout", "stderr" or "log"
    text: str


@dataclass(frozen=True)
class Progress(JobEvent):
    fields: dict[str, Any]


@dataclass(frozen=True)
class Stepped(JobEvent):
    """The reactor's code ran up to a yield (PyPlant's reactor_step); in-process jobs only."""


@dataclass(frozen=True)
class Finished(JobEvent):
    """The reactor ended. `elapsed` is the time its own code took (waits excluded).
    `touched` is the remote job's record of what it read and wrote (in-process: in the pipe)."""

    elapsed: float
    where: str
    touched: Any = None


@dataclass(frozen=True)
class Failed(JobEvent):
    """The reactor's code raised. In process, `error` is the exception itself (a RunCancelled
    when the job stopped at a yield because the run was cancelled); remotely, the exception may
    not unpickle, so `type`, `message` and `traceback` (trimmed to the user's frames) carry it."""

    elapsed: float
    where: str
    error: BaseException | None = None
    type: str = ""
    message: str = ""
    traceback: str = ""


@dataclass(frozen=True)
class Lost(JobEvent):
    """The job's worker went away (killed, restarted) with the job running or parked."""

    reason: str = ""


class Executor(Protocol):
    """Runs jobs and reports events; never decides what runs or records anything.

    The coordinator calls every method from its own (main) thread. Events for one job come in
    order: Started, then any of Need/Sent/Subreactor/Output/Progress, then exactly one of
    Finished, Failed or Lost; after Need the job reports nothing until it is answered."""

    name: str  # the choice it was opened from, as users write it ("inline", "threads:4", ...)
    in_process: bool  # every job runs here: values by reference, sends through on_send
    slots: int  # how many jobs may run at once (1: the coordinator runs one at a time)

    def placed_here(self, job: ReactorJob) -> bool:
        """The job runs in this process: its pipework gets values and reports its sends
        through `on_send`, as `in_process` says for every job of an in-process executor."""

    def submit(self, job: ReactorJob) -> None:
        """Start the job (a MAIN job runs on the calling thread, maybe before this returns)."""

    def answer(self, job_id: str, inputs: dict[str, Any]) -> None:
        """Resume a job parked on Need with the values (in process) or refs of its names."""

    def cancel(self, job_ids: Collection[str], hard: bool = False) -> None:
        """Stop these jobs at their next yield (hard: now, at the cost of a worker restart).
        A cancelled job reports nothing more; what it had sent is the coordinator's to discard."""

    def events(self, timeout: float) -> list[JobEvent]:
        """The events since the last call, waiting up to `timeout` seconds for the first one."""

    def close(self) -> None:
        """Cancel what still runs and release threads, connections and clusters."""
