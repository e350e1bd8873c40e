"""Ambiguous graphs are errors, whatever ran before: two reactors sending the same ingredient is
an error naming both; a reactor receiving what it sends itself is a DependencyCycleError naming
it; reactors waiting for each other name the cycle; an ingredient nobody sends is not a cycle.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import Project
from pyplant_client import Client
from test_daemon import Daemon, daemon, save_atomic  # noqa: F401 (fixtures)

from pyplantd import Plant, ReactorFunc
from pyplantd.errors import (
    AmbiguousIngredientError,
    DependencyCycleError,
    IngredientNotFoundError,
    ReactorFailedError,
)


def make_load(name: str, value: int, computed: bool = False) -> Any:
    """A reactor sending "data": as a literal name, or as a name computed at run time."""
    if computed:

        def load(pipe):
            pipe.send("".join(["da", "ta"]), value)
    else:

        def load(pipe):
            pipe.send("data", value)

    load.__name__ = load.__qualname__ = name
    return ReactorFunc(load)


@ReactorFunc
def show(pipe):
    data = yield pipe.receive("data")
    pipe.send("shown", data)


@ReactorFunc
def selfish(pipe):
    mine = yield pipe.receive("mine")
    pipe.send("mine", mine + 1)


@ReactorFunc
def echo(pipe):
    pipe.send("said", 1)
    heard = yield pipe.receive("said")  # after sending it: its own value, no wait
    pipe.send("heard", heard)


@ReactorFunc
def ping(pipe):
    yield pipe.receive("pong")
    pipe.send("ping", 1)


@ReactorFunc
def pong(pipe):
    yield pipe.receive("ping")
    pipe.send("pong", 1)


@ReactorFunc
def lost(pipe):
    yield pipe.receive("nowhere")


@ReactorFunc
def astray(pipe):
    yield pipe.receive("nothing")


@dataclass(frozen=True)
class Case:
    name: str
    reactors: tuple[Any, ...]
    runs: tuple[tuple[str, ...], ...]  # run_reactors calls, each in its own Plant
    error: type[Exception] | None
    message: str  # in the error (or, with no error, the fetched ingredient=value)


LITERAL = (make_load("load1", 1), make_load("load2", 2))
COMPUTED = (make_load("load1", 1, computed=True), make_load("load2", 2, computed=True))
CASES = [
    Case("two literal senders", (*LITERAL, show), (("show",),), AmbiguousIngredientError,
         "'data' is sent by two reactors, 'load1' and 'load2'"),
    Case("two literal senders, one ran before", (*LITERAL, show), (("load2",), ("show",)),
         ReactorFailedError, "'data' is sent by two reactors, 'load2' and 'load1'"),
    Case("two computed names seen in one run", (*COMPUTED, show), (("load1", "load2"),),
         ReactorFailedError, "'data' is sent by two reactors"),
    Case("a cached sender and a running one", (*COMPUTED, show),
         (("load1",), ("show", "load2")), ReactorFailedError,
         "'data' is sent by two reactors, 'load1' and 'load2'"),
    Case("receiving its own output", (selfish,), (("selfish",),), DependencyCycleError,
         "Reactor 'selfish' receives ingredient 'mine', which it sends itself"),
    Case("receiving its own output once sent", (echo,), (("echo",),), None, "heard=1"),
    Case("two reactors waiting for each other", (ping, pong), (("ping",),),
         DependencyCycleError, "'ping' waits for 'pong' (sent by 'pong'), 'pong' waits for "
         "'ping' (sent by 'ping')"),
    Case("two missing ingredients are no cycle", (lost, astray), (("lost",),),
         IngredientNotFoundError, "'lost' waits for ingredient 'nowhere', but no reactor"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_graph_rules(case: Case, plant_dir: Path) -> None:
    def run_all() -> Any:
        for targets in case.runs:
            with Plant(plant_dir) as plant:
                plant.add_reactors(*case.reactors)
                plant.run_reactors(list(targets))
                if case.error is None:
                    name, value = case.message.split("=")
                    assert plant.fetch_ingredient(name) == int(value)

    if case.error is None:
        run_all()
        return
    with pytest.raises(case.error) as failure:
        run_all()
    cause = failure.value.__cause__
    if case.error is ReactorFailedError:  # raised at the sender's `send`
        assert isinstance(cause, AmbiguousIngredientError), cause
    assert case.message in str(failure.value)


# -- end to end: history never decides ------------------------------------------------------
PIPELINE = """
import os

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def load1(pipe):
    pipe.send("data", 1)


@ReactorFunc
def load2(pipe):
    pipe.send("data", 2)


@ReactorFunc
def show(pipe):
    data = yield pipe.receive("data")
    print("SERVED", data)


if __name__ == "__main__":
    with Plant("plant") as plant:
        for target in os.environ.get("TARGETS", "show").split():
            plant.run_reactor(target)
"""
AMBIGUOUS = "Ingredient 'data' is sent by two reactors"


def test_one_shot_runs_say_two_senders_are_ambiguous_whatever_ran_before(
    project: Project, tmp_path: Path
) -> None:
    project.write("pipeline.py", PIPELINE)
    history = project.python(env={"TARGETS": "load2"})
    assert history.returncode != 0 and AMBIGUOUS in history.stderr
    after = project.python()
    assert after.returncode != 0 and AMBIGUOUS in after.stderr and "SERVED" not in after.stdout
    fresh = Project(tmp_path / "fresh")
    fresh.root.mkdir()
    shutil.copy(project.root / "pipeline.py", fresh.root)
    result = fresh.python()
    assert result.returncode != 0 and AMBIGUOUS in result.stderr and "SERVED" not in result.stdout


def test_the_daemon_reports_a_second_sender_and_serves_again_once_it_is_renamed(
    project: Project,
    daemon: Callable[[], Daemon],  # noqa: F811 - the fixture imported above
) -> None:
    single = PIPELINE.replace('pipe.send("data", 2)', 'pipe.send("extra", 2)')
    script = project.write("pipeline.py", single)
    watcher = daemon()
    assert "[show] SERVED 1" in str(watcher.next_run())
    save_atomic(script, script.read_text().replace('"extra", 2', '"data", 2'))
    run = watcher.next_run()
    assert AMBIGUOUS in str(run) and "'load1' and 'load2'" in str(run), run
    save_atomic(script, script.read_text().replace('"data", 2', '"extra", 2'))
    run = watcher.next_run()
    assert run.states == {"load1": "warm", "show": "warm"}, run  # as before the slip
    with Client.find(project.root) as client:
        assert client.fetch("data") == 1
