"""The judge (is a reactor fresh, and why) and the recorder (record what ran), each on its own,
over a real plant dir."""

from __future__ import annotations

from pathlib import Path

from pyplantd import ConfigBase, Plant, ReactorFunc
from pyplantd.run.judge import NEW_REACTOR, Judge
from pyplantd.run.pipework import Pipework
from pyplantd.run.recorder import Recorder
from pyplantd.run.scheduler import Reactor
from pyplantd.signatures.signature import SignatureComputer
from pyplantd.store.plant_store import PlantStore


@ReactorFunc
def scaled(pipe, config):
    pipe.send("scaled", 2 * config.factor)


def config(factor: int) -> ConfigBase:
    made = ConfigBase()
    made.factor = factor
    return made


def reactor() -> Reactor:
    return Reactor("test_judge_recorder:scaled", "scaled", scaled)


def test_the_judge_says_why_and_computes_a_code_signature_once(plant_dir: Path) -> None:
    store = PlantStore(plant_dir)
    try:
        judge = Judge(store, config(1), SignatureComputer())
        assert judge.static_reasons(reactor()) == [NEW_REACTOR]
        assert judge.code(reactor(), []) is judge.code(reactor(), [])
    finally:
        store.close()
    with Plant(plant_dir) as plant:
        plant.set_config(config(1))
        plant.run_reactor(scaled)
        store = plant.store
        assert Judge(store, config(1), SignatureComputer()).static_reasons(reactor()) == []
        changed = Judge(store, config(2), SignatureComputer())
        assert changed.static_reasons(reactor()) == ["param 'factor' changed 1 -> 2"]
        forced = Judge(store, config(1), SignatureComputer(), forced={reactor().id})
        assert forced.static_reasons(reactor()) == ["forced"]
        assert forced.restorable(reactor()) == []


def test_the_recorder_commits_what_a_reactor_sent_once_it_is_durable(plant_dir: Path) -> None:
    store = PlantStore(plant_dir)
    try:
        judge = Judge(store, config(3), SignatureComputer())
        pipe = Pipework("scaled", store, config(3))
        scaled(pipe, pipe.config)
        recorder = Recorder(store, judge)
        recorder.commit_later(reactor(), pipe.touched, 0.25)
        recorder.wait()
        assert recorder.write_errors == [] and recorder.commits == []
        record = store.reactors[reactor().id]
        assert record.outputs == ["scaled"] and record.params["factor"][1] == "3"
        assert record.duration == 0.25
        assert store.load(store.ingredients["scaled"]) == 6
        assert Judge(store, config(3), SignatureComputer()).static_reasons(reactor()) == []
    finally:
        store.close()


def test_param_values_of_plain_data_are_written_by_the_one_canonical_form() -> None:
    """One canonicalizer: the judge writes plain data as code signatures do, and adds only what
    plain data cannot hold (here a function, by name, whose code then counts)."""
    import numpy as np

    from pyplantd.run.judge import _canonical
    from pyplantd.signatures.canonical import canonical_text

    plain = [3, 3.0, True, "3", None, (1, "a"), [1, [2.5]], {"k": {1, 2}}, frozenset({"x"}),
             np.arange(4.0), np.float32(1.5)]  # fmt: skip
    for value in plain:
        named: list = []
        assert _canonical(value, named) == canonical_text(value) and named == [], value
    assert len({_canonical(v, []) for v in plain}) == len(plain)  # unequal values, unequal texts
    named = []
    text = _canonical([1, canonical_text], named)
    assert text == "list[int:1,function:pyplantd.signatures.canonical.canonical_text]"
    assert named == [canonical_text]
