"""Plants whose reactors run on dask workers: a real LocalCluster of two worker processes (in a
process of its own), real files, real daemons, real SIGKILLs.

The oracle is the inline executor: the same decisions, fingerprints and values."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

from conftest import REPO, SUBPROCESS_TIMEOUT, Project, start_cluster_host  # noqa: E402
from test_daemon import Daemon, make_project, save_atomic  # noqa: E402

from pyplantd import Ingredient, Plant, ReactorFunc, SubreactorFunc  # noqa: E402
from pyplantd import specs as pyplant_specs  # noqa: E402
from pyplantd.compat.spec_adapter import as_native  # noqa: E402
from pyplantd.config import ConfigBase  # noqa: E402
from pyplantd.daemon.console import failure_line  # noqa: E402
from pyplantd.errors import ReactorFailedError  # noqa: E402
from pyplantd.events import EventType  # noqa: E402
from pyplantd.run.executors import ExecutorChoice, dask_worker  # noqa: E402
from pyplantd.run.executors.dask import shared_cluster, stop_clusters  # noqa: E402
from pyplantd.store.plant_store import PlantStore  # noqa: E402

DEADLINE = 60.0


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """A real LocalCluster of two worker processes; this process's client of it is opened here,
    so that its threads exist before any test counts them, and closed at the end."""
    with start_cluster_host() as scheduler:
        cluster = shared_cluster(ExecutorChoice.parse(scheduler))
        cluster.client.submit(os.getpid, pure=False).add_done_callback(lambda f: None)
        cluster.client.run(os.getpid)
        time.sleep(0.2)
        try:
            yield scheduler
        finally:
            stop_clusters()


@pytest.fixture
def client(address: str) -> Any:
    return shared_cluster(ExecutorChoice.parse(address)).client


def on_workers(address: str, local_below: float = 0.0) -> ExecutorChoice:
    """The cluster, with every reactor but the targets on its workers, however short its last
    run was (by default, one shorter than a second runs in this process)."""
    return replace(ExecutorChoice.parse(address), local_below=local_below)


# -- a pipeline of every kind of ingredient ----------------------------------------------------
class Config(ConfigBase):
    def __init__(self) -> None:
        super().__init__()
        self.scale = 2.0
        self.rows = 50


@dataclass(frozen=True)
class Shape:
    """A value of the user's own class: pickled by reference, its code in its fingerprint."""

    rows: int
    cols: int

    def cells(self) -> int:
        return self.rows * self.cols


@SubreactorFunc
def normalise(values):
    return values / values.max()


@ReactorFunc
def load(pipe, config):
    print("loading", config.rows, "rows")
    pipe.send("data", np.arange(float(config.rows)))
    pipe.send("meta", {"rows": config.rows, "names": ["a", "b"]})
    pipe.send("shape", Shape(config.rows, 2))


@ReactorFunc
def scale(pipe, config):
    data = yield pipe.receive("data")
    normalised = yield from normalise(data)
    pipe.send("scaled", normalised * config.scale)


@ReactorFunc
def cube(pipe):
    data = yield pipe.receive("data")
    out = pipe.allocate("cube", Ingredient.Type.hdf_array, shape=(len(data), 3), dtype="float64")
    out[:] = np.stack([data, data**2, data**3], axis=1)
    pipe.send("cube", out)


@ReactorFunc
def report(pipe):
    path = pipe.allocate("report", Ingredient.Type.file, suffix=".txt")
    meta = yield pipe.receive("meta")
    with open(path, "w") as handle:
        handle.write(f"{meta['rows']} rows\n")
    pipe.send("report", path)


@ReactorFunc
def summary(pipe, config):
    scaled, cube, meta = yield pipe.receive("scaled"), pipe.receive("cube"), pipe.receive("meta")
    report, shape = yield pipe.receive("report"), pipe.receive("shape")
    with open(report) as handle:
        first = handle.read().strip()
    summary = (float(scaled.sum()), float(cube[:, 2].sum()), meta["rows"], first, shape.cells())
    pipe.send("summary", summary)


ALL = (load, scale, cube, report, summary)


