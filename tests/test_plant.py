"""In-process engine behaviour: what runs, what is cached, and why."""

from __future__ import annotations

import time

import numpy as np
import pytest

from pyplantd import (
    ConfigBase,
    Ingredient,
    IngredientNotFoundError,
    Plant,
    PlantError,
    ReactorFailedError,
    ReactorFunc,
    ReactorNotFoundError,
    SubreactorFunc,
)
from pyplantd.errors import ConfigWriteError, DependencyCycleError, UnknownParamError


class Changeable:
    """A function_hash that lets a test mark functions as edited."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}

    def __call__(self, func) -> str:
        return f"{func.__qualname__}@{self.versions.get(func.__name__, 0)}"

    def edit(self, name: str) -> None:
        self.versions[name] = self.versions.get(name, 0) + 1


def make_chain(ran: list[str], behaviour: dict | None = None):
    behaviour = behaviour if behaviour is not None else {}

    @ReactorFunc
    def load(pipe, config):
        ran.append("load")
        pipe.send("data", np.arange(config.n, dtype=np.float64) * behaviour.get("scale", 1))

    @ReactorFunc
    def process(pipe):
        ran.append("process")
        data = yield pipe.receive("data")
        if behaviour.get("fail"):
            raise ValueError("boom")
        pipe.send("total", float(data.sum()))

    @ReactorFunc
    def report(pipe, config):
        ran.append("report")
        total = yield pipe.receive("total")
        pipe.send("text", f"{config.label}: {total}")

    return load, process, report


def run(plant_dir, ran, target="report", config=None, hasher=None, behaviour=None, aux=()):
    ran.clear()
    reactors = make_chain(ran, behaviour)
    with Plant(plant_dir, function_hash=hasher) as plant:
        plant.add_reactors(*reactors)
        plant.set_config(config or {"n": 10, "label": "sum"})
        plant.mark_params_as_auxiliary(list(aux))
        decisions = plant.run_reactor(target)
        text = plant.fetch_ingredient("text") if plant.is_ingredient_known("text") else None
    return {d.reactor: d for d in decisions}, text


def test_first_run_runs_everything_in_dependency_order(plant_dir):
    ran: list[str] = []
    decisions, text = run(plant_dir, ran)
    assert ran == ["report", "load", "process"]  # report starts, then waits for its inputs
    assert text == "sum: 45.0"
    assert all(d.status == "ran" for d in decisions.values())


def test_rerun_without_change_runs_only_the_target(plant_dir):
    ran: list[str] = []
    run(plant_dir, ran)
    decisions, text = run(plant_dir, ran)
    assert ran == ["report"]
    assert text == "sum: 45.0"
    assert decisions["load"].status == "cached" and decisions["process"].status == "cached"


def test_param_change_reruns_the_reader_and_downstream(plant_dir):
    ran: list[str] = []
    run(plant_dir, ran)
    decisions, text = run(plant_dir, ran, config={"n": 20, "label": "sum"})
    assert sorted(ran) == ["load", "process", "report"]
    assert decisions["load"].reasons == ["param 'n' changed 10 -> 20"]
    assert decisions["process"].reasons == ["input 'data' changed"]
    assert text == "sum: 190.0"


def test_param_read_only_by_target_reruns_nothing_upstream(plant_dir):
    ran: list[str] = []
    run(plant_dir, ran)
    _, text = run(plant_dir, ran, config={"n": 10, "label": "total"})
    assert ran == ["report"]
    assert text == "total: 45.0"


def test_auxiliary_param_change_reruns_nothing(plant_dir):
    ran: list[str] = []
    run(plant_dir, ran, config={"n": 10, "label": "sum", "log": 1})
    run(plant_dir, ran, target="process", config={"n": 10, "label": "sum", "log": 1})
    assert ran == ["process"]
    run(plant_dir, ran, target="process", config={"n": 11, "label": "sum", "log": 1}, aux=["n"])
    assert ran == ["process"]


def test_code_change_reruns_that_reactor_and_what_depends_on_it(plant_dir):
    ran: list[str] = []
    hasher = Changeable()
    run(plant_dir, ran, hasher=hasher)
    hasher.edit("load")
    decisions, _ = run(plant_dir, ran, hasher=hasher, behaviour={"scale": 2})
    assert sorted(ran) == ["load", "process", "report"]
    assert decisions["load"].reasons[0] == "code changed (make_chain.<locals>.load)"


def test_identical_output_stops_reruns_early(plant_dir):
    ran: list[str] = []
    hasher = Changeable()
    run(plant_dir, ran, hasher=hasher)
    hasher.edit("load")  # a refactor producing the same data
    decisions, _ = run(plant_dir, ran, hasher=hasher)
    assert sorted(ran) == ["load", "report"]
    assert decisions["process"].status == "cached"


def test_failure_keeps_earlier_results_and_fix_reruns_only_the_failed(plant_dir):
    ran: list[str] = []
    with pytest.raises(ReactorFailedError, match="process") as failure:
        run(plant_dir, ran, behaviour={"fail": True})
    assert isinstance(failure.value.__cause__, ValueError)
    run(plant_dir, ran)
    assert sorted(ran) == ["process", "report"]


def test_many_runs_in_one_plant_are_independent_generations(plant_dir):
    ran: list[str] = []
    with Plant(plant_dir) as plant:
        plant.add_reactors(*make_chain(ran))
        plant.set_config({"n": 3, "label": "x"})
        plant.run_reactor("report")
        plant.run_reactor("report")
        plant.set_config({"n": 4, "label": "x"})
        plant.run_reactor("report")
        assert plant.fetch_ingredient("text") == "x: 6.0"
    assert ran == ["report", "load", "process", "report", "report", "load", "process"]


def test_received_arrays_are_read_only(plant_dir):
    errors = []

    @ReactorFunc
    def make(pipe):
        pipe.send("a", np.zeros(4))

    @ReactorFunc
    def mutate(pipe):
        a = yield pipe.receive("a")
        try:
            a[0] = 1
        except ValueError as err:
            errors.append(str(err))
        pipe.send("b", a.copy() + 1)

    with Plant(plant_dir) as plant:
        plant.run_reactor(mutate)
        assert "read-only" in errors[0]
        assert plant.fetch_ingredient("a").tolist() == [0, 0, 0, 0]


VALUES = {
    "tuple": (1, "a", 2.5),
    "dict": {"k": [1, 2], "z": None},
    "set": {3, 1, 2},
    "list": [1, (2, 3), {"x": 1}],
    "int": 7,
    "str": "text",
    "none": None,
    "bytes": b"\x00\x01",
    "f16": np.arange(6, dtype=np.float16).reshape(2, 3),
    "i64_3d": np.arange(24, dtype=np.int64).reshape(2, 3, 4),
    "bool": np.array([True, False]),
    "empty": np.zeros((0, 5), dtype=np.uint8),
    "scalar": np.array(3.5),
    "objects": np.array([{"a": 1}, None], dtype=object),
    "structured": np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
}


def test_values_come_back_with_exact_types_after_reopening(plant_dir):
    @ReactorFunc
    def produce(pipe):
        for name, value in VALUES.items():
            pipe.send(name, value)

    with Plant(plant_dir) as plant:
        plant.run_reactor(produce)
    with Plant(plant_dir) as plant:
        for name, expected in VALUES.items():
            got = plant.fetch_ingredient(name)
            assert type(got) is type(expected), name
            if isinstance(expected, np.ndarray):
                assert got.dtype == expected.dtype and got.shape == expected.shape, name
                assert got.tolist() == expected.tolist(), name
            else:
                assert got == expected, name


def test_explicit_types_and_inference(plant_dir):
    @ReactorFunc
    def produce(pipe):
        pipe.send("s", 5, Ingredient.Type.simple)
        pipe.send("l", [1, 2], Ingredient.Type.list)
        pipe.send("o", {"a": 1}, Ingredient.Type.object)
        pipe.send("a", np.ones(2), Ingredient.Type.array)

    with Plant(plant_dir) as plant:
        plant.run_reactor(produce)
        types = {n: r.type for n, r in plant.store.ingredients.items()}
    assert types == {"s": "simple", "l": "list", "o": "object", "a": "array"}


def test_allocated_file_and_hdf_array_persist(plant_dir):
    @ReactorFunc
    def write(pipe):
        path = pipe.allocate("notes", Ingredient.Type.file, suffix=".txt")
        with open(path, "w") as handle:
            handle.write("hello")
        pipe.send("notes", path)
        big = pipe.allocate(
            "big", Ingredient.Type.hdf_array, shape=(100, 10), dtype="f4", chunks=(10, 10)
        )
        for start in range(0, 100, 10):
            big[start : start + 10] = start
        pipe.send("big", big)

    @ReactorFunc
    def read(pipe):
        path = yield pipe.receive("notes")
        big = yield pipe.receive("big")
        with open(path) as handle:
            pipe.send("summary", (handle.read(), float(big[90:100].mean()), big.shape))

    with Plant(plant_dir) as plant:
        plant.run_reactor(read)
        assert plant.fetch_ingredient("summary") == ("hello", 90.0, (100, 10))
    with Plant(plant_dir) as plant:
        path = plant.fetch_ingredient("notes")
        with open(path) as handle:
            assert path.endswith(".txt") and handle.read() == "hello"
        assert plant.fetch_ingredient("big")[5, 0] == 0.0


def test_allocated_but_never_sent_is_an_error_naming_it(plant_dir):
    @ReactorFunc
    def forgetful(pipe):
        pipe.allocate("lost", Ingredient.Type.hdf_array, shape=(3,), dtype="f4")

    with Plant(plant_dir) as plant, pytest.raises(ReactorFailedError, match="'lost'"):
        plant.run_reactor(forgetful)
    leftovers = [p.name for p in (plant_dir / "payloads").iterdir()]
    assert leftovers == []


def test_subreactors_nested_and_plain_are_tracked(plant_dir):
    ran: list[str] = []
    hasher = Changeable()

    @SubreactorFunc
    def inner(pipe):
        data = yield pipe.receive("data")
        return data * 2

    @SubreactorFunc
    def outer(pipe):
        doubled = yield from inner(pipe)
        return doubled + 1

    @SubreactorFunc
    def plain(value):
        return value - 1

    @ReactorFunc
    def load(pipe):
        ran.append("load")
        pipe.send("data", 10)

    @ReactorFunc
    def calc(pipe):
        ran.append("calc")
        value = yield from outer(pipe)
        value = yield from plain(value)
        pipe.send("value", value)

    @ReactorFunc
    def show(pipe):
        ran.append("show")
        yield pipe.receive("value")

    subreactor_events: list[str] = []

    def go():
        ran.clear()
        with Plant(plant_dir, function_hash=hasher) as plant:
            plant.add_reactors(load, calc, show)
            plant.add_event_listener(
                Plant.EventType.subreactor_started, lambda t, n: subreactor_events.append(n)
            )
            decisions = {d.reactor: d for d in plant.run_reactor(show)}
            return decisions, plant.fetch_ingredient("value")

    assert go()[1] == 20
    assert subreactor_events == ["outer", "inner", "plain"]  # PyPlant passes the subreactor
    go()
    assert ran == ["show"]
    hasher.edit("inner")
    decisions, _ = go()
    assert sorted(ran) == ["calc", "show"]
    assert any("inner" in reason for reason in decisions["calc"].reasons)


def test_config_object_tracking_and_errors(plant_dir):
    class Config(ConfigBase):
        def __init__(self):
            super().__init__()
            self.color = "red"
            self.level = "info"
            self.mark_auxiliary(["level"])

    seen = []

    @ReactorFunc
    def draw(pipe, config):
        seen.append((config.color, config.level))
        with pytest.raises(ConfigWriteError, match="color"):
            config.color = "blue"
        with pytest.raises(UnknownParamError, match=r"'colour'.*known: color, level"):
            _ = config.colour
        pipe.send("out", config.color)

    with Plant(plant_dir) as plant:
        plant.set_config(Config())
        plant.run_reactor(draw)
        record = plant.store.reactors[
            "test_plant:test_config_object_tracking_and_errors.<locals>.draw"
        ]
    assert list(record.params) == ["color"]  # the auxiliary one is not a dependency
    assert seen == [("red", "info")]


def test_dict_config_keys_need_not_be_identifiers(plant_dir):
    @ReactorFunc
    def read(pipe):
        pipe.send("v", pipe.read_config("log-level"))

    with Plant(plant_dir) as plant:
        plant.set_config({"log-level": "debug"})
        plant.run_reactor(read)
        assert plant.fetch_ingredient("v") == "debug"


def test_unknown_param_error_names_it(plant_dir):
    @ReactorFunc
    def read(pipe):
        pipe.read_config("missing")

    with Plant(plant_dir) as plant:
        plant.set_config({"present": 1})
        with pytest.raises(ReactorFailedError) as failure:
            plant.run_reactor(read)
    assert "'missing'" in str(failure.value.__cause__)


def test_missing_ingredient_error_names_ingredient_reactor_and_tried(plant_dir):
    @ReactorFunc
    def load(pipe):
        pipe.send("data", 1)

    @ReactorFunc
    def use(pipe):
        yield pipe.receive("dta")

    with Plant(plant_dir) as plant:
        plant.add_reactors(load, use)
        started = time.monotonic()
        with pytest.raises(IngredientNotFoundError) as failure:
            plant.run_reactor(use)
    assert time.monotonic() - started < 5
    message = str(failure.value)
    assert "'dta'" in message and "'use'" in message and "tried: load" in message


def test_dependency_cycle_is_an_error_not_a_hang(plant_dir):
    @ReactorFunc
    def a(pipe):
        yield pipe.receive("y")
        pipe.send("x", 1)

    @ReactorFunc
    def b(pipe):
        yield pipe.receive("x")
        pipe.send("y", 2)

    with Plant(plant_dir) as plant:
        plant.add_reactors(a, b)
        with pytest.raises(DependencyCycleError, match="'a' waits for 'y'"):
            plant.run_reactor(a)


def test_unknown_reactor_lists_known_ones(plant_dir):
    ran: list[str] = []
    with Plant(plant_dir) as plant:
        plant.add_reactors(*make_chain(ran))
        with pytest.raises(ReactorNotFoundError, match="known: load, process, report"):
            plant.run_reactor("plot")


def test_non_reactor_is_refused(plant_dir):
    def plain(pipe):
        pass

    with Plant(plant_dir) as plant, pytest.raises(PlantError, match="@ReactorFunc"):
        plant.add_reactors(plain)


def test_events_arrive_in_real_order(plant_dir):
    ran: list[str] = []
    events = []
    with Plant(plant_dir) as plant:
        plant.add_reactors(*make_chain(ran))
        plant.set_config({"n": 2, "label": "x"})
        for kind in (Plant.EventType.reactor_started, Plant.EventType.reactor_finished):
            plant.add_event_listener(kind, lambda t, name: events.append((t.value, name)))
        plant.run_reactor("report")
    assert events == [
        ("reactor_started", "report"),
        ("reactor_started", "load"),
        ("reactor_finished", "load"),
        ("reactor_started", "process"),
        ("reactor_finished", "process"),
        ("reactor_finished", "report"),
    ]


def test_failed_event_and_history(plant_dir):
    ran: list[str] = []
    failed = []
    with Plant(plant_dir) as plant:
        plant.add_reactors(*make_chain(ran, {"fail": True}))
        plant.set_config({"n": 2, "label": "x"})
        plant.add_event_listener(Plant.EventType.reactor_failed, lambda t, n: failed.append(n))
        with pytest.raises(ReactorFailedError):
            plant.run_reactor("report")
        history = plant.get_execution_history()
        lines: list[str] = []
        plant.print_execution_history(lines.append)
    assert failed == ["process"]
    assert history["process"].status == "failed" and history["load"].status == "ran"
    assert history["load"].total_runtime >= 0
    assert any(line.startswith("load") for line in lines)


def test_auto_registration_of_visible_reactors(plant_dir):
    ran: list[str] = []
    make_chain(ran)
    with Plant(plant_dir) as plant:
        plant.set_config({"n": 1, "label": "x"})
        plant.run_reactor("report")
        assert sorted(plant.reactor_names()) == ["load", "process", "report"]


def test_moving_a_send_to_another_reactor_does_not_hang(plant_dir):
    hasher = Changeable()
    moved = {"flag": False}

    # An edit moves the send: the name each one sends is computed here, as two reactors whose
    # code both send "x" would be an ambiguous graph (test_graph_rules).
    @ReactorFunc
    def first(pipe):
        pipe.send("moved" if moved["flag"] else "x", 1)
        pipe.send("other", 0)

    @ReactorFunc
    def second(pipe):
        pipe.send("x" if moved["flag"] else "not yet", 2)

    @ReactorFunc
    def use(pipe):
        pipe.send("out", (yield pipe.receive("x")))

    def go():
        with Plant(plant_dir, function_hash=hasher) as plant:
            plant.add_reactors(first, second, use)
            plant.run_reactor(use)
            return plant.fetch_ingredient("out")

    assert go() == 1
    moved["flag"] = True
    hasher.edit("first")
    hasher.edit("second")
    assert go() == 2


def test_swapping_producer_and_consumer_does_not_hang(plant_dir):
    hasher = Changeable()
    swapped = {"flag": False}

    @ReactorFunc
    def a(pipe):
        if swapped["flag"]:
            y = yield pipe.receive("y")
            pipe.send("x", y + 1)
        else:
            pipe.send("x", 1)

    @ReactorFunc
    def b(pipe):
        if swapped["flag"]:
            pipe.send("y", 10)
        else:
            x = yield pipe.receive("x")
            pipe.send("y", x + 1)

    @ReactorFunc
    def top(pipe):
        x = yield pipe.receive("x")
        y = yield pipe.receive("y")
        pipe.send("out", (x, y))

    def go():
        with Plant(plant_dir, function_hash=hasher) as plant:
            plant.add_reactors(a, b, top)
            plant.run_reactor(top)
            return plant.fetch_ingredient("out")

    assert go() == (1, 2)
    swapped["flag"] = True
    hasher.edit("a")
    hasher.edit("b")
    assert go() == (11, 10)


def test_reactor_that_yields_a_plain_value_gets_it_back(plant_dir):
    @ReactorFunc
    def odd(pipe):
        value = yield 5
        pipe.send("v", value)

    with Plant(plant_dir) as plant:
        plant.run_reactor(odd)
        assert plant.fetch_ingredient("v") == 5


def test_plain_function_reactor_without_config(plant_dir):
    @ReactorFunc
    def plain(pipe):
        pipe.send("v", 1)

    with Plant(plant_dir) as plant:
        plant.run_reactor(plain)
        assert plant.fetch_ingredient("v") == 1


def test_tracked_file_change_reruns_exactly_its_readers(plant_dir, tmp_path):
    raw = tmp_path / "raw.csv"
    raw.write_text("1,2,3")
    ran: list[str] = []

    @ReactorFunc
    def parse(pipe):
        ran.append("parse")
        with open(pipe.track_file(raw)) as handle:
            pipe.send("numbers", [int(x) for x in handle.read().split(",")])

    @ReactorFunc
    def other(pipe):
        ran.append("other")
        pipe.send("constant", 7)

    @ReactorFunc
    def report(pipe):
        ran.append("report")
        numbers = yield pipe.receive("numbers")
        constant = yield pipe.receive("constant")
        pipe.send("out", sum(numbers) + constant)

    def go():
        ran.clear()
        with Plant(plant_dir) as plant:
            plant.add_reactors(parse, other, report)
            decisions = {d.reactor: d for d in plant.run_reactor(report)}
            return decisions, plant.fetch_ingredient("out")

    assert go()[1] == 13
    go()
    assert ran == ["report"]
    raw.write_text("1,2,3,4")
    decisions, out = go()
    assert out == 17 and sorted(ran) == ["parse", "report"]
    assert decisions["parse"].reasons == [f"file '{raw}' changed"]  # outside the cwd: absolute
    raw.write_text("1,2,3")  # back to the first content: the first result is restored
    decisions, out = go()
    assert out == 13 and ran == ["report"] and decisions["parse"].status == "cached"
    raw.unlink()
    with pytest.raises(ReactorFailedError, match=r"raw\.csv"):
        go()
