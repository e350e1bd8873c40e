"""The dask executor: reactors run on dask.distributed workers (`local:N`, or a cluster address).

Jobs go through dask's futures API; only small things travel: the job (code pickled by value for
the user's own modules, the config, references to inputs) and events (references to payloads the
worker wrote in the shared plant dir). Values never go through dask. A job parked on a receive
keeps its generator on its worker; the answer is pinned there, and if that worker died meanwhile
the job starts again elsewhere with everything it had received as prefetch. Runs in the
coordinating process; the worker side is `dask_worker`.
"""

from __future__ import annotations

import atexit
import builtins
import contextlib
import functools
import io
import itertools
import logging
import pickle
import queue
import sys
import threading
import types
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import RemoteReactorError
from ...signatures.origins import is_user_file
from . import dask_worker
from .base import (
    MAIN,
    Failed,
    Finished,
    IngredientRef,
    JobEvent,
    Lost,
    Need,
    ReactorJob,
    Sent,
    Started,
)
from .dask_cluster import Cluster, check_versions, connect, start_local
from .threads import ThreadExecutor

if TYPE_CHECKING:
    from distributed import Future

    from . import ExecutorChoice

logger = logging.getLogger(__name__)
T = TypeVar("T")

# A job whose worker is lost this many times fails (dask's own retries of a running task come
# on top: `distributed.scheduler.allowed-failures`).
MAX_RESTARTS = 3


def open_dask(choice: ExecutorChoice) -> DaskExecutor:
    """The executor for `local:N` or a cluster address, over the process's cluster for it."""
    return DaskExecutor(shared_cluster(choice), str(choice), choice.local_below)


# The clusters of this process, by choice: a local cluster starts once (a daemon's runs, or the
# runs of a script, share it) and stops when the process exits; connections likewise.
_clusters: dict[str, Cluster] = {}
_clusters_lock = threading.Lock()


def shared_cluster(choice: ExecutorChoice) -> Cluster:
    """The cluster for `choice`, started (local:N) or connected to on first use."""
    key = f"{choice}|{choice.insecure}"
    with _clusters_lock:
        cluster = _clusters.get(key)
        if cluster is not None and cluster.client.status == "running":
            return cluster
        if not _clusters:
            atexit.register(stop_clusters)
        if choice.kind == "local":
            cluster = start_local(choice.slots)
        else:
            assert choice.address is not None
            cluster = connect(choice.address, choice.insecure)
        _clusters[key] = cluster
        return cluster


def stop_clusters() -> None:
    """Stop the local clusters this process started, close its connections to others."""
    with _clusters_lock:
        clusters = list(_clusters.values())
        _clusters.clear()
    for cluster in clusters:
        try:
            cluster.close()
        except Exception as err:  # at exit: say it, stop the others all the same
            logger.warning("Stopping dask cluster %s failed: %s", cluster.name, err)


@dataclass
class _Job:
    """A job as this side follows it through its attempts."""

    job: ReactorJob
    remote: dask_worker.RemoteJob
    store: Any  # the plant's PlantStore
    answers: dict[str, IngredientRef] = field(default_factory=dict)  # learned while it ran
    reported: dict[str, IngredientRef] = field(default_factory=dict)  # sends the coordinator has
    worker: str | None = None  # where its generator is parked
    attempt: int = 0
    started: bool = False
    cancelled: bool = False
    done: bool = False
    told: int = 0  # told events of the current attempt shown so far (streamed or returned)


class _Streams:
    """The told events workers stream while jobs run (dask_worker._Outbox), on one event topic
    per client (so that two coordinators of one cluster never see each other's jobs), handed to
    the executor running each job. Handlers run on the client's event loop thread."""

    def __init__(self, client: Any) -> None:
        self.topic = f"pyplantd-job-events-{client.id}"
        self.jobs: dict[str, Callable[[int, int, list[JobEvent]], None]] = {}
        client.subscribe_topic(self.topic, self._handle)

    def _handle(self, event: tuple[float, dict[str, Any]]) -> None:
        message = event[1]
        deliver = self.jobs.get(message["job"])
        if deliver is not None:
            deliver(message["attempt"], message["first"], pickle.loads(message["events"]))


_streams: dict[str, _Streams] = {}  # by client id


def _streams_of(client: Any) -> _Streams:
    with _clusters_lock:
        streams = _streams.get(client.id)
        if streams is None:
            streams = _streams[client.id] = _Streams(client)
        return streams