def _run(
    plant_dir: Path, executor: str | ExecutorChoice | None, config: Config
) -> tuple[list[Any], dict[str, Any]]:
    with Plant(plant_dir, executor=executor) as plant:
        plant.add_reactors(*ALL)
        plant.set_config(config)
        decisions = plant.run_reactor("summary")
        seen = {
            name: (record.fingerprint, record.type)
            for name, record in plant.store.ingredients.items()
        }  # fmt: skip
        values = {"summary": plant.fetch_ingredient("summary"), **seen}
    return sorted((d.reactor, d.status, d.reasons) for d in decisions), values  # (any order)


def test_decisions_fingerprints_and_values_are_those_of_inline(address: str, tmp_path: Path):
    for step, change in enumerate([None, ("scale", 3.0), ("rows", 60)]):
        config = Config()
        if change is not None:
            setattr(config, *change)
        inline = _run(tmp_path / "inline", None, config)
        dask = _run(tmp_path / "dask", on_workers(address), config)
        assert dask == inline, f"step {step}"
    _assert_consistent(tmp_path / "dask")


def test_a_plant_made_on_workers_is_fully_cached_inline(address: str, tmp_path: Path) -> None:
    _run(tmp_path / "plant", address, Config())
    decisions, _values = _run(tmp_path / "plant", None, Config())
    assert {status for _reactor, status, _reasons in decisions if _reactor != "summary"} == {
        "cached"
    }, decisions


# -- parallel -----------------------------------------------------------------------------------
def _sleeper(index: int) -> Callable[..., Any]:
    def sleeper(pipe):
        time.sleep(1.0)
        pipe.send(f"part{index}", index)

    sleeper.__name__ = sleeper.__qualname__ = f"sleeper{index}"
    return ReactorFunc(sleeper)


SLEEPERS = [_sleeper(i) for i in range(4)]


@ReactorFunc
def gather(pipe):
    parts = yield tuple(pipe.receive(f"part{i}") for i in range(4))
    pipe.send("parts", sum(parts))


def test_independent_reactors_run_at_once_on_two_workers(address: str, tmp_path: Path) -> None:
    with Plant(tmp_path / "plant", executor=address) as plant:
        plant.add_reactors(*SLEEPERS, gather)
        decisions = plant.run_reactor("gather")
        assert plant.fetch_ingredient("parts") == 6
    spans = sorted(
        (d.started_at, d.started_at + d.duration, d.where)
        for d in decisions if d.reactor.startswith("sleeper")
    )  # fmt: skip
    assert len(spans) == 4 and all(d.status == "ran" for d in decisions)
    overlapping = [
        (a, b) for i, a in enumerate(spans) for b in spans[i + 1 :] if b[0] < a[1] - 0.2
    ]  # fmt: skip
    assert overlapping, spans  # recorded times overlap: two ran at the same time
    assert len({where for *_times, where in spans}) == 2, spans  # on both workers


# -- failures -----------------------------------------------------------------------------------
@ReactorFunc
def breaks(pipe):
    rows = yield pipe.receive("meta")
    raise ValueError(f"cannot use {rows['rows']} rows")
    pipe.send("unbroken", rows)


@ReactorFunc
def after_breaks(pipe):  # the target, which runs in this process: 'breaks' runs on a worker
    pipe.send("after", (yield pipe.receive("unbroken")))


def test_a_failure_on_a_worker_prints_its_place_as_a_local_one_does(address: str, tmp_path: Path):
    lines = []
    for executor, where in ((None, "inline"), (address, "dask")):
        with Plant(tmp_path / where, executor=executor) as plant:
            plant.add_reactors(load, breaks, after_breaks)
            plant.set_config(Config())
            with pytest.raises(ValueError) as raised:  # the reactor's own type, as inline
                plant.run_reactor("after_breaks")
        failure = raised.value
        assert isinstance(failure, ReactorFailedError)
        lines.append((failure_line(failure.reactor, failure.__cause__), str(failure)))
    assert lines[0] == lines[1]
    line = breaks.__code__.co_firstlineno + 3
    assert lines[1][0] == f"{__file__}:{line}:5: error: breaks: ValueError: cannot use 50 rows"
    assert lines[1][1].endswith(f"at {__file__}:{line}")


# -- worker deaths --------------------------------------------------------------------------------
@ReactorFunc
def slow(pipe):
    time.sleep(1.5)
    pipe.send("slow", 1)


@ReactorFunc
def quick(pipe):
    pipe.send("quick", 2)


