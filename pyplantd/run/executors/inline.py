"""The inline executor (the default): every reactor runs on the calling thread, one step at a
time, exactly as pyplantd always ran them."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, TypeVar

from ...reactor import start_reactor
from .base import MAIN, JobEvent, Need, Progress, ReactorJob
from .driver import DrivenJob, abandon, drive

T = TypeVar("T")


_NONE: list[JobEvent] = []  # never appended to


def _ignore(event: JobEvent) -> None:
    return None


def begin(job: ReactorJob, where: str, report: Callable[[JobEvent], None]) -> DrivenJob:
    """A driven job for an in-process executor: the generator over the coordinator's pipework."""
    pipe = job.pipe
    assert pipe is not None, "in-process jobs carry the coordinator's pipework"
    pipe.on_progress = lambda progress: report(Progress(job.job_id, progress.fields()))
    return DrivenJob(job, start_reactor(job.func, pipe, pipe.config), where, report)


class InlineExecutor:
    """Steps each job on the calling thread when it is submitted or answered."""

    name = "inline"
    in_process = True
    slots = 1

    def __init__(self) -> None:
        self._jobs: dict[str, DrivenJob] = {}
        self._events: list[JobEvent] = []

    def placed_here(self, job: ReactorJob) -> bool:
        return True

    def submit(self, job: ReactorJob) -> None:
        run = begin(job, MAIN, job.report or _ignore)
        self._jobs[job.job_id] = run
        self._step(run, None)

    def answer(self, job_id: str, inputs: dict[str, Any]) -> None:
        self._step(self._jobs[job_id], inputs)

    def _step(self, run: DrivenJob, answer: dict[str, Any] | None) -> None:
        event = drive(run, answer)  # RunCancelled propagates: the job stays, to be cancelled
        if not isinstance(event, Need):
            del self._jobs[run.job.job_id]
        self._events.append(event)

    def call(self, fn: Callable[[], T], job_id: str) -> T:
        """Run `fn` on the coordinator: here, since jobs run on the coordinator's thread."""
        return fn()

    def cancel(self, job_ids: Collection[str], hard: bool = False) -> None:
        for job_id in job_ids:
            run = self._jobs.pop(job_id, None)
            if run is not None:
                abandon(run)

    def events(self, timeout: float) -> list[JobEvent]:
        if not self._events:
            return _NONE  # the coordinator asks after every step: no new list each time
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        self.cancel(list(self._jobs))