class DaskExecutor:
    """Jobs on the cluster's workers, but targets (MAIN: plots, GUI toolkits need the main
    thread) on the coordinator's thread, and reactors whose last run took less than
    `local_below` seconds on threads of this process, as the thread executor runs them: for
    those, dask's overhead per step would cost more than it saves."""

    in_process = False

    def __init__(self, cluster: Cluster, name: str, local_below: float = 0.0) -> None:
        self.cluster, self.client, self.name = cluster, cluster.client, name
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        self.slots = max(1, sum(int(w.get("nthreads", 1)) for w in info.values()))
        self.local_below = local_below
        self._jobs: dict[str, _Job] = {}
        self._events: queue.SimpleQueue[JobEvent] = queue.SimpleQueue()
        self._here = ThreadExecutor(self.slots, self._events)  # jobs placed here
        self._here_ids: set[str] = set()
        self._streams = _streams_of(self.client)
        self._lock = threading.Lock()  # task results are handled on dask's callback thread
        self._futures: dict[str, Future[Any]] = {}  # job id -> its current task
        self._code = cluster.shipping  # what the runs on this cluster shipped and checked
        self._keys = itertools.count()
        # Bytes of pickled job arguments sent and task results received (no values: refs).
        self.traffic = {"sent": 0, "received": 0}

    # -- the interface ----------------------------------------------------------------------
    def placed_here(self, job: ReactorJob) -> bool:
        if job.placement == MAIN:
            return True
        return job.last_duration is not None and job.last_duration < self.local_below

    def submit(self, job: ReactorJob) -> None:
        if self.placed_here(job):
            self._here_ids.add(job.job_id)
            self._here.submit(job)
            return
        store = job.store
        assert store is not None, "remote jobs carry the plant's store"
        self.ship_code()
        remote = dask_worker.RemoteJob(
            job.job_id, job.reactor_id, job.name, job.func, dask_worker.bare_config(job.config),
            str(store.plant_dir), dict(job.prefetch), list(store.custom_specs),
            store.memory_budget, topic=self._streams.topic,
        )  # fmt: skip
        state = _Job(job, remote, store)
        with self._lock:
            self._jobs[job.job_id] = state
        self._streams.jobs[job.job_id] = functools.partial(self._streamed, state)
        self._start(state)

    def answer(self, job_id: str, inputs: dict[str, Any]) -> None:
        if job_id in self._here_ids:
            self._here.answer(job_id, inputs)
            return
        state = self._jobs[job_id]
        refs = dict(inputs)
        state.answers.update(refs)
        self.traffic["sent"] += len(pickle.dumps(refs, protocol=pickle.HIGHEST_PROTOCOL))
        workers = [state.worker] if state.worker else None
        self._launch(
            state, dask_worker.resume, job_id, refs, workers=workers, allow_other_workers=True
        )

    def call(self, fn: Callable[[], T], job_id: str) -> T:
        """Run `fn` on the coordinator, for a job placed here (remote sends come as events)."""
        return self._here.call(fn, job_id)

    def cancel(self, job_ids: Collection[str], hard: bool = False) -> None:
        """Cooperative: each job stops at its next yield, parked ones are closed where they
        are; `hard` restarts the workers that are still running one of them."""
        here = [j for j in job_ids if j in self._here_ids]
        if here:
            self._here.cancel(here)
            self._here_ids.difference_update(here)
        ids = [j for j in job_ids if j in self._jobs]
        if not ids:
            return
        with self._lock:
            states = [self._jobs[j] for j in ids]
            for state in states:
                state.cancelled = True
                self._streams.jobs.pop(state.job.job_id, None)
            futures = [self._futures[j] for j in ids if j in self._futures]
        running: set[str] = set()
        if hard:
            keys = {f.key for f in futures}
            for worker, tasks in self.client.processing().items():
                if keys & set(tasks):
                    running.add(worker)
        with contextlib.suppress(Exception):  # a worker that is gone holds nothing any more
            self.client.run(dask_worker.cancel, ids, on_error="ignore")
        for future in futures:
            future.cancel()
        if running:
            self.client.restart_workers(sorted(running), raise_for_error=False)
        for state in states:
            self._discard_reported(state)

    def events(self, timeout: float) -> list[JobEvent]:
        try:
            first = self._events.get(timeout=timeout)
        except queue.Empty:
            return []
        found = [first]
        while True:
            try:
                found.append(self._events.get_nowait())
            except queue.Empty:
                return found

    def close(self) -> None:
        """Cancel what still runs; the cluster stays for the next run (see stop_clusters)."""
        self._here.close()
        unfinished = [j for j, s in self._jobs.items() if not s.done and not s.cancelled]
        if unfinished:
            self.cancel(unfinished)

    # -- code and versions ------------------------------------------------------------------
    def ship_code(self) -> None:
        """The user's own modules travel by value, so that a saved helper reaches the workers
        with no restart (by reference, workers import their own, stale copy). Packages the
        reactors use must be the same version on the workers as here."""
        if len(sys.modules) == self._code.modules_seen:
            return
        import cloudpickle

        self._code.modules_seen = len(sys.modules)
        packages: set[str] = set()
        for name, module in list(sys.modules.items()):
            if module is None or name in self._code.by_value or name == "__main__":
                continue
            path = getattr(module, "__file__", None)
            if not isinstance(path, str):
                continue
            if is_user_file(path):
                with contextlib.suppress(ValueError):  # a module being imported right now
                    cloudpickle.register_pickle_by_value(module)
                    self._code.by_value.add(name)
            elif "site-packages" in path and "." not in name:
                packages.add(name)
        self._check_packages(packages - self._code.versions_checked)

    def _check_packages(self, modules: set[str]) -> None:
        if not modules:
            return
        import importlib.metadata

        self._code.versions_checked |= modules
        owners = importlib.metadata.packages_distributions()
        distributions = sorted({d for m in modules for d in owners.get(m, [])})
        if distributions:
            check_versions(self.cluster, distributions)

    # -- attempts ---------------------------------------------------------------------------
    def _start(self, state: _Job) -> None:
        remote = replace(state.remote, attempt=state.attempt)
        if state.answers:  # a restart: what it had received is given before it asks
            remote = replace(remote, prefetch={**remote.prefetch, **state.answers})
        pickled = pickle_job(remote)
        self.traffic["sent"] += len(pickled)
        self._launch(state, dask_worker.start, pickled)

    def _launch(self, state: _Job, fn: Any, *args: Any, **options: Any) -> None:
        job_id = state.job.job_id
        key = f"pyplantd-{fn.__name__}-{state.job.name}-{next(self._keys)}"
        state.store.job_started()
        try:
            future = self.client.submit(fn, *args, key=key, pure=False, **options)
        except BaseException:
            state.store.job_ended()
            raise
        with self._lock:
            self._futures[job_id] = future
        attempt = state.attempt
        future.add_done_callback(lambda done: self._finished_task(state, attempt, done))

    def _finished_task(self, state: _Job, attempt: int, future: Future[Any]) -> None:
        """A task of the job ended (on the client's loop thread): turn its result into events."""
        try:
            self._handle(state, attempt, future)
        except Exception as err:  # never lose a job silently: the run must end
            logger.exception("Handling the result of reactor job %s failed", state.job.job_id)
            self._put(state, "", [Failed(state.job.job_id, 0.0, "", error=err)])
        finally:
            state.store.job_ended()

    def _handle(self, state: _Job, attempt: int, future: Future[Any]) -> None:
        job_id = state.job.job_id
        cancelled = future.cancelled()  # (before the release below, which cancels it)
        error = None if cancelled else future.exception()
        result = None if cancelled or error is not None else future.result()
        self._release(state, future)  # else dask would run it again if its worker died now
        if cancelled or state.cancelled or attempt != state.attempt:
            return
        if error is not None:  # the task itself failed, not the reactor's code
            self._put(state, "", [Failed(job_id, 0.0, "", error=_task_failure(state, error))])
            return
        assert result is not None
        self.traffic["received"] += len(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        where, events, first = result
        if events and isinstance(events[-1], Lost):
            self._restart(state, events[-1])
            return
        with self._lock:
            if state.cancelled:
                return
            self._put(state, where, self._untold(state, first, events))

    def _release(self, state: _Job, future: Future[Any]) -> None:
        """Let go of a task whose result is in hand: dask recomputes a held result whose
        worker dies, which would run the reactor (and its sends) again behind our back."""
        with self._lock:
            if self._futures.get(state.job.job_id) is future:
                del self._futures[state.job.job_id]
        future.release()

    def _restart(self, state: _Job, lost: Lost) -> None:
        """The job's parked generator is gone with its worker: start it again, elsewhere, with
        what it had received answered at once. What it sent before stays reported."""
        with self._lock:
            state.attempt += 1
            state.told = 0
        state.worker = None
        if state.attempt > MAX_RESTARTS:
            failure = RemoteReactorError.of(
                "WorkerDied",
                f"reactor '{state.job.name}' lost its worker {state.attempt} times ({lost.reason})",
            )
            self._put(state, "", [Failed(state.job.job_id, 0.0, "", error=failure)])
            return
        logger.info("Reactor '%s' restarts: %s", state.job.name, lost.reason)
        self._start(state)

    def _streamed(self, state: _Job, attempt: int, first: int, events: list[JobEvent]) -> None:
        """Told events a worker streamed while the job runs (on the client's loop thread):
        those not shown yet, in order (a batch that would skip some waits for the step's
        result, which has them all)."""
        with self._lock:
            if state.cancelled or state.done or attempt != state.attempt or first > state.told:
                return
            self._put(state, "", self._untold(state, first, events))

    @staticmethod
    def _untold(state: _Job, first: int, events: list[JobEvent]) -> list[JobEvent]:
        """The events but the told ones already shown (told ones are numbered from `first`)."""
        fresh, number = [], first
        for event in events:
            if isinstance(event, dask_worker.TOLD):
                number += 1
                if number <= state.told:
                    continue
                state.told = number
            fresh.append(event)
        return fresh

    def _put(self, state: _Job, where: str, events: list[JobEvent]) -> None:
        for event in events:
            if isinstance(event, Started):
                if state.started:
                    continue  # a restart: the coordinator knows it started
                state.started = True
            elif isinstance(event, Sent):
                if not self._sent(state, event):
                    continue
            elif isinstance(event, Need):
                state.worker = where
            elif isinstance(event, Failed):
                state.done = True
                self._streams.jobs.pop(state.job.job_id, None)
                if event.error is None:
                    event = replace(event, error=_remote_error(event))
            elif isinstance(event, Finished):
                state.done = True
                self._streams.jobs.pop(state.job.job_id, None)
            self._events.put(event)

    def _sent(self, state: _Job, event: Sent) -> bool:
        """A send of a restarted job that an earlier attempt reported: the same content is
        dropped (its new copy deleted); other content fails the reactor, since consumers may
        have received the first."""
        ref = event.ref
        earlier = state.reported.get(ref.name)
        if earlier is None:
            state.reported[ref.name] = ref
            return True
        state.store.remove_foreign_payloads([ref.path])
        if earlier.fingerprint == ref.fingerprint:
            return False
        raise RuntimeError(
            f"reactor '{state.job.name}' sent '{ref.name}' with other content when it ran again "
            "after losing its worker, and its first value may have been received already"
        )

    def _discard_reported(self, state: _Job) -> None:
        """A cancelled job's sends are not committed: their payloads go (the coordinator also
        discards what it was told of; deleting twice is harmless)."""
        state.store.remove_foreign_payloads([ref.path for ref in state.reported.values()])


def _task_failure(state: _Job, error: BaseException) -> RemoteReactorError:
    """Why a job's task failed outside the reactor's code: its workers kept dying, or the job
    could not even be loaded on one (a module the reactor needs is not importable there)."""
    kind = type(error).__name__
    if kind == "KilledWorker":
        return RemoteReactorError.of(
            "WorkerDied", f"the workers running reactor '{state.job.name}' kept dying ({error})"
        )
    return RemoteReactorError.of(
        kind, f"{error} (on a dask worker, before reactor '{state.job.name}' could start: "
        "can the workers import every module it uses?)", builtin=getattr(builtins, kind, None),
    )  # fmt: skip


def _remote_error(event: Failed) -> RemoteReactorError:
    """The exception a worker reported as text, as an exception of the coordinator: of the
    reactor's exception type when that is a built-in one (`except ValueError` still works)."""
    place, _, trimmed = event.traceback.partition("\n")
    path, line, column = "", 0, 0
    if place:
        path, line_text, column_text = place.rsplit(":", 2)
        line, column = int(line_text), int(column_text)
    return RemoteReactorError.of(
        event.type, event.message, path, line, column, trimmed, getattr(builtins, event.type, None)
    )


def pickle_job(remote: dask_worker.RemoteJob) -> bytes:
    """The job pickled as dask would (cloudpickle: the user's modules by value), except that
    code keeps the name of its file, so that a failure on a worker names the user's file and
    line (cloudpickle writes `<dynamic-code>` there)."""
    buffer = io.BytesIO()
    _job_pickler()(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(remote)
    return buffer.getvalue()


@functools.cache
def _job_pickler() -> type:
    import cloudpickle

    reduce_code = getattr(cloudpickle.cloudpickle, "_code_reduce", None)

    def code_with_filename(code: types.CodeType) -> tuple[Any, ...]:
        assert reduce_code is not None
        _rebuild, args = reduce_code(code)
        return dask_worker.named_code, (args, code.co_filename)

    table = dict(cloudpickle.Pickler.dispatch_table)
    if reduce_code is not None:
        table[types.CodeType] = code_with_filename
    return type("JobPickler", (cloudpickle.Pickler,), {"dispatch_table": table})