@ReactorFunc
def waits(pipe):
    quick = yield pipe.receive("quick")
    slow = yield pipe.receive("slow")
    pipe.send("waited", quick + slow)


@ReactorFunc
def after_waits(pipe):  # the target, which runs in this process: 'waits' runs on a worker
    pipe.send("after", (yield pipe.receive("waited")))


def _kill_when(client: Any, find: Callable[[], str | None], killed: list[str]) -> threading.Thread:
    """SIGKILL the worker `find` names, as soon as it names one (in the background)."""

    def kill() -> None:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            worker = find()
            if worker is not None:
                os.kill(client.run(os.getpid, workers=[worker])[worker], signal.SIGKILL)
                killed.append(worker)
                return
            time.sleep(0.02)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


def _running(client: Any, name: str) -> Callable[[], str | None]:
    def find() -> str | None:
        for worker, keys in client.processing().items():
            if any(f"-{name}-" in str(key) for key in keys):
                return str(worker)
        return None

    return find


def _parking(client: Any, name: str) -> Callable[[], str | None]:
    def find() -> str | None:
        parked = client.run(dask_worker.parked_jobs, on_error="ignore")
        for worker, jobs in parked.items():
            if isinstance(jobs, list) and any(job.startswith(f"{name}#") for job in jobs):
                return str(worker)
        return None

    return find


@pytest.mark.parametrize("victim", ["running", "parked"])
def test_a_worker_killed_mid_run_loses_nothing(
    address: str, client: Any, tmp_path: Path, victim: str
) -> None:
    client.wait_for_workers(2, timeout=DEADLINE)
    killed: list[str] = []
    find = _running(client, "slow") if victim == "running" else _parking(client, "waits")
    killer = _kill_when(client, find, killed)
    with Plant(tmp_path / "plant", executor=address) as plant:
        plant.add_reactors(slow, quick, waits, after_waits)
        decisions = plant.run_reactor("after_waits")
        assert plant.fetch_ingredient("waited") == 3
    killer.join(DEADLINE)
    assert killed, "no worker was killed"
    assert {d.reactor: d.status for d in decisions} == {
        "slow": "ran", "quick": "ran", "waits": "ran", "after_waits": "ran"
    }  # fmt: skip
    _assert_consistent(tmp_path / "plant", runs=1)  # one committed version each
    client.wait_for_workers(2, timeout=DEADLINE)


def _assert_consistent(plant_dir: Path, runs: int | None = None, specs: Any = ()) -> None:
    """Every reactor has exactly one committed version, every current ingredient is on disk
    and passes its checksum, and no payload is left that nothing references."""
    store = PlantStore(plant_dir)
    try:
        store.register_specs(list(specs))
        for reactor_id in store.reactors:
            versions = store.versions_of(reactor_id)
            assert len(versions) == runs if runs is not None else versions, reactor_id
        current = {(r.producer, r.path) for r in store.ingredients.values()}
        for record in store.ingredients.values():
            store.payload_store.verified.clear()
            spec = store.spec(record.type)
            path = str(store.payloads.resolve(record.path))
            assert store.payloads.intact(record.path, record.size), record
            if record.checksum:
                assert spec.verify(path, record.checksum), record
        on_disk = {f"payloads/{p.name}" for p in (plant_dir / "payloads").iterdir()}
        assert on_disk == store.referenced_paths(), on_disk ^ store.referenced_paths()
        assert {path for _producer, path in current} <= on_disk
    finally:
        store.close()


# -- code travels by value ------------------------------------------------------------------------
SCRIPT = """
from helpers import factor

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def scaled(pipe):
    print('factor', factor())
    pipe.send('scaled', 10 * factor())


@ReactorFunc
def broken(pipe):
    value = yield pipe.receive('scaled')
    raise ValueError(f'no use for {value}')


with Plant('plant', executor='ADDRESS') as plant:
    plant.run_reactor(broken)
"""


