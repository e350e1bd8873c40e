"""PyPlant 0.6.0 compatibility, in process: each PyPlant name and behaviour that pyplantd keeps.

The scripts written in PyPlant's own spelling, run one-shot and under the daemon, are in
test_pyplant_scripts.py.
"""

from __future__ import annotations

import pickle

import pytest

from pyplantd import Plant, PlantError, ReactorFailedError, ReactorFunc, SubreactorFunc


# -- exceptions -----------------------------------------------------------------------------
class CodedError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


@pytest.mark.parametrize(
    "cause",
    [
        ValueError("bad value"),
        KeyError("missing"),
        FileNotFoundError(2, "No such file", "input.csv"),
        CodedError(7, "coded"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
    ],
    ids=lambda c: type(c).__name__,
)
def test_reactor_exception_is_caught_as_its_own_type_and_as_reactor_failed(plant_dir, cause):
    @ReactorFunc
    def parse(pipe):
        raise cause

    with Plant(plant_dir) as plant, pytest.raises(type(cause)) as caught:
        plant.run_reactor(parse)
    failure = caught.value
    assert isinstance(failure, ReactorFailedError) and isinstance(failure, PlantError)
    assert failure.__cause__ is cause and failure.reactor == "parse"
    line = parse.__code__.co_firstlineno + 2
    assert f"Reactor 'parse' failed: {type(cause).__name__}" in str(failure)
    assert f"test_compat.py:{line}" in str(failure)
    assert failure.args == cause.args  # what `except ValueError as e: e.args` saw in PyPlant
    for field in ("code", "errno", "strerror", "filename", "start", "end", "reason"):
        if hasattr(cause, field):
            assert getattr(failure, field) == getattr(cause, field)
    copy = pickle.loads(pickle.dumps(failure))
    assert type(copy) is type(failure) and str(copy) == str(failure)


def test_a_bare_exception_or_a_plant_error_in_a_reactor_stays_a_reactor_failed_error(plant_dir):
    @ReactorFunc
    def generic(pipe):
        raise Exception("plain")

    with Plant(plant_dir) as plant, pytest.raises(ReactorFailedError, match="plain") as caught:
        plant.run_reactor(generic)
    assert type(caught.value) is ReactorFailedError


# -- events ---------------------------------------------------------------------------------
def event_pipeline():
    @SubreactorFunc
    def inner(pipe, x):
        value = yield pipe.receive("a")
        return value + x

    @SubreactorFunc
    def outer(pipe):
        result = yield from inner(pipe, 1)
        pipe.send("o", result)
        return result

    @SubreactorFunc
    def plain_sub(x):
        return x * 2

    @ReactorFunc
    def make_a(pipe, config):
        pipe.send("a", config.n)

    @ReactorFunc
    def make_b(pipe):
        a = yield pipe.receive("a")
        r = yield from outer(pipe)
        p = yield from plain_sub(3)
        pipe.send("b", a + r + p)

    @ReactorFunc
    def plain(pipe):
        pipe.send("p", 5)

    @ReactorFunc
    def make_c(pipe):
        b = yield pipe.receive("b")
        p = yield pipe.receive("p")
        pipe.send("c", b + p)

    return make_c


LISTENED = ("reactor_started", "reactor_step", "subreactor_started", "reactor_finished")


def run_listened(plant_dir, n: int) -> list[str]:
    """Events as PyPlant's listeners get them: `callback(event_type, *args)`."""
    heard: list[str] = []

    def listener(event_type, *args):
        shown = [a if isinstance(a, str) else type(a).__name__ for a in args]
        heard.append(" ".join([event_type.name, *shown]))

    target = event_pipeline()
    with Plant(plant_dir) as plant:
        for name in LISTENED:
            plant.add_event_listener(Plant.EventType[name], listener)
        plant.set_config({"n": n})
        plant.run_reactor(target)
        assert plant.fetch_ingredient("c") == 2 * n + 12
    return heard


# What PyPlant 0.6.0's listeners heard for the same pipeline (recorded by running it).
PYPLANT_FIRST_RUN = """
reactor_started make_c function
reactor_step make_c
reactor_started make_a function
reactor_step make_a
reactor_finished make_a
reactor_started make_b function
reactor_step make_b
reactor_step make_b
subreactor_started outer
reactor_step make_b
subreactor_started inner
reactor_step make_b
reactor_step make_b
subreactor_started plain_sub
reactor_finished make_b
reactor_step make_c
reactor_started plain function
reactor_step plain
reactor_finished plain
reactor_finished make_c
"""
PYPLANT_CACHED_RUN = """
reactor_started make_c function
reactor_step make_c
reactor_step make_c
reactor_finished make_c
"""


def test_listeners_hear_pyplants_events_in_pyplants_order(plant_dir):
    assert run_listened(plant_dir, 1) == PYPLANT_FIRST_RUN.split("\n")[1:-1]
    assert run_listened(plant_dir, 1) == PYPLANT_CACHED_RUN.split("\n")[1:-1]


def test_a_consumer_of_a_changed_input_starts_once_its_producer_finished(plant_dir):
    """The one deliberate difference: PyPlant started make_b, paused it on 'a', then ran make_a;
    pyplantd starts make_b only once 'a' is known to have changed (else it would not run)."""
    run_listened(plant_dir, 1)
    heard = run_listened(plant_dir, 2)
    assert heard[:6] == [
        "reactor_started make_c function", "reactor_step make_c",
        "reactor_started make_a function", "reactor_step make_a", "reactor_finished make_a",
        "reactor_started make_b function",
    ]  # fmt: skip
    first_run = PYPLANT_FIRST_RUN.split("\n")[1:-1]
    assert heard[6:] == [*first_run[6:16], "reactor_finished make_c"]


def test_two_argument_listeners_and_subscribers_are_served_as_before(plant_dir):
    started: list[str] = []
    seen: list[str] = []
    target = event_pipeline()
    with Plant(plant_dir) as plant:
        plant.add_event_listener(
            Plant.EventType.reactor_started, lambda t, name: started.append(name)
        )
        plant.subscribe(lambda event: seen.append(event.type.name))
        plant.set_config({"n": 1})
        plant.run_reactor(target)
    assert started == ["make_c", "make_a", "make_b", "plain"]
    assert "reactor_step" not in seen and "subreactor_started" in seen


def test_remove_event_listener_stops_it(plant_dir):
    heard: list[str] = []

    def listener(event_type, name):
        heard.append(name)

    target = event_pipeline()
    with Plant(plant_dir) as plant:
        plant.add_event_listener(Plant.EventType.reactor_step, listener)
        plant.remove_event_listener(listener)
        plant.set_config({"n": 1})
        plant.run_reactor(target)
    assert heard == []
