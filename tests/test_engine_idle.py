"""The engine's idle housekeeping, in process: garbage is collected while idle and the survivors
are frozen (so a save's run never pays a full collection over them), without leaking garbage
that only appears after a freeze."""

from __future__ import annotations

import gc
import io
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyplantd.daemon.bus import Kind
from pyplantd.daemon.console import Console
from pyplantd.daemon.engine import Command, Engine, WatchOptions
from pyplantd.daemon.runtime import runtime_dir

PIPELINE = """
from pyplantd import Plant, ReactorFunc


@ReactorFunc
def make(pipe):
    pipe.send('n', 41)


@ReactorFunc
def show(pipe):
    n = yield pipe.receive('n')
    print('n is', n + 1)


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(show)
"""


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    options = WatchOptions(pipeline=tmp_path / "pipeline.py", plant_dir=tmp_path / "plant")
    engine = Engine(options, Console(stream=io.StringIO(), live=False))
    try:
        yield engine
    finally:
        engine.watcher.stop()
        engine.session.close()
        gc.unfreeze()


def test_settle_freezes_survivors_and_frees_garbage_made_after_the_freeze(engine: Engine) -> None:
    assert [d.status for d in engine.cycle("start", targets_always_run=True)] == ["ran", "ran"]
    node = Node()
    engine.settle()
    assert gc.get_freeze_count() > 0  # survivors, `node` among them, are out of the collector's way
    gone = weakref.ref(node)
    del node  # garbage now, but frozen: a plain collection would never free it
    gc.collect()
    assert gone() is not None
    engine.settle()
    assert gone() is None  # the next idle moment frees it


def test_a_cycle_after_settling_runs_normally(engine: Engine) -> None:
    engine.cycle("start", targets_always_run=True)
    engine.settle()
    (engine.pipeline).write_text(PIPELINE.replace("n + 1", "n + 2"))
    decisions = engine.cycle("saved pipeline.py", targets_always_run=False)
    assert {d.reactor: d.status for d in decisions} == {"make": "cached", "show": "ran"}


def test_the_idle_collection_waits_until_every_event_has_left_for_clients(engine: Engine) -> None:
    """The collection holds the interpreter lock for tens of milliseconds: run first, it would
    keep the event thread from sending the run's last events, a reactor's result among them."""
    engine.cycle("start", targets_always_run=True)
    server = engine._start_server(runtime_dir(engine.pipeline))
    try:
        for i in range(600):  # printed lines: queued for the event thread
            engine.bus.publish(Kind.log, {"run_id": 1, "reactor": "show", "text": str(i)})
        out_when_settling = []

        def settle() -> None:
            out_when_settling.append(server.wait_sent(0))
            engine.inbox.put(Command("run", [], 7))  # then the engine has work: _next_work returns

        engine.settle = settle  # type: ignore[method-assign]
        assert engine._next_work() == Command("run", [], 7)
        assert out_when_settling == [True]
    finally:
        server.stop()