def test_a_saved_helper_reaches_the_workers_and_failures_print_their_place(
    address: str, project: Project
) -> None:
    make_project(project, SCRIPT.replace("ADDRESS", address))
    project.write("helpers.py", "def factor():\n    return 2\n")
    daemon = Daemon(project.root)
    try:
        run = daemon.next_run(timeout=DEADLINE)
        assert "[scaled] factor 2" in run.lines, run
        line = next(
            n for n, text in enumerate(SCRIPT.splitlines()) if "raise ValueError" in text
        )  # the script is written without its first (empty) line
        place = rf"pipeline\.py:{line}:5: error: broken: ValueError: no use for 20$"
        assert any(re.search(place, text) for text in run.lines), run
        save_atomic(project.root / "helpers.py", "def factor():\n    return 3\n")
        run = daemon.next_run(timeout=DEADLINE)
        assert "[scaled] factor 3" in run.lines, run  # the workers ran the saved helper
        assert any(re.search(place.replace("20", "30"), text) for text in run.lines), run
    finally:
        daemon.stop()


# -- a script without a main guard ----------------------------------------------------------------
UNGUARDED = """
import os

import numpy as np

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def make(pipe):
    pipe.send('numbers', np.arange(5))
    pipe.send('pid', os.getpid())


@ReactorFunc
def total(pipe):
    numbers, pid = yield pipe.receive('numbers'), pipe.receive('pid')
    pipe.send('total', (int(numbers.sum()), pid, os.getpid()))


plant = Plant('plant', executor='local:2')
plant.run_reactor(total)
print('TOTAL', plant.fetch_ingredient('total'), os.getpid())
plant.shutdown()
"""


