"""The dask executor's protocol on a real cluster of two worker processes: jobs, parked
generators, references instead of values, worker deaths (real SIGKILLs) and cancels.

A small coordinator here answers each Need from what jobs sent; the runs of whole plants on the
dask executor are in test_dask_executor."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

from conftest import start_cluster_host  # noqa: E402

from pyplantd.config import ConfigBase  # noqa: E402
from pyplantd.run.executors import dask_worker  # noqa: E402
from pyplantd.run.executors.base import (  # noqa: E402
    Failed,
    Finished,
    IngredientRef,
    JobEvent,
    Need,
    ReactorJob,
    Sent,
)
from pyplantd.run.executors.dask import DaskExecutor  # noqa: E402
from pyplantd.run.executors.dask_cluster import connect  # noqa: E402
from pyplantd.store.plant_store import PlantStore  # noqa: E402

DEADLINE = 60.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """The address of a real LocalCluster of two worker processes (see dask_cluster_host)."""
    with start_cluster_host() as address:
        yield address


@pytest.fixture(scope="module")
def executor(cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskExecutor]:
    dask = DaskExecutor(connect(cluster), "test")
    # one job first: the client's callback threads exist before any test counts threads
    store = PlantStore(tmp_path_factory.mktemp("warmup") / "plant")
    Coordinator(dask, store).run({"warm": _make_small})
    store.close()
    yield dask
    dask.close()
    dask.cluster.close()


@pytest.fixture
def store(plant_dir: Path) -> Iterator[PlantStore]:
    opened = PlantStore(plant_dir)
    yield opened
    opened.close()


class Coordinator:
    """Submits jobs and answers each Need with the refs of what other jobs sent."""

    def __init__(self, executor: DaskExecutor, store: PlantStore) -> None:
        self.executor, self.store = executor, store
        self.refs: dict[str, IngredientRef] = {}
        self.ended: dict[str, JobEvent] = {}
        self.events: list[JobEvent] = []
        self.waiting: list[Need] = []

    def submit(self, job_id: str, func: Callable[..., Any]) -> None:
        job = ReactorJob(job_id, job_id, func.__name__, func, ConfigBase(), store=self.store)
        self.executor.submit(job)

    def run(self, funcs: dict[str, Callable[..., Any]], until: Callable[[], bool] | None = None):
        for job_id, func in funcs.items():
            self.submit(job_id, func)
        self.wait(lambda: set(funcs) <= set(self.ended) or bool(until and until()))
        return self

    def wait(self, done: Callable[[], bool], deadline: float = DEADLINE) -> None:
        end = time.monotonic() + deadline
        while not done():
            assert time.monotonic() < end, f"jobs did not end: {self.events}"
            for event in self.executor.events(0.2):
                self.events.append(event)
                if isinstance(event, Sent):
                    self.refs[event.ref.name] = event.ref
                elif isinstance(event, Need):
                    self.waiting.append(event)
                elif isinstance(event, Finished | Failed):
                    self.ended[event.job_id] = event
            self.answer_what_can_be()

    def answer_what_can_be(self) -> None:
        for need in list(self.waiting):
            if all(name in self.refs for name in need.names):
                self.waiting.remove(need)
                self.executor.answer(need.job_id, {n: self.refs[n] for n in need.names})


def _make_small(pipe):
    pipe.send("small", 1)


def _make_big(pipe):
    pipe.send("big", np.ones(100 * 2**20 // 8))  # 100 MB
    time.sleep(0.5)  # its worker stays busy: the consumer is placed on the other one


def _sum_big(pipe):
    big = yield pipe.receive("big")
    pipe.send("total", float(big.sum()))


def _worker_pids(executor: DaskExecutor) -> dict[str, int]:
    return executor.client.run(os.getpid)


def test_a_100_mb_ingredient_crosses_workers_as_a_reference(
    executor: DaskExecutor, store: PlantStore
) -> None:
    before = dict(executor.traffic)
    done = Coordinator(executor, store).run({"make": _make_big, "sum": _sum_big})
    made, summed = done.ended["make"], done.ended["sum"]
    assert isinstance(made, Finished) and isinstance(summed, Finished), done.events
    assert made.where != summed.where  # received on the other worker
    moved = sum(executor.traffic[k] - before[k] for k in before)
    assert moved < 8 * 1024, moved  # two jobs, their answers and results: references only
    assert done.refs["big"].size > 100 * 2**20
    total = done.refs["total"]
    assert store.payload_store.load(_record(total), 2**30) == float(100 * 2**20 // 8)


def _record(ref: IngredientRef) -> Any:
    from pyplantd.store.records import IngredientRecord

    return IngredientRecord(
        ref.name, "", ref.type, ref.fingerprint or "", ref.path, ref.size, ref.meta, 0.0,
        ref.checksum or "",
    )  # fmt: skip


def _parks_then_sends(pipe):
    pipe.send("early", 41)
    value = yield pipe.receive("late")
    pipe.send("answer", value + 1)


def _sends_late(pipe):
    pipe.send("late", 1)


def test_a_parked_job_whose_worker_is_killed_starts_again_with_what_it_had_received(
    executor: DaskExecutor, store: PlantStore
) -> None:
    coordinator = Coordinator(executor, store)
    coordinator.submit("parked", _parks_then_sends)
    coordinator.wait(lambda: bool(coordinator.waiting))
    need = coordinator.waiting[0]
    holder = executor._jobs["parked"].worker
    assert holder is not None
    assert executor.client.run(dask_worker.parked_jobs, workers=[holder])[holder] == ["parked"]
    os.kill(_worker_pids(executor)[holder], signal.SIGKILL)
    _wait_workers_gone(executor, holder)
    coordinator.run({"late": _sends_late})
    coordinator.wait(lambda: "parked" in coordinator.ended)
    assert need.names == ("late",)
    ended = coordinator.ended["parked"]
    assert isinstance(ended, Finished), coordinator.events
    record, _allocated = ended.touched
    assert record.inputs == ["late"]
    # 'early' was sent once (the restart's copy of the same value was dropped and deleted)
    sent = [e.ref.name for e in coordinator.events if isinstance(e, Sent)]
    assert sorted(sent) == ["answer", "early", "late"]
    assert store.payload_store.load(_record(coordinator.refs["answer"]), 2**30) == 2
    _wait_for_workers(executor, 2)
    assert all(not jobs for jobs in executor.client.run(dask_worker.parked_jobs).values())
    assert store.jobs_in_flight() == 0
    referenced = {r.path for r in coordinator.refs.values()}
    on_disk = {f"payloads/{p.name}" for p in (store.plant_dir / "payloads").iterdir()}
    assert on_disk == referenced  # no copy of the restart left behind


def _sleeps(pipe):
    time.sleep(3)
    pipe.send("slept", 1)


def test_a_running_job_whose_worker_is_killed_runs_again_elsewhere(
    executor: DaskExecutor, store: PlantStore
) -> None:
    _wait_for_workers(executor, 2)
    coordinator = Coordinator(executor, store)
    coordinator.submit("sleeper", _sleeps)
    victim = _worker_running(executor, "sleeper")
    os.kill(_worker_pids(executor)[victim], signal.SIGKILL)
    coordinator.wait(lambda: "sleeper" in coordinator.ended)
    ended = coordinator.ended["sleeper"]
    assert isinstance(ended, Finished), coordinator.events
    assert ended.where != victim
    assert store.jobs_in_flight() == 0


def _waits_forever(pipe):
    yield pipe.receive("never")


def _computes_long(pipe):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # pure Python: dask cannot interrupt it
        pass
    pipe.send("never", 1)


def test_cancel_closes_parked_jobs_and_hard_cancel_restarts_only_the_busy_worker(
    executor: DaskExecutor, store: PlantStore
) -> None:
    _wait_for_workers(executor, 2)
    coordinator = Coordinator(executor, store)
    coordinator.submit("parked", _waits_forever)
    coordinator.wait(lambda: bool(coordinator.waiting))
    executor.cancel(["parked"])
    assert all(not jobs for jobs in executor.client.run(dask_worker.parked_jobs).values())
    coordinator.submit("busy", _computes_long)
    busy = _worker_running(executor, "busy")
    pids = _worker_pids(executor)
    tick = time.monotonic()
    executor.cancel(["busy"], hard=True)
    _wait_for_workers(executor, 2)
    assert time.monotonic() - tick < 20
    after = _worker_pids(executor)
    idle = next(w for w in pids if w != busy)
    assert after.get(idle) == pids[idle]  # the other worker was left alone
    assert pids[busy] not in after.values()
    coordinator.wait(lambda: store.jobs_in_flight() == 0)
    assert "busy" not in coordinator.ended and "parked" not in coordinator.ended


def _fails(pipe):
    value = yield pipe.receive("small")
    raise KeyError(f"no row {value}")


def test_a_failure_on_a_worker_comes_back_as_text_with_its_place(
    executor: DaskExecutor, store: PlantStore
) -> None:
    coordinator = Coordinator(executor, store).run({"small": _make_small, "fails": _fails})
    failed = coordinator.ended["fails"]
    assert isinstance(failed, Failed)
    error = failed.error
    assert isinstance(error, KeyError)  # a built-in type stays catchable as itself
    assert error.place == (__file__, _fails.__code__.co_firstlineno + 2, 5)
    assert "raise KeyError" in error.trimmed


def _worker_running(executor: DaskExecutor, job_id: str) -> str:
    key = executor._futures[job_id].key
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        for worker, keys in executor.client.processing().items():
            if key in keys:
                return str(worker)
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never ran")


def _wait_workers_gone(executor: DaskExecutor, worker: str) -> None:
    end = time.monotonic() + DEADLINE
    while worker in executor.cluster.workers():
        assert time.monotonic() < end
        time.sleep(0.05)


def _wait_for_workers(executor: DaskExecutor, count: int) -> None:
    executor.client.wait_for_workers(count, timeout=DEADLINE)
