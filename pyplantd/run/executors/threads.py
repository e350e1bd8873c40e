"""The thread executor: independent reactors run on a pool of N threads of this process.

Jobs placed on the main thread (targets) run on the coordinator's thread, as inline. A job on a
pool thread never touches the run's state: what must happen there (a send making a value
available) is handed to the coordinator and waited for (`call`); what is only told (started,
progress) is queued for `events()`. A parked job holds no thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ...errors import RunCancelled
from .base import MAIN, THREAD, Failed, JobEvent, Need, ReactorJob
from .driver import Call, DrivenJob, abandon, drive
from .inline import begin

T = TypeVar("T")

# How often a pool thread waiting for the coordinator looks whether its job was cancelled.
_CANCEL_POLL_SECONDS = 0.05


class _Pool:
    """N daemon threads taking work from a queue. Not concurrent.futures' pool: its threads are
    joined at interpreter exit, so a stopped daemon would wait for a cancelled reactor's code
    (a long sleep, a long computation) to reach its next yield before it could exit."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._work: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], None]) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1  # a thread waits for work: it takes this
            elif len(self._threads) < self._size:  # threads start as they are needed
                name = f"pyplantd-reactor-{len(self._threads)}"
                thread = threading.Thread(target=self._serve, name=name, daemon=True)
                self._threads.append(thread)
                thread.start()
        self._work.put(work)

    def _serve(self) -> None:
        while True:
            work = self._work.get()
            if work is None:
                return
            work()
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool) -> None:
        """Every thread ends once its current work is done (waited for only if `wait`)."""
        for _ in self._threads:
            self._work.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


@dataclass
class _Slot:
    run: DrivenJob
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while it is stepped


class ThreadExecutor:
    """Runs jobs on `slots` threads; MAIN jobs on the calling (coordinator's) thread."""

    in_process = True

    def __init__(self, slots: int, events: queue.SimpleQueue[JobEvent] | None = None) -> None:
        """`events`: where its events go, when an executor that owns it (the dask executor,
        for the jobs it keeps here) reads them with its own."""
        if slots < 1:
            raise ValueError(f"A thread executor needs at least 1 thread, not {slots}.")
        self.slots = slots
        self.name = f"threads:{slots}"
        self._pool = _Pool(slots)
        self._events: queue.SimpleQueue[JobEvent] = (
            events if events is not None else queue.SimpleQueue()
        )
        self._jobs: dict[str, _Slot] = {}
        self._coordinator = threading.get_ident()

    def placed_here(self, job: ReactorJob) -> bool:
        return True

    def submit(self, job: ReactorJob) -> None:
        self._coordinator = threading.get_ident()
        main = job.placement == MAIN
        report = job.report or (lambda event: None)
        # Told events of pool jobs come back through events(), for the coordinator to handle.
        slot = _Slot(begin(job, MAIN if main else THREAD, report if main else self._events.put))
        self._jobs[job.job_id] = slot
        self._schedule(slot, None)

    def answer(self, job_id: str, inputs: dict[str, Any]) -> None:
        self._schedule(self._jobs[job_id], inputs)

    def _schedule(self, slot: _Slot, answer: dict[str, Any] | None) -> None:
        if slot.run.where == MAIN:
            self._step(slot, answer)  # here and now; RunCancelled propagates, as inline
        else:
            self._pool.submit(lambda: self._step_on_thread(slot, answer))

    def _step(self, slot: _Slot, answer: dict[str, Any] | None) -> None:
        with slot.lock:
            if slot.run.abandoned:
                return
            event = drive(slot.run, answer)
        self._ended_or_parked(slot, event)

    def _step_on_thread(self, slot: _Slot, answer: dict[str, Any] | None) -> None:
        with slot.lock:
            if slot.run.abandoned:
                return
            try:
                event = drive(slot.run, answer)
            except RunCancelled:  # the run was cancelled: stopped at this yield
                abandon(slot.run)
                self._jobs.pop(slot.run.job.job_id, None)
                return
            except BaseException as exc:  # pyplantd's own failure around the job: the job's
                event = Failed(slot.run.job.job_id, slot.run.elapsed, THREAD, error=exc)
        self._ended_or_parked(slot, event)

    def _ended_or_parked(self, slot: _Slot, event: JobEvent) -> None:
        if not isinstance(event, Need):
            self._jobs.pop(slot.run.job.job_id, None)
        self._events.put(event)

    def call(self, fn: Callable[[], T], job_id: str) -> T:
        """Run `fn` on the coordinator and return its result (raise its exception); from a
        cancelled job, raise RunCancelled instead of waiting for a coordinator that is gone."""
        if threading.get_ident() == self._coordinator:
            return fn()
        request = Call(job_id, fn)
        self._events.put(request)
        slot = self._jobs.get(job_id)
        while not request.done.wait(_CANCEL_POLL_SECONDS):
            if slot is None or slot.run.cancelled:
                request.refuse()  # unless the coordinator got there first
        result: T = request.outcome()
        return result

    def cancel(self, job_ids: Collection[str], hard: bool = False) -> None:
        """Parked jobs are closed now; running ones stop at their next yield, on their thread."""
        for job_id in job_ids:
            slot = self._jobs.get(job_id)
            if slot is None:
                continue
            slot.run.cancelled = True
            if slot.lock.acquire(blocking=False):
                try:
                    abandon(slot.run)
                finally:
                    slot.lock.release()
                self._jobs.pop(job_id, None)

    def events(self, timeout: float) -> list[JobEvent]:
        try:
            first = self._events.get(timeout=timeout) if timeout > 0 else self._events.get_nowait()
        except queue.Empty:
            return []
        events = [first]
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def close(self) -> None:
        """Idle threads end before this returns; one still running a cancelled reactor's code
        ends at its next yield, without holding up the caller (the next run)."""
        self.cancel(list(self._jobs))
        self._pool.shutdown(wait=not self._jobs)