def test_a_script_without_a_main_guard_runs_on_a_local_cluster(project: Project) -> None:
    project.write("pipeline.py", UNGUARDED)
    done = subprocess.run(
        [sys.executable, "pipeline.py"], cwd=project.root, capture_output=True, text=True,
        timeout=SUBPROCESS_TIMEOUT * 2, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = re.search(r"^TOTAL \(10, (\d+), (\d+)\) (\d+)$", done.stdout, re.M)
    assert found, done.stdout + done.stderr
    maker, summer, script = (int(pid) for pid in found.groups())
    assert maker != script  # the reactor ran in a worker process
    assert summer == script  # the target ran in the script's (on its main thread)
    assert done.stdout.count("TOTAL") == 1  # the script ran once: no worker ran it again
    assert "Nanny failed" not in done.stderr


# -- a save cancels remote work ----------------------------------------------------------------
LONG = """
import time

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def long(pipe):
    for _ in range(HOLD * 600):  # 30 s, yielding: where a cancel stops it
        time.sleep(0.05)
        yield
    pipe.send('long', HOLD)


@ReactorFunc
def target(pipe):
    value = yield pipe.receive('long')
    pipe.send('out', value)


with Plant('plant', executor='ADDRESS') as plant:
    plant.run_reactor(target)
"""


def test_a_save_cancels_a_remote_reactor_at_its_next_yield(
    address: str, client: Any, project: Project
) -> None:
    def script(hold: int) -> str:
        return textwrap.dedent(LONG).replace("ADDRESS", address).replace("HOLD", str(hold))

    project.write("pipeline.py", script(1))
    daemon = Daemon(project.root)
    try:
        daemon.wait_for(r"^watching pipeline\.py", timeout=DEADLINE)
        _wait_until(lambda: _running(client, "long")() is not None)
        saved = time.monotonic()
        save_atomic(project.root / "pipeline.py", script(0))
        cancelled = daemon.next_run(timeout=DEADLINE)
        assert "cancelled" in cancelled.summary, cancelled
        run = daemon.next_run(timeout=DEADLINE)
        assert run.states == {"long": "ran", "target": "ran"}, run
        assert run.finished - saved < 15, run  # not after the cancelled 30 s
        # the cancelled reactor stopped at its next yield: nothing runs or waits on a worker
        _wait_until(lambda: _running(client, "long")() is None)
        parked = client.run(dask_worker.parked_jobs)
        assert all(not jobs for jobs in parked.values()), parked
    finally:
        daemon.stop()
    store = PlantStore(project.root / "plant")
    try:
        assert [len(store.versions_of(r)) for r in store.reactors] == [1, 1]
        assert store.load(store.ingredients["out"]) == 0
    finally:
        store.close()


def _wait_until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not done():
        assert time.monotonic() < deadline
        time.sleep(0.05)


# -- a reactor that ran before gets its inputs with its job ---------------------------------------
@ReactorFunc
def step0(pipe):
    pipe.send("s0", pipe.read_config("start"))


@ReactorFunc
def step1(pipe):
    value = yield pipe.receive("s0")
    pipe.send("s1", value + 1)


@ReactorFunc
def step2(pipe):
    value = yield pipe.receive("s1")
    pipe.send("s2", value + 1)


@ReactorFunc
def step3(pipe):  # the target, which runs in this process
    pipe.send("s3", (yield pipe.receive("s2")))


def test_a_remote_reactor_with_a_record_gets_its_inputs_with_its_job(address, tmp_path):
    waited: list[str] = []
    with Plant(tmp_path / "plant", executor=on_workers(address)) as plant:
        plant.add_reactors(step0, step1, step2, step3)
        plant.set_config({"start": 0})
        plant.run_reactor("step3")
        plant.add_event_listener(EventType.reactor_waiting, lambda _type, name: waited.append(name))
        plant.set_config({"start": 10})  # all four stale; their records name their inputs
        decisions = plant.run_reactor("step3")
        assert plant.fetch_ingredient("s2") == 12
    assert all(d.status == "ran" for d in decisions)
    assert set(waited) <= {"step3"}  # no remote one parked on a receive: one round trip each
    records = PlantStore(tmp_path / "plant")
    try:
        assert records.reactors["test_dask_executor:step2"].inputs.keys() == {"s1"}
        assert records.reactors["test_dask_executor:step1"].inputs.keys() == {"s0"}
    finally:
        records.close()


@ReactorFunc
def either(pipe):
    pipe.send(pipe.read_config("name"), 5)


@ReactorFunc
def takes(pipe):
    value = yield pipe.receive(pipe.read_config("name"))
    pipe.send("taken", value * 2)


@ReactorFunc
def after_takes(pipe):  # the target, which runs in this process: 'takes' runs on a worker
    pipe.send("after", (yield pipe.receive("taken")))


def test_a_recorded_input_that_no_longer_comes_does_not_hold_its_consumer(address, tmp_path):
    with Plant(tmp_path / "plant", executor=on_workers(address)) as plant:
        plant.add_reactors(either, takes, after_takes)
        plant.set_config({"name": "first"})
        plant.run_reactor("after_takes")
        plant.set_config({"name": "second"})  # 'takes' recorded 'first', which is not sent now
        decisions = plant.run_reactor("after_takes")
        assert plant.fetch_ingredient("taken") == 10
    statuses = {d.reactor: d.status for d in decisions}
    assert statuses == {"either": "ran", "takes": "ran", "after_takes": "ran"}


# -- where reactors run: targets here, on the main thread; short ones here; the rest on workers
@ReactorFunc
def made_where(pipe):
    pause = pipe.read_config("pause")
    time.sleep(pause)
    pipe.send("made", (os.getpid(), pause))


@ReactorFunc
def shown_where(pipe):
    made = yield pipe.receive("made")
    here = (os.getpid(), threading.current_thread() is threading.main_thread())
    pipe.send("shown", (made, here))


def test_targets_run_here_on_the_main_thread_and_short_reactors_here_on_threads(
    address: str, tmp_path: Path
) -> None:
    here = os.getpid()

    def run(pause: float, local_below: float) -> tuple[str, str, int]:
        with Plant(tmp_path / "plant", executor=on_workers(address, local_below)) as plant:
            plant.add_reactors(made_where, shown_where)
            plant.set_config({"pause": pause})
            decisions = {d.reactor: d for d in plant.run_reactor("shown_where")}
            (maker, made_pause), (shower, on_main) = plant.fetch_ingredient("shown")
        assert made_pause == pause and decisions["made_where"].status == "ran"
        assert (shower, on_main) == (here, True)  # the target: here, on the main thread
        assert decisions["shown_where"].where == "main"
        return decisions["made_where"].where, decisions["shown_where"].where, maker

    # never ran: the cluster, whatever the threshold
    where, _target, maker = run(0.0, 1.0)
    assert where.startswith("tcp://127.0.0.1:") and maker != here
    # its last run took far less than the threshold: here, on a thread (not the main one)
    where, _target, maker = run(0.01, 1.0)
    assert where == "thread" and maker == here
    where, _target, maker = run(0.3, 0.2)  # its last run (0.01 s) was short still
    assert where == "thread" and maker == here
    where, _target, maker = run(0.31, 0.2)  # the last one took 0.3 s: the cluster again
    assert where.startswith("tcp://127.0.0.1:") and maker != here


@ReactorFunc(main_thread=True)
def drawn_here(pipe):  # not a target, but marked: it stays on this process's main thread
    made = yield pipe.receive("made")
    here = (os.getpid(), threading.current_thread() is threading.main_thread())
    pipe.send("drawn", (made, here))


@ReactorFunc
def after_drawing(pipe):
    drawn = yield pipe.receive("drawn")
    pipe.send("after", drawn)


def test_a_reactor_marked_main_thread_runs_here_on_it_and_the_rest_on_workers(
    address: str, tmp_path: Path
) -> None:
    with Plant(tmp_path / "plant", executor=on_workers(address)) as plant:
        plant.add_reactors(made_where, drawn_here, after_drawing)
        plant.set_config({"pause": 0.0})
        decisions = {d.reactor: d for d in plant.run_reactor("after_drawing")}
        _made, (pid, on_main) = plant.fetch_ingredient("after")
    assert (pid, on_main) == (os.getpid(), True)
    assert decisions["drawn_here"].where == "main"
    assert decisions["made_where"].where.startswith("tcp://127.0.0.1:")
    assert decisions["after_drawing"].where == "main"  # the target


# -- PyPlant-interface spec allocations on a worker -----------------------------------------------
class RawSpec(pyplant_specs.IngredientTypeSpec):
    """An allocatable spec in PyPlant's interface: a raw numpy memmap file under baseDir."""

    def __init__(self):
        super().__init__()
        self.isAllocatable = True

    @classmethod
    def get_name(cls):
        return "raw"

    def _path(self, warehouse, name):
        return os.path.join(warehouse.baseDir, name + ".raw")

    def allocate(self, warehouse, name, **kwargs):
        return np.memmap(self._path(warehouse, name), dtype="float64", mode="w+", shape=(4,))

    def store(self, warehouse, name, value):
        value.flush()
        return {"shape": value.shape, "dtype": str(value.dtype)}

    def fetch(self, warehouse, name, meta):
        return np.memmap(self._path(warehouse, name), mode="r", **meta)

    def deallocate(self, warehouse, name):
        os.remove(self._path(warehouse, name))


@ReactorFunc
def fills_raw(pipe):
    data = pipe.allocate("raw", RawSpec)
    data[:2] = pipe.read_config("start")
    pipe.send("raw", data)
    data[2:] = [2, 3]  # after the send: stored as the reactor leaves it, as in PyPlant
    pipe.send("made_in", os.getpid())


@ReactorFunc
def sums_raw(pipe):
    raw, made_in = yield pipe.receive("raw"), pipe.receive("made_in")
    pipe.send("raw_sum", (raw.tolist(), made_in))


def _run_raw(plant_dir: Path, executor: Any, start: float) -> tuple[Any, dict[str, str]]:
    with Plant(plant_dir, executor=executor) as plant:
        plant.add_reactors(fills_raw, sums_raw)
        plant.warehouse.register_ingredient_specs([RawSpec()])
        plant.set_config({"start": start})
        decisions = plant.run_reactor("sums_raw")
        values = plant.fetch_ingredient("raw_sum")
        fingerprint = plant.store.ingredients["raw"].fingerprint
    return (values[0], fingerprint, values[1]), {d.reactor: d.status for d in decisions}


def test_a_pyplant_spec_allocation_on_a_worker_is_stored_by_content_when_its_reactor_ends(
    address: str, tmp_path: Path
) -> None:
    for start in (1.0, 5.0):
        (inline, fingerprint, _pid), _ = _run_raw(tmp_path / "inline", None, start)
        (remote, remote_fingerprint, pid), done = _run_raw(
            tmp_path / "dask", on_workers(address), start
        )
        assert pid != os.getpid()  # it did run on a worker
        assert remote == inline == [start, start, 2.0, 3.0]
        assert remote_fingerprint == fingerprint  # by content, as in process
        assert done == {"fills_raw": "ran", "sums_raw": "ran"}
    _assert_consistent(tmp_path / "dask", specs=[as_native(RawSpec())])
    # the plant made on workers serves it to an in-process run unchanged
    (value, _fingerprint, _pid), done = _run_raw(tmp_path / "dask", None, 5.0)
    assert value == [5.0, 5.0, 2.0, 3.0] and done == {"fills_raw": "cached", "sums_raw": "ran"}


# -- a remote reactor's lines and the daemon ------------------------------------------------
TALKS = """
import os
import threading
import time

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def talks(pipe):
    print('early line from', os.getpid(), flush=True)
    time.sleep(3)
    pipe.send('talked', 1)


@ReactorFunc
def target(pipe):
    value = yield pipe.receive('talked')
    main = threading.current_thread() is threading.main_thread()
    print('target VERSION in', os.getpid(), 'main thread', main)
    pipe.send('out', value)


with Plant('plant', executor='ADDRESS') as plant:
    plant.run_reactor(target)
"""


def test_a_remote_reactors_lines_reach_the_daemon_as_it_runs_and_the_target_runs_there(
    address: str, project: Project
) -> None:
    def script(version: int) -> str:
        text = textwrap.dedent(TALKS).replace("ADDRESS", address)
        return text.replace("VERSION", str(version))

    project.write("pipeline.py", script(1))
    daemon = Daemon(project.root)
    try:
        run = daemon.next_run(timeout=DEADLINE)
        assert run.states == {"talks": "ran", "target": "ran"}, run
        lines = daemon.transcript().splitlines()
        early = next(i for i, line in enumerate(lines) if "early line from" in line)
        ended = next(i for i, line in enumerate(lines) if re.search(r"✓ talks .* on tcp://", line))
        assert f"early line from {daemon.proc.pid}" not in lines[early]  # from a worker
        assert lines[early].lstrip().startswith("[talks]"), lines[early]  # with its prefix
        # printed before its 3 s sleep: shown then, not when the reactor ended
        assert daemon.times[ended] - daemon.times[early] > 2.0, daemon.transcript()
        assert re.search(rf"target 1 in {daemon.proc.pid} main thread True", str(run)), run
        # the edited target runs again here, on the main thread, with its input from the plant
        save_atomic(project.root / "pipeline.py", script(2))
        run = daemon.next_run(timeout=DEADLINE)
        assert run.states == {"talks": "warm", "target": "ran"}, run
        assert re.search(rf"target 2 in {daemon.proc.pid} main thread True", str(run)), run
    finally:
        daemon.stop()


@ReactorFunc
def allocates_unsent(pipe):
    path = pipe.allocate("draft", Ingredient.Type.file, suffix=".txt")
    with open(path, "w") as handle:
        handle.write("never sent")
    pipe.send("drafted", os.getpid())


@ReactorFunc
def after_draft(pipe):
    pipe.send("after", (yield pipe.receive("drafted")))


def test_an_allocation_a_remote_reactor_never_sends_fails_it_as_in_process(
    address: str, tmp_path: Path
) -> None:
    messages = []
    for executor, where in ((None, "inline"), (on_workers(address), "dask")):
        with Plant(tmp_path / where, executor=executor) as plant:
            plant.add_reactors(allocates_unsent, after_draft)
            with pytest.raises(ReactorFailedError) as raised:
                plant.run_reactor("after_draft")
            assert raised.value.reactor == "allocates_unsent"
            messages.append(str(raised.value))
    assert messages[0] == messages[1]
    assert "allocated 'draft' but never sent it" in messages[1]
    _assert_consistent(tmp_path / "dask")
    leftovers = [p for p in (tmp_path / "dask" / "payloads").rglob("*") if p.is_file()]
    assert leftovers == [], leftovers


@ReactorFunc
def chatters(pipe):
    for i in range(40):  # several batches stream while it runs...
        print("line", i)
        time.sleep(0.01)
    value = yield pipe.receive("quick")  # ...and its step's result, as it parks, has them too
    for i in range(40, 80):
        print("line", i)
        time.sleep(0.01)
    pipe.send("chatted", value)


@ReactorFunc
def after_chatters(pipe):
    pipe.send("after", (yield pipe.receive("chatted")))


def test_a_remote_reactors_lines_come_once_each_in_order(
    address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Plant(tmp_path / "plant", executor=on_workers(address)) as plant:
        plant.add_reactors(quick, chatters, after_chatters)
        decisions = {d.reactor: d.where for d in plant.run_reactor("after_chatters")}
    assert decisions["chatters"].startswith("tcp://"), decisions
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("line")]
    assert lines == [f"line {i}" for i in range(80)]
