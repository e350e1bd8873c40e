"""Executors in one process: the choice parser, the job driver, and threads:N against inline on
the same pipelines (same decisions, fingerprints and values), overlap, multi-receive, cancel."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from pyplantd import ConfigBase, Plant, ReactorFunc, SubreactorFunc
from pyplantd.errors import ExecutorChoiceError, ExecutorError, ReactorFailedError, RunCancelled
from pyplantd.run.executors import ExecutorChoice, open_executor
from pyplantd.run.executors.base import Failed, Finished, Need, ReactorJob, Started
from pyplantd.run.executors.driver import DrivenJob, drive, running_reactor
from pyplantd.run.pipework import Receive


# -- the choice -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kind", "slots"),
    [("inline", "inline", 1), ("threads:3", "threads", 3), ("local:2", "local", 2),
     ("tcp://127.0.0.1:8786", "cluster", 1), ("tls://scheduler:8786", "cluster", 1)],
)  # fmt: skip
def test_choices_parse_and_print_as_written(text: str, kind: str, slots: int) -> None:
    choice = ExecutorChoice.parse(text)
    assert (choice.kind, choice.slots, str(choice)) == (kind, slots, text)


@pytest.mark.parametrize("text", ["threads:0", "threads:x", "threads", "gpu:2", "local:-1", ""])
def test_a_bad_choice_names_the_value_and_the_valid_forms(text: str) -> None:
    with pytest.raises(ExecutorChoiceError) as caught:
        ExecutorChoice.parse(text)
    assert repr(text) in str(caught.value)
    assert "threads:N" in str(caught.value) and "local:N" in str(caught.value)


def test_local_without_the_dask_executor_says_how_to_get_it() -> None:
    try:
        import pyplantd.run.executors.dask  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(ExecutorError, match=r"pyplantd\[dask\]"):
            open_executor("local:2")
    else:
        pytest.skip("the dask executor is installed")


# -- the driver -------------------------------------------------------------------------------
def _driven(func, prefetch=None) -> tuple[DrivenJob, list]:
    told: list = []
    job = ReactorJob("j1", "m:r", "r", func, ConfigBase(), prefetch=prefetch or {})
    return DrivenJob(job, func(None), "main", told.append), told


def test_the_driver_parks_on_a_tuple_of_receives_once_and_answers_it_as_a_tuple() -> None:
    def reactor(pipe):
        plain = yield 5  # PyPlant: a plain yielded value is given back
        a, b = yield Receive("a"), Receive("b")
        c = yield Receive("c")
        return (plain, a, b, c)

    run, told = _driven(reactor, prefetch={"c": 3})
    need = drive(run)
    assert need == Need("j1", ("a", "b"), multi=True)
    assert isinstance(told[0], Started) and told[0].where == "main"
    ended = drive(run, {"a": 1, "b": 2})
    assert isinstance(ended, Finished)


def test_the_driver_reports_the_reactors_exception_and_the_running_reactor_per_thread() -> None:
    seen: dict[str, str | None] = {}

    def reactor(pipe):
        seen["inside"] = running_reactor()
        other = threading.Thread(target=lambda: seen.setdefault("other", running_reactor()))
        other.start()
        other.join(10)
        raise ValueError("bad data")
        yield  # a generator

    run, _told = _driven(reactor)
    failed = drive(run)
    assert isinstance(failed, Failed) and isinstance(failed.error, ValueError)
    assert seen == {"inside": "r", "other": None}
    assert running_reactor() is None


def test_the_driver_stops_at_a_yield_once_the_run_is_cancelled() -> None:
    stop = threading.Event()

    def reactor(pipe):
        stop.set()
        yield 1
        raise AssertionError("ran past the cancel")

    run, _told = _driven(reactor)
    run.job.should_stop = stop.is_set
    with pytest.raises(RunCancelled):
        drive(run)


# -- the same pipeline under inline and threads:2 ---------------------------------------------
class Config(ConfigBase):
    def __init__(self) -> None:
        super().__init__()
        self.scale = 2
        self.seconds = 0.3


def define_pipeline(starts: dict[str, list[float]]) -> list:
    """A diamond with a subreactor, a param, an array and an out-of-core file, and two slow
    independent branches."""
    import numpy as np

    def note(name: str) -> None:
        starts.setdefault(name, []).append(time.time())

    @SubreactorFunc
    def doubled(values):
        return [2 * v for v in values]

    @ReactorFunc
    def source(pipe, config):
        note("source")
        pipe.send("raw", list(range(10)))

    @ReactorFunc
    def left(pipe, config):
        raw = yield pipe.receive("raw")
        note("left")
        time.sleep(config.seconds)
        values = yield from doubled(raw)
        pipe.send("left", np.asarray(values) * config.scale)

    @ReactorFunc
    def right(pipe, config):
        raw = yield pipe.receive("raw")
        note("right")
        time.sleep(config.seconds)
        path = pipe.allocate("right_file", "file", suffix=".txt")
        Path(path).write_text(",".join(map(str, raw)))
        pipe.send("right_file", path)

    @ReactorFunc
    def join(pipe):
        left_values, right_path = yield pipe.receive("left"), pipe.receive("right_file")
        note("join")
        pipe.send("joined", int(left_values.sum()) + len(Path(right_path).read_text()))

    return [source, left, right, join]


def run_plant(plant_dir: Path, executor: str, config: Config) -> tuple[dict, dict, dict, dict]:
    starts: dict[str, list[float]] = {}
    reactors = define_pipeline(starts)
    with Plant(plant_dir, executor=executor) as plant:
        plant.add_reactors(reactors)
        plant.set_config(config)
        plant.run_reactor("join")
        decisions = {d.reactor: (d.status, d.reasons) for d in plant.last_run}
        spans = {d.reactor: (d.started_at, d.started_at + d.duration) for d in plant.last_run
                 if d.status == "ran"}  # fmt: skip
        store = plant.store
        fingerprints = {name: r.fingerprint for name, r in store.ingredients.items()}
        values = {"joined": plant.fetch_ingredient("joined")}
        left = plant.fetch_ingredient("left")
        values["left"] = left.tolist()
        wheres = {d.reactor: d.where for d in plant.last_run if d.status == "ran"}
    return decisions, fingerprints, values, {"spans": spans, "where": wheres}


def test_threads_decide_fingerprint_and_compute_as_inline(tmp_path: Path) -> None:
    config = Config()
    inline = run_plant(tmp_path / "inline", "inline", config)
    threads = run_plant(tmp_path / "threads", "threads:2", config)
    assert threads[:3] == inline[:3]
    assert threads[3]["where"]["join"] == "main"  # the target stays on the main thread
    assert threads[3]["where"]["left"] == threads[3]["where"]["right"] == "thread"
    assert set(inline[3]["where"].values()) == {"main"}
    # a second run is fully cached under both; an edit of the param re-runs the same reactors
    for runs in range(2):
        config = Config()
        config.scale = 3 if runs else 2
        again_inline = run_plant(tmp_path / "inline", "inline", config)
        again_threads = run_plant(tmp_path / "threads", "threads:2", config)
        assert again_threads[:3] == again_inline[:3]
    assert again_threads[0]["left"][0] == "ran" and again_threads[0]["source"][0] == "cached"
    # a plant made under one executor is fully cached under another
    crossed = run_plant(tmp_path / "threads", "inline", config)
    assert {status for status, _ in crossed[0].values()} == {"ran", "cached"}
    assert [n for n, (status, _) in crossed[0].items() if status == "ran"] == ["join"]


def _overlap(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one moment."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


def test_independent_branches_run_at_once_on_threads(tmp_path: Path) -> None:
    _, _, _, seen = run_plant(tmp_path / "plant", "threads:2", Config())
    spans = seen["spans"]
    assert _overlap([spans["left"], spans["right"]]) == 2, spans


WIDE = 6


def define_wide(multi: bool = True) -> list:
    def part(index: int):
        def make(pipe):
            time.sleep(pipe.read_config("seconds"))
            pipe.send(f"part_{index}", index)

        make.__name__ = make.__qualname__ = f"part_{index}"
        return ReactorFunc(make)

    @ReactorFunc
    def sink(pipe):
        parts = yield tuple(pipe.receive(f"part_{i}") for i in range(WIDE))
        pipe.send("total", sum(parts))

    @ReactorFunc
    def one_by_one(pipe):
        parts = []
        for i in range(WIDE):
            parts.append((yield pipe.receive(f"part_{i}")))
        pipe.send("total", sum(parts))

    if not multi:
        one_by_one.__name__ = one_by_one.__qualname__ = "sink"
        sink = ReactorFunc(one_by_one)

    return [*(part(i) for i in range(WIDE)), sink]


def wide_run(plant_dir: Path, executor: str, seconds: float, multi: bool = True) -> list:
    with Plant(plant_dir, executor=executor) as plant:
        plant.add_reactors(define_wide(multi))
        plant.set_config({"seconds": seconds})
        plant.run_reactor("sink")
        assert plant.fetch_ingredient("total") == sum(range(WIDE))
        return plant.last_run


def test_a_multi_receive_on_a_first_run_starts_producers_together(tmp_path: Path) -> None:
    decisions = wide_run(tmp_path / "plant", "threads:2", 0.3)
    parts = [(d.started_at, d.started_at + d.duration) for d in decisions if d.reactor != "sink"]
    assert len(parts) == WIDE and _overlap(parts) == 2, parts


@pytest.mark.parametrize("multi", [True, False], ids=["multi-receive", "one-by-one"])
def test_with_records_stale_producers_start_before_their_consumer_asks(
    tmp_path: Path, multi: bool
) -> None:
    wide_run(tmp_path / "plant", "threads:2", 0.01, multi)
    decisions = wide_run(tmp_path / "plant", "threads:2", 0.3, multi)  # a param: all stale
    parts = [(d.started_at, d.started_at + d.duration) for d in decisions if d.reactor != "sink"]
    assert [d.status for d in decisions].count("ran") == WIDE + 1
    assert _overlap(parts) == 2, parts


def wait_for_pool_threads_to_end() -> None:
    deadline = time.monotonic() + 20
    while any(t.name.startswith("pyplantd-reactor") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a cancelled reactor's thread did not end"
        time.sleep(0.01)


def test_a_failure_on_a_thread_fails_the_run_naming_the_reactor(tmp_path: Path) -> None:
    @ReactorFunc
    def broken(pipe):
        raise ValueError("bad data")

    @ReactorFunc
    def slow(pipe):
        time.sleep(0.2)
        pipe.send("slow", 1)

    @ReactorFunc
    def both(pipe):
        yield pipe.receive("slow"), pipe.receive("broken")

    with Plant(tmp_path / "plant", executor="threads:2") as plant:
        plant.add_reactors([broken, slow, both])
        with pytest.raises(ReactorFailedError, match="Reactor 'broken' failed: ValueError"):
            plant.run_reactor(both)
        statuses = {d.reactor: d.status for d in plant.last_run}
    assert statuses["broken"] == "failed"
    wait_for_pool_threads_to_end()  # slow's, cancelled: it ends at its send


def test_a_reactor_that_finished_beside_a_failure_stays_recorded(tmp_path: Path) -> None:
    """The coordinator is busy with a target on the main thread while, on the pool, one reactor
    fails and then another finishes: both events come in one batch; the failure fails the run
    and the finished reactor is recorded all the same."""

    never = time.time() < 0

    @ReactorFunc
    def bad(pipe):
        time.sleep(0.2)
        if not never:
            raise ValueError("bad data")
        pipe.send("from_bad", 1)  # its code says so: `waits` starts it

    @ReactorFunc
    def ok(pipe):
        pipe.send("early", 1)  # before the main thread gets busy
        time.sleep(0.6)

    @ReactorFunc
    def waits(pipe):
        yield pipe.receive("from_bad")

    @ReactorFunc
    def busy(pipe):
        yield pipe.receive("early")
        time.sleep(1.5)  # on the main thread, while bad fails and ok ends

    stop_after = threading.Event()
    with Plant(tmp_path / "plant", executor="threads:2") as plant:
        plant.add_reactors([bad, ok, waits, busy])
        with pytest.raises(ReactorFailedError, match="'bad'"):
            plant.run_reactors([waits, busy], should_stop=stop_after.is_set)
        statuses = {d.reactor: d.status for d in plant.last_run}
        assert statuses.get("bad") == "failed" and statuses.get("ok") == "ran", statuses
        assert any(r.name == "ok" for r in plant.store.reactors.values())
    wait_for_pool_threads_to_end()


def test_a_cancel_stops_the_run_at_once_and_commits_nothing_of_a_thread_still_running(
    tmp_path: Path,
) -> None:
    release = threading.Event()

    @ReactorFunc
    def long(pipe):
        release.wait(30)  # the user's code: not interruptible on a thread
        pipe.send("long", 1)
        yield pipe.receive("never")  # stops here: the run was cancelled

    @ReactorFunc
    def target(pipe):
        value = yield pipe.receive("long")
        pipe.send("out", value)

    stop = threading.Event()
    with Plant(tmp_path / "plant", executor="threads:2") as plant:
        plant.add_reactors([long, target])
        timer = threading.Timer(0.3, stop.set)
        timer.start()
        begun = time.monotonic()
        with pytest.raises(RunCancelled):
            plant.run_reactors([target], should_stop=stop.is_set)
        assert time.monotonic() - begun < 10  # did not wait for the thread
        release.set()
        timer.join(10)
        wait_for_pool_threads_to_end()
        assert "long" not in plant.store.ingredients
        assert "long" not in plant.store.reactors


# -- reactors that need the main thread -----------------------------------------------------------
@ReactorFunc
def computed_anywhere(pipe):
    pipe.send("values", [1, 2, 3])


@ReactorFunc(main_thread=True)
def drawn_on_main(pipe):  # e.g. a GUI toolkit's window: only the main thread may open it
    values = yield pipe.receive("values")
    pipe.send("drawn", (sum(values), threading.current_thread() is threading.main_thread()))


@ReactorFunc
def reported(pipe):
    drawn = yield pipe.receive("drawn")
    pipe.send("report", drawn)


def test_a_reactor_marked_main_thread_runs_on_it_with_threads(tmp_path: Path) -> None:
    with Plant(tmp_path / "plant", executor="threads:2") as plant:
        plant.add_reactors(computed_anywhere, drawn_on_main, reported)
        decisions = {d.reactor: d for d in plant.run_reactor(reported)}
        assert plant.fetch_ingredient("report") == (6, True)
    assert decisions["drawn_on_main"].where == "main"
    assert decisions["computed_anywhere"].where == "thread"


def test_the_marked_decorator_returns_the_function_and_the_bare_one_still_works() -> None:
    from pyplantd.reactor import is_reactor, needs_main_thread

    assert is_reactor(drawn_on_main) and needs_main_thread(drawn_on_main)
    assert is_reactor(reported) and not needs_main_thread(reported)
    assert drawn_on_main.__name__ == "drawn_on_main"
