"""The job driver: step one reactor's generator up to its next receive or its end. Every
executor uses it, so a reactor behaves the same wherever it runs.

Also owns "which reactor is this thread running" (a ContextVar), for output prefixes and for
interrupting only the main thread's user code. Depends on the executor interface only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from ...errors import RunCancelled
from ...reactor import SubreactorStarted, function_id
from ..pipework import Receive
from .base import (
    Failed,
    Finished,
    JobEvent,
    Need,
    ReactorJob,
    Started,
    Stepped,
    Subreactor,
)

logger = logging.getLogger(__name__)

# The reactor whose code runs on this thread right now (each thread has its own value).
_running: ContextVar[str | None] = ContextVar("pyplantd_running_reactor", default=None)


def running_reactor() -> str | None:
    """The name of the reactor whose code this thread is running, if any."""
    return _running.get()


@dataclass
class DrivenJob:
    """A job being driven: its generator, and what the driver knows between steps."""

    job: ReactorJob
    gen: Generator[Any, Any, Any]
    where: str
    # In-process: called at once, on the job's thread, with Started, Subreactor and Stepped.
    report: Callable[[JobEvent], None]
    elapsed: float = 0.0
    started: bool = False
    parked: Need | None = None
    cancelled: bool = False
    abandoned: bool = False


@dataclass(frozen=True)
class Call(JobEvent):
    """A job on another thread asks the coordinator to run `fn` (make its send available) and
    waits for the outcome; the coordinator runs it when events() hands it over."""

    fn: Callable[[], Any] = field(compare=False)
    done: threading.Event = field(compare=False, default_factory=threading.Event)
    _outcome: list[Any] = field(compare=False, default_factory=list)  # [ok, result-or-error]
    _lock: threading.Lock = field(compare=False, default_factory=threading.Lock)

    def run(self) -> None:
        """On the coordinator: run it, unless refused already."""
        with self._lock:
            if self._outcome:
                return
            self._outcome[:] = [False, RunCancelled()]  # claimed: refuse() no longer can
        try:
            self._outcome[:] = [True, self.fn()]
        except BaseException as exc:  # the job's thread raises it (as an inline send would)
            self._outcome[:] = [False, exc]
        self.done.set()

    def refuse(self) -> None:
        """The job's run is over (or the job was cancelled): it gets RunCancelled."""
        with self._lock:
            if self._outcome:
                return
            self._outcome[:] = [False, RunCancelled()]
        self.done.set()

    def outcome(self) -> Any:
        ok, value = self._outcome
        if not ok:
            raise value
        return value


def drive(run: DrivenJob, answer: dict[str, Any] | None = None) -> JobEvent:
    """Resume the job (with the values of the names it is parked on) and run it until it parks
    on a receive (Need) or ends (Finished, Failed). RunCancelled (the run's cancel, at a yield,
    or raised into the user's code by a signal) propagates to the caller."""
    job, value = run.job, None
    if run.parked is not None:
        assert answer is not None
        parked, run.parked = run.parked, None
        value = tuple(answer[n] for n in parked.names) if parked.multi else answer[parked.names[0]]
    while True:
        if run.cancelled or job.should_stop():
            raise RunCancelled()
        if not run.started:
            run.started = True
            run.report(Started(job.job_id, run.where, time.time()))
        try:
            command = _advance(run, value)
        except StopIteration:
            return Finished(job.job_id, run.elapsed, run.where)
        except RunCancelled:
            raise
        except BaseException as exc:  # whatever the reactor's code raised is its failure
            return Failed(job.job_id, run.elapsed, run.where, error=exc)
        run.report(Stepped(job.job_id))
        if isinstance(command, Receive):
            if command.name in job.prefetch:
                value = job.prefetch[command.name]
                continue
            run.parked = Need(job.job_id, (command.name,))
            return run.parked
        if _all_receives(command):
            names = tuple(receive.name for receive in command)
            if all(name in job.prefetch for name in names):
                value = tuple(job.prefetch[name] for name in names)
                continue
            run.parked = Need(job.job_id, names, multi=True)
            return run.parked
        if isinstance(command, SubreactorStarted):
            if job.pipe is not None and command.func not in job.pipe.touched.subreactors:
                job.pipe.touched.subreactors.append(command.func)
            run.report(Subreactor(job.job_id, function_id(command.func)))
            value = None
        else:
            value = command  # PyPlant compatibility: a plain yielded value is given back


def _advance(run: DrivenJob, value: Any) -> Any:
    """Run the reactor's code up to its next yield; its time is what the user's code took.
    (The daemon's interrupts recognise this function as the entry into the user's code.)"""
    token = _running.set(run.job.name)
    tick = time.perf_counter()
    try:
        return run.gen.send(value)
    finally:
        run.elapsed += time.perf_counter() - tick
        _running.reset(token)


def abandon(run: DrivenJob) -> None:
    """Close a cancelled job's generator (its own cleanup runs: finally, with) and let the
    coordinator discard what it sent. Not while the generator runs: call it on its thread."""
    if run.abandoned:
        return
    run.cancelled = run.abandoned = True
    try:
        run.gen.close()
    except Exception as exc:  # it is abandoned already: its cleanup cannot fail it
        logger.warning("Reactor '%s' raised while being stopped: %s", run.job.name, exc)
    if run.job.on_abandon is not None:
        run.job.on_abandon()


def _all_receives(command: Any) -> bool:
    """A tuple made only of receives (`a, b = yield pipe.receive("a"), pipe.receive("b")`)."""
    return (
        type(command) is tuple
        and len(command) > 0
        and all(isinstance(item, Receive) for item in command)
    )
