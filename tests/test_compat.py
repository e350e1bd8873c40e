"""PyPlant 0.6.0 compatibility, in process: each PyPlant name and behaviour that pyplantd keeps.

The scripts written in PyPlant's own spelling, run one-shot and under the daemon, are in
test_pyplant_scripts.py.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from pyplantd import (
    ConfigBase,
    Ingredient,
    Plant,
    PlantError,
    ReactorFailedError,
    ReactorFunc,
    SubreactorFunc,
    specs,
    test,
    utils,
)
from pyplantd.errors import PlantDirError, PlantWarning


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


# Each case: what a PyPlant script does, the built-in type PyPlant 0.6.0 raised there (read in
# its source), and pyplantd's documented type, which must catch it too.
@ReactorFunc
def pp_needs_missing(pipe):
    yield pipe.receive("never_sent")


@ReactorFunc
def pp_cycle_a(pipe):
    yield pipe.receive("from_b")
    pipe.send("from_a", 1)


@ReactorFunc
def pp_cycle_b(pipe):
    yield pipe.receive("from_a")
    pipe.send("from_b", 1)


@ReactorFunc
def pp_sends_twice(pipe):
    pipe.send("twice", 1)
    pipe.send("twice", 2)


@ReactorFunc
def pp_writes_config(pipe, config):
    config.n = 2


@ReactorFunc
def pp_unknown_type(pipe):
    pipe.send("x", 1, "no_such_type")


@ReactorFunc
def pp_allocates_unknown_type(pipe):
    pipe.allocate("x", "no_such_type")


@ReactorFunc
def pp_allocates_a_simple(pipe):
    pipe.allocate("x", Ingredient.Type.simple)


def pp_not_decorated(pipe):
    pipe.send("x", 1)


def _in_plant(plant_dir, action):
    def run():
        with Plant(plant_dir) as plant:
            plant.set_config({"n": 1})
            action(plant)

    return run


def _mock_receive():
    test.run_reactor_to_completion(pp_needs_missing, test.PipeworkMock({}, {}))


@ReactorFunc
def pp_reads_param(pipe):
    pipe.read_config("missing")


def _mock_param():
    test.run_reactor_to_completion(pp_reads_param, test.PipeworkMock({}, {}))


PYPLANT_RAISES = {
    "unknown reactor": (lambda p: p.run_reactor("nope"), ValueError, "ReactorNotFoundError"),
    "missing ingredient": (lambda p: p.run_reactor(pp_needs_missing), RuntimeError,
                           "IngredientNotFoundError"),
    "deadlock": (lambda p: p.add_reactors(pp_cycle_a, pp_cycle_b) or p.run_reactor(pp_cycle_a),
                 RuntimeError, "DependencyCycleError"),
    "not a reactor": (lambda p: p.add_reactors(pp_not_decorated), RuntimeError,
                      "NotAReactorError"),
    "sent twice": (lambda p: p.run_reactor(pp_sends_twice), RuntimeError, "AllocationError"),
    "config write": (lambda p: p.run_reactor(pp_writes_config), RuntimeError,
                     "ConfigWriteError"),
    "send of an unknown type": (lambda p: p.run_reactor(pp_unknown_type), RuntimeError,
                                "UnknownTypeError"),
    "allocate of an unknown type": (lambda p: p.run_reactor(pp_allocates_unknown_type),
                                    ValueError, "UnknownTypeError"),
    "allocate of a built-in type other than file": (
        lambda p: p.run_reactor(pp_allocates_a_simple), ValueError, "AllocationError"),
    "unknown ingredient object": (lambda p: p.get_ingredient_object("nope"), ValueError,
                                  "IngredientNotFoundError"),
    "unknown config param": (lambda p: p.get_config_object().peek("nope"), AttributeError,
                             "UnknownParamError"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(PYPLANT_RAISES))
def test_pyplant_except_clauses_catch_pyplantd_errors(plant_dir, case):
    from pyplantd import errors

    action, builtin, documented = PYPLANT_RAISES[case]
    with pytest.raises(builtin) as caught:
        _in_plant(plant_dir, action)()
    assert isinstance(caught.value, PlantError)
    assert isinstance(caught.value, getattr(errors, documented))
    assert "'" not in str(caught.value)[:1]  # the message as written, not KeyError's repr
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is type(caught.value) and str(copy) == str(caught.value)


@pytest.mark.parametrize("run", [_mock_receive, _mock_param], ids=["receive", "read_config"])
def test_pipework_mock_misses_are_key_errors_as_in_pyplant(run):
    with pytest.raises(KeyError) as caught:
        run()
    error = caught.value
    assert isinstance(error, PlantError)
    assert type(error).__name__ in ("IngredientNotFoundError", "UnknownParamError")
    assert str(error).startswith(("The reactor", "Config"))  # not quoted as KeyError's
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)


def test_a_spec_whose_package_is_missing_raises_an_import_error(plant_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)  # `import scipy` now fails
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    with pytest.raises(ImportError, match="pip install scipy"):
        specs.ScipySparseSpec().fetch("unused.npz")


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


# -- names ----------------------------------------------------------------------------------
PYPLANT_STAR = {
    "Plant", "ReactorFunc", "SubreactorFunc", "Pipework", "Ingredient", "ConfigBase",
    "ConfigValue", "IngredientTypeSpec", "Warehouse", "InvalidOperationException",
    "specs", "utils", "test", "pyplant",
}  # fmt: skip


def test_star_import_gives_pyplants_names_and_its_modules():
    namespace: dict[str, object] = {}
    exec("from pyplantd import *", namespace)
    assert set(namespace) >= PYPLANT_STAR
    assert namespace["specs"].HdfArraySpec and namespace["test"].PipeworkMock
    assert namespace["utils"].load_ingredients_from_dir
    assert {"unknown", "reactor_step", "subreactor_finished"} <= {e.name for e in Plant.EventType}
    assert {"simple", "list", "array", "object", "file"} <= {t.name for t in Ingredient.Type}


def test_import_pyplantd_loads_none_of_pyplants_extra_modules_or_optional_packages():
    code = (
        "import sys, pyplantd\n"
        "extra = ['pyplantd.specs', 'pyplantd.test', 'pyplantd.utils', 'scipy', 'keras', "
        "'tarfile', 'pyplantd.compat.spec_adapter']\n"
        "print([m for m in extra if m in sys.modules])\n"
        "import pyplantd.specs, pyplantd.utils, pyplantd.test\n"
        "print([m for m in ('scipy', 'keras', 'h5py') if m in sys.modules])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "[]"]


# What PyPlant's `pyplant.pyplant` module exports (its __all__), and its other public classes.
PYPLANT_MODULE_ALL = {
    "Plant", "ReactorFunc", "SubreactorFunc", "ConfigBase", "ConfigValue", "Pipework", "Ingredient",
}  # fmt: skip


def test_the_pyplant_submodule_gives_pyplants_names_for_only_the_import_cost_of_pyplantd():
    code = (
        "import sys\n"
        "import pyplantd.pyplant as pp\n"
        "print(sorted(m for m in sys.modules if m.startswith('pyplantd')))\n"
        "from pyplantd.pyplant import Plant, ReactorFunc, SubreactorFunc, ConfigBase\n"
        "from pyplantd.pyplant import ConfigValue, Pipework, Ingredient, Warehouse\n"
        "from pyplantd.pyplant import IngredientTypeSpec, InvalidOperationException\n"
        "import pyplantd, pyplantd.specs\n"
        "assert pp.Plant is pyplantd.Plant and Warehouse is pyplantd.Warehouse\n"
        "assert IngredientTypeSpec is pyplantd.specs.IngredientTypeSpec  # PyPlant's interface\n"
        "star = {}\n"
        "exec('from pyplantd.pyplant import *', star)\n"
        "print(sorted(n for n in star if not n.startswith('__')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    loaded, star = out.stdout.splitlines()
    assert eval(loaded) == [
        "pyplantd", "pyplantd.errors", "pyplantd.pyplant", "pyplantd.signatures",
        "pyplantd.signatures.origins", "pyplantd.signatures.sources",
    ]  # fmt: skip
    assert set(eval(star)) == PYPLANT_MODULE_ALL


# -- PyPlant's keyword and method names -----------------------------------------------------
def test_pyplants_keyword_names_reach_pyplantds_parameters(plant_dir):
    hashed: list[str] = []
    heard: list[str] = []
    printed: list[str] = []

    def function_hash(func):
        hashed.append(func.__name__)
        return func.__name__

    @ReactorFunc
    def load(pipe):
        n = pipe.read_config(paramName="n")
        label = pipe.read_config_unregistered(paramName="label")
        pipe.register_config_param(paramName="factor")
        pipe.send("data", [n] * 3, type=Ingredient.Type.list, useCache=True)
        pipe.send("label", label, None, False)  # PyPlant's positional useCache

    with Plant(plantDir=plant_dir, logLevel=logging.WARNING, functionHash=function_hash) as plant:
        plant.set_config({"n": 2, "label": "x", "factor": 3})
        plant.mark_params_as_auxiliary(params=["label"])
        plant.add_event_listener(eventType=Plant.EventType.reactor_finished, callback=heard.append)
        plant.run_reactor(reactorToRun=load)
        plant.print_execution_history(printFn=printed.append)
        record = plant.get_execution_history()["load"]
        assert record.reactorName == "load" and record.totalRuntime >= 0
        assert record.finishTime >= record.startTime
        assert plant.get_reactors() == [load]
        assert plant.get_config_object().peek("n") == 2 and plant.get_config_object().has("n")
        assert plant.get_config_object().is_auxiliary("label")
        data = plant.get_ingredient_object("data")
        assert (data.name, data.type, data.producerName) == ("data", Ingredient.Type.list, "load")
        assert data.signature
        with pytest.raises(ValueError, match="'nothing'"):
            plant.get_ingredient_object("nothing")
        assert plant.fetch_ingredient("label") == "x"
    assert "load" in hashed and heard == [Plant.EventType.reactor_finished]
    assert any("load" in line for line in printed)
    with Plant(plant_dir) as plant:
        assert plant.store.reactors["test_compat:" + load.__qualname__].params.keys() == {
            "n",
            "factor",
        }  # label is auxiliary; factor registered without being read


def test_string_hash_is_accepted_with_a_warning_that_it_is_unused(plant_dir):
    with pytest.warns(PlantWarning, match="stringHash"), Plant(plant_dir, stringHash=str):
        pass


def test_a_keyword_given_in_both_spellings_is_refused(plant_dir):
    with pytest.raises(TypeError, match="plantDir="):
        Plant(plant_dir=plant_dir, plantDir=plant_dir)


def test_pyplants_plant_attributes_and_config_keyword(plant_dir):
    logger = logging.getLogger("pipeline")
    with Plant(plantDir=str(plant_dir), logger=logger) as plant:
        plant.set_config({"n": 2})
        plant.run_reactor(pp_reads_n)
        assert plant.plantDir == str(plant_dir) and plant.logger is logger
        assert plant.config.peek("n") == 2 and plant.config.has(paramName="n")
        record = plant.executionHistory["pp_reads_n"]
        assert record.reactorName == "pp_reads_n" and record.finishTime >= record.startTime
        # PyPlant returned None for an unknown name here; pyplantd says which names it knows,
        # and plant.warehouse.fetch keeps PyPlant's None
        with pytest.raises(LookupError, match="Ingredient 'nope'"):
            plant.fetch_ingredient("nope")
        assert plant.warehouse.fetch("nope") is None and plant.warehouse.fetch("n2") == 4


@ReactorFunc
def pp_reads_n(pipe, config):
    pipe.send("n2", config.n * 2)


def test_pyplants_test_module_paths_import(tmp_path):
    code = (
        "from pyplantd.test.PipeworkMock import PipeworkMock\n"
        "from pyplantd.test.test_utils import run_reactor_to_completion\n"
        "import pyplantd.test\n"
        "assert PipeworkMock is pyplantd.test.PipeworkMock\n"
        "assert run_reactor_to_completion is pyplantd.test.run_reactor_to_completion\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr


def test_exporting_the_inputs_of_an_unknown_reactor_is_a_key_error(plant_dir, tmp_path):
    with Plant(plant_dir) as plant, pytest.raises(KeyError, match="Reactor 'nope'"):
        utils.store_reactor_inputs_to_dir(plant, "nope", tmp_path / "out")


def test_add_all_visible_reactors_and_is_ingredient_known(plant_dir):
    @ReactorFunc
    def make(pipe):
        pipe.send("made", 1)

    with Plant(plant_dir) as plant:
        plant.add_all_visible_reactors()
        assert make in plant.get_reactors()
        assert not plant.is_ingredient_known("made")
        plant.run_reactor("make")
        assert plant.is_ingredient_known("made")
        plant.shutdown()
        plant.shutdown()  # PyPlant's scripts call it, then leave the `with` block


def test_config_mark_auxiliary_takes_pyplants_keyword(plant_dir):
    config = ConfigBase({"a": 1, "b": 2})
    config.mark_auxiliary(params=["b"])
    assert config.is_auxiliary("b") and not config.is_auxiliary("a")


# -- useCache=False -------------------------------------------------------------------------
def test_use_cache_false_gives_each_consumer_its_own_copy_read_from_disk(plant_dir):
    seen: list[list[int]] = []

    @ReactorFunc
    def make(pipe):
        items = [1, 2]
        pipe.send("items", items, useCache=False)
        items.append(99)  # after send: PyPlant had already written it
        pipe.send("grid", np.zeros(3), useCache=False)

    def consumer(name):
        @ReactorFunc
        def consume(pipe):
            items = yield pipe.receive("items")
            grid = yield pipe.receive("grid")
            seen.append(list(items))
            items.append(name)  # invisible to the next consumer
            grid[0] = 5  # a writable copy, as np.load gave
            pipe.send(f"out_{name}", len(items))

        consume.__name__ = consume.__qualname__ = f"consume_{name}"
        return consume

    first, second = consumer("a"), consumer("b")

    @ReactorFunc
    def report(pipe):
        a = yield pipe.receive("out_a")
        b = yield pipe.receive("out_b")
        pipe.send("report", (a, b))

    with Plant(plant_dir) as plant:
        plant.add_reactors(make, first, second, report)
        plant.run_reactor(report)
        assert seen == [[1, 2], [1, 2]]
        record = plant.store.ingredients["items"]
        assert record.path not in plant.store.warm  # nothing kept in memory
        fetched = plant.fetch_ingredient("items")
        fetched.append(3)
        assert plant.fetch_ingredient("items") == [1, 2]
        assert plant.fetch_ingredient("grid").flags.writeable


# -- specs ----------------------------------------------------------------------------------
def sparse_pipeline(runs: list[str], scale: dict[str, int]):
    import scipy.sparse as sp

    @ReactorFunc
    def make(pipe):
        runs.append("make")
        matrix = sp.random(50, 40, density=0.1, random_state=1, format="csr") * scale["k"]
        pipe.send("matrix", matrix)  # type inferred through ScipySparseSpec.is_instance

    @ReactorFunc
    def total(pipe):
        runs.append("total")
        matrix = yield pipe.receive("matrix")
        pipe.send("total", float(matrix.sum()))

    return make, total


def test_scipy_sparse_spec_round_trips_and_an_identical_rerun_stops_there(plant_dir):
    import scipy.sparse as sp

    runs: list[str] = []
    scale = {"k": 1}
    version = {"make": 0}
    hasher = lambda func: f"{func.__name__}{version.get(func.__name__, 0)}"  # noqa: E731
    for edit in (False, True):
        if edit:
            version["make"] += 1  # make's code changed, its matrix did not
        runs.clear()
        _make, total = sparse_pipeline(runs, scale)
        with Plant(plant_dir, function_hash=hasher) as plant:
            plant.warehouse.register_ingredient_specs([specs.ScipySparseSpec()])
            plant.run_reactor(total)
            matrix = plant.fetch_ingredient("matrix")
            assert sp.issparse(matrix) and matrix.format == "csr" and matrix.shape == (50, 40)
            assert plant.get_ingredient_object("matrix").type == "scipy_sparse"
    assert runs == ["total", "make"]  # total re-ran as the target; nothing was recomputed


def test_scipy_missing_is_a_clear_error_and_the_stored_matrix_is_kept(plant_dir, monkeypatch):
    runs: list[str] = []
    _make, total = sparse_pipeline(runs, {"k": 2})
    with Plant(plant_dir) as plant:
        plant.register_ingredient_specs([specs.ScipySparseSpec()])
        plant.run_reactor(total)
    for module in ("scipy", "scipy.sparse"):
        monkeypatch.setitem(sys.modules, module, None)  # import now fails, as if not installed
    with Plant(plant_dir) as plant:
        plant.register_ingredient_specs([specs.ScipySparseSpec()])
        with pytest.raises(specs.MissingDependencyError, match="pip install scipy"):
            plant.fetch_ingredient("matrix")
    monkeypatch.undo()
    with Plant(plant_dir) as plant:
        plant.register_ingredient_specs([specs.ScipySparseSpec()])
        assert plant.fetch_ingredient("matrix").nnz == 200


def test_keras_model_spec_without_keras_names_the_install_and_infers_nothing(plant_dir):
    if importlib.util.find_spec("keras") is not None:
        pytest.skip("keras is installed here: the missing-package path cannot be shown")

    @ReactorFunc
    def train(pipe):
        pipe.send("model", object(), specs.KerasModelSpec)

    spec = specs.KerasModelSpec(customLayers={})
    assert not spec.is_instance({"not": "a model"}) and "keras" not in sys.modules
    with Plant(plant_dir) as plant:
        plant.register_ingredient_specs([spec])
        with pytest.raises(PlantError, match="pip install keras"):
            plant.run_reactor(train)


def test_hdf_array_spec_allocated_by_its_class_is_served_to_consumers(plant_dir):
    @ReactorFunc
    def frames(pipe):
        data = pipe.allocate("frames", specs.HdfArraySpec, shape=(4, 3), dtype=np.float32)
        data[:] = np.arange(12).reshape(4, 3)
        scratch = pipe.allocate_temp("scratch", specs.HdfArraySpec, shape=(2,))
        scratch[:] = 1
        pipe.send("frames", data)

    @ReactorFunc
    def column(pipe):
        data = yield pipe.receive("frames")
        pipe.send("column", data[:, 1].tolist())

    with Plant(plant_dir) as plant:
        plant.warehouse.register_ingredient_specs([specs.HdfArraySpec()])
        plant.run_reactor(column)
        assert plant.fetch_ingredient("column") == [1.0, 4.0, 7.0, 10.0]
    payloads = sorted(p.name for p in (plant_dir / "payloads").iterdir())
    assert not any("scratch" in name for name in payloads)  # the temp one is gone


class TextSpec(specs.IngredientTypeSpec):
    """A spec in PyPlant's interface: it writes its own files under warehouse.baseDir."""

    closed = 0
    calls: list[tuple[str, ...]] = []  # noqa: RUF012

    @classmethod
    def get_name(cls):
        return "text"

    def store(self, warehouse, name, value):
        TextSpec.calls.append(("store", name))
        with open(os.path.join(warehouse.baseDir, name + ".txt"), "w") as handle:
            handle.write(value.text)
        with open(os.path.join(warehouse.baseDir, name + ".len"), "w") as handle:
            handle.write(str(len(value.text)))
        return {"lines": value.text.count("\n")}

    def fetch(self, warehouse, name, meta):
        TextSpec.calls.append(("fetch", name, meta))
        with open(os.path.join(warehouse.baseDir, name + ".txt")) as handle:
            return Text(handle.read(), meta["lines"])

    def is_instance(self, value):
        return isinstance(value, Text)

    def close(self):
        TextSpec.closed += 1


class Text:
    def __init__(self, text: str, lines: int | None = None) -> None:
        self.text = text
        self.lines = text.count("\n") if lines is None else lines


def test_a_pyplant_interface_spec_stores_fetches_gets_its_metadata_and_is_closed(plant_dir):
    runs: list[str] = []
    TextSpec.calls.clear()
    TextSpec.closed = 0

    @ReactorFunc
    def write(pipe):
        runs.append("write")
        pipe.send("doc", Text("a\nb\n"))  # inferred through is_instance

    @ReactorFunc
    def count(pipe):
        runs.append("count")
        doc = yield pipe.receive("doc")
        pipe.send("lines", doc.lines)

    for _ in range(2):
        runs.clear()
        with Plant(plant_dir, function_hash=lambda f: f.__name__) as plant:
            plant.add_reactors(write, count)
            plant.warehouse.register_ingredient_specs([TextSpec()])
            plant.run_reactor(count)
            assert plant.fetch_ingredient("lines") == 2
    assert runs == ["count"]  # the second time, write's stored doc was served
    # a custom type is written at send and every consumer reads it back, in both runs
    fetched = ("fetch", "doc", {"lines": 2})
    assert TextSpec.calls == [("store", "doc"), fetched, fetched]
    assert TextSpec.closed >= 2  # at each plant's shutdown


def test_a_pyplant_spec_that_writes_the_same_files_gives_the_same_fingerprint(plant_dir):
    from pyplantd.compat.spec_adapter import as_native

    spec = as_native(TextSpec())
    first, second = plant_dir.parent / "a.tar", plant_dir.parent / "b.tar"
    spec.write_named("doc", Text("same"), str(first))
    spec.write_named("doc", Text("same"), str(second))
    assert first.read_bytes() == second.read_bytes()


def test_warehouse_close_closes_the_specs_registered_on_it(plant_dir, tmp_path):
    from pyplantd import Warehouse

    TextSpec.closed = 0
    with Plant(plant_dir) as plant:
        plant.warehouse.register_ingredient_specs([TextSpec()])
        plant.warehouse.close()  # PyPlant's early close
        assert TextSpec.closed == 1
    with Warehouse(str(tmp_path), logging.getLogger("quiet")) as warehouse:
        warehouse.register_ingredient_specs([TextSpec()])
        assert warehouse.baseDir == str(tmp_path) and "text" in warehouse.ingredientSpecs
    assert TextSpec.closed >= 3  # the plant's own shutdown, then the standalone warehouse


def test_registering_something_that_is_no_spec_is_refused(plant_dir):
    with Plant(plant_dir) as plant, pytest.raises(PlantError, match="not an ingredient type"):
        plant.register_ingredient_specs([object()])


class RawSpec(specs.IngredientTypeSpec):
    """An allocatable spec in PyPlant's interface: a raw numpy memmap file under baseDir."""

    calls: list[tuple[str, str]] = []  # noqa: RUF012
    dirs: list[str] = []  # noqa: RUF012

    def __init__(self):
        super().__init__()
        self.isAllocatable = True

    @classmethod
    def get_name(cls):
        return "raw"

    def _path(self, warehouse, name):
        return os.path.join(warehouse.baseDir, name + ".raw")

    def allocate(self, warehouse, name, **kwargs):
        RawSpec.calls.append(("allocate", name))
        RawSpec.dirs.append(warehouse.baseDir)
        shape, dtype = kwargs["shape"], kwargs.get("dtype", "float64")
        return np.memmap(self._path(warehouse, name), dtype=dtype, mode="w+", shape=shape)

    def store(self, warehouse, name, value):
        RawSpec.calls.append(("store", name))
        value.flush()
        return {"shape": value.shape, "dtype": str(value.dtype)}

    def fetch(self, warehouse, name, meta):
        RawSpec.calls.append(("fetch", name))
        return np.memmap(self._path(warehouse, name), mode="r", **meta)

    def deallocate(self, warehouse, name):
        RawSpec.calls.append(("deallocate", name))
        os.remove(self._path(warehouse, name))


def raw_pipeline(runs: list[str]):
    @ReactorFunc
    def fill(pipe, config):
        runs.append("fill")
        pipe.register_config_param("label")  # changing it re-runs fill, to the same result
        data = pipe.allocate("raw", RawSpec, shape=(4,), dtype=np.float64)
        scratch = pipe.allocate_temp("scratch", RawSpec, shape=(2,))
        scratch[:] = config.n
        data[:2] = scratch
        pipe.send("raw", data)
        assert (yield pipe.receive("raw")) is data  # its own product: what it sent, as PyPlant
        data[2:] = [2, 3]  # after the send: PyPlant kept these too (the file is the ingredient)

    @ReactorFunc
    def total(pipe):
        runs.append("total")
        raw = yield pipe.receive("raw")
        assert isinstance(raw, np.memmap) and not raw.flags.writeable
        pipe.send("total", raw.tolist())

    return fill, total


def run_raw(plant_dir, config, runs, always=True):
    """`total`'s value, and what each reactor did."""
    fill, total = raw_pipeline(runs)
    with Plant(plant_dir, function_hash=lambda f: f.__name__) as plant:
        plant.add_reactors(fill, total)
        plant.warehouse.register_ingredient_specs([RawSpec()])
        plant.set_config(config)
        plant.run_reactors([total], targets_always_run=always)
        return plant.fetch_ingredient("total"), {d.reactor: d.status for d in plant.last_run}


def test_a_pyplant_spec_allocation_lives_as_in_pyplant_and_is_stored_by_content(
    plant_dir, tmp_path
):
    RawSpec.calls.clear()
    RawSpec.dirs.clear()
    runs: list[str] = []
    assert run_raw(plant_dir, {"n": 1, "label": "a"}, runs)[0] == [1, 1, 2, 3]
    assert runs == ["total", "fill"]
    # allocate, as PyPlant: the temp one under 'temp_' + name, deallocated when the reactor
    # ends; `store` when the reactor ends (so writes after the send count); then the spec's
    # own copy is released, and the consumer gets what `fetch` gives from the stored payload
    assert RawSpec.calls == [
        ("allocate", "raw"), ("allocate", "temp_scratch"), ("store", "raw"),
        ("deallocate", "raw"), ("deallocate", "temp_scratch"), ("fetch", "raw"),
    ]  # fmt: skip
    assert not any(os.path.exists(d) for d in RawSpec.dirs)

    # fill re-runs for a parameter that changes nothing it allocates: same content, so its
    # consumer is served (early cutoff); a change that does alter it re-runs the consumer
    value, done = run_raw(plant_dir, {"n": 1, "label": "b"}, runs, always=False)
    assert value == [1, 1, 2, 3] and done == {"fill": "ran", "total": "cached"}
    value, done = run_raw(plant_dir, {"n": 5, "label": "b"}, runs, always=False)
    assert value == [5, 5, 2, 3] and done == {"fill": "ran", "total": "ran"}
    fresh = run_raw(tmp_path / "fresh", {"n": 5, "label": "b"}, [])[0]
    assert value == fresh  # the oracle: what an empty plant dir computes


def test_a_pyplant_spec_allocation_a_failed_or_unsent_reactor_leaves_is_released(plant_dir):
    RawSpec.calls.clear()
    RawSpec.dirs.clear()

    @ReactorFunc
    def fails(pipe):
        data = pipe.allocate("raw", RawSpec, shape=(2,))
        pipe.send("raw", data)
        raise ValueError("late")

    @ReactorFunc
    def never_sends(pipe):
        pipe.allocate("raw", RawSpec, shape=(2,))

    with Plant(plant_dir) as plant:
        plant.register_ingredient_specs([RawSpec()])
        with pytest.raises(ValueError, match="late"):
            plant.run_reactor(fails)
        with pytest.raises(RuntimeError, match="never sent"):
            plant.run_reactor(never_sends)
        assert not plant.is_ingredient_known("raw")
    assert RawSpec.calls == [("allocate", "raw"), ("deallocate", "raw")] * 2
    assert not any(os.path.exists(d) for d in RawSpec.dirs)


def test_allocating_a_pyplant_spec_that_is_not_allocatable_is_a_runtime_error(plant_dir):
    @ReactorFunc
    def allocates(pipe):
        pipe.allocate("doc", TextSpec)

    with Plant(plant_dir) as plant, pytest.raises(RuntimeError, match="isAllocatable"):
        plant.register_ingredient_specs([TextSpec()])
        plant.run_reactor(allocates)


# -- test: unit-testing one reactor ---------------------------------------------------------
@ReactorFunc
def scale_reactor(pipe, config):
    data = yield pipe.receive("data")
    offset = pipe.read_config("offset")
    pipe.send("scaled", [x * config.factor + offset for x in data])


@SubreactorFunc
def double_sub(pipe, name):
    value = yield pipe.receive(name)
    return value * 2


@ReactorFunc
def uses_sub(pipe):
    doubled = yield from double_sub(pipe, "n")
    path = pipe.allocate("figure", Ingredient.Type.file, suffix=".txt")
    with open(path, "w") as handle:
        handle.write(str(doubled))
    pipe.send("figure", path)
    pipe.send("doubled", doubled)


def test_pipework_mock_runs_a_reactor_with_given_inputs_and_config():
    pipe = test.PipeworkMock({"factor": 2, "offset": 1}, {"data": [1, 2, 3]})
    assert test.run_reactor_to_completion(scale_reactor, pipe) is None
    assert pipe.get_products() == {"scaled": [3, 5, 7]}


def test_pipework_mock_allocates_real_scratch_storage_or_asks_the_callback():
    pipe = test.PipeworkMock({}, {"n": 21})
    test.run_reactor_to_completion(uses_sub, pipe)
    products = pipe.get_products()
    assert products["doubled"] == 42
    with open(products["figure"]) as handle:
        assert handle.read() == "42"

    asked: list[tuple] = []

    def callback(method, name, type, **options):
        asked.append((method, name, type, options))
        return os.devnull

    pipe = test.PipeworkMock({}, {"n": 1}, callback)
    test.run_reactor_to_completion(uses_sub, pipe)
    assert asked == [("allocate", "figure", Ingredient.Type.file, {"suffix": ".txt"})]


def test_pipework_mock_names_a_missing_input_and_refuses_config_writes():
    @ReactorFunc
    def writes_config(pipe, config):
        config.factor = 3

    with pytest.raises(PlantError, match=r"'data'.*given: none"):
        test.run_reactor_to_completion(scale_reactor, test.PipeworkMock({"factor": 1}, {}))
    with pytest.raises(PlantError, match="may not change the config"):
        test.run_reactor_to_completion(writes_config, test.PipeworkMock({"factor": 1}, {}))


def test_run_subreactor_to_completion_returns_what_it_returns():
    pipe = test.PipeworkMock({}, {"n": 5})
    assert test.run_subreactor_to_completion(double_sub(pipe, "n"), pipe) == 10


# -- utils: export a reactor's inputs, load them back ---------------------------------------
def test_a_reactors_inputs_exported_to_a_dir_load_back_for_a_mock_run(plant_dir, tmp_path):
    @ReactorFunc
    def load(pipe):
        pipe.send("data", [1, 2, 3])
        pipe.send("grid", np.arange(6.0).reshape(2, 3))
        pipe.send("doc", Text("x\ny\n"))
        frames = pipe.allocate("frames", Ingredient.Type.hdf_array, shape=(2,), dtype="int64")
        frames[:] = [7, 8]
        pipe.send("frames", frames)

    @ReactorFunc
    def use(pipe, config):
        data = yield pipe.receive("data")
        grid = yield pipe.receive("grid")
        doc = yield pipe.receive("doc")
        frames = yield pipe.receive("frames")
        pipe.send("out", [sum(data), float(grid.sum()), doc.lines, int(frames[1]), config.k])

    export = tmp_path / "use-inputs"
    with Plant(plant_dir) as plant:
        plant.register_ingredient_specs([TextSpec()])
        plant.set_config({"k": 1})
        plant.run_reactor(use)
        utils.store_reactor_inputs_to_dir(plant, "use", str(export))
        expected = plant.fetch_ingredient("out")
    inputs = utils.load_ingredients_from_dir(str(export), customSpecs=[TextSpec()])
    assert sorted(inputs) == ["data", "doc", "frames", "grid"]
    inputs["grid"][0, 0] = 100.0  # a writable copy of its own
    inputs["grid"][0, 0] = 0.0
    pipe = test.PipeworkMock({"k": 1}, inputs)
    test.run_reactor_to_completion(use, pipe)
    assert pipe.get_products()["out"] == expected
    only = utils.load_ingredients_from_dir(str(export), ingredientNames=["data"])
    assert only == {"data": [1, 2, 3]}
    with Plant(export) as exported:  # the export is a plant dir of its own
        assert exported.fetch_ingredient("data") == [1, 2, 3]


def test_loading_from_a_dir_without_exported_ingredients_says_so(tmp_path):
    with pytest.raises(PlantError, match="store_ingredients_to_dir"):
        utils.load_ingredients_from_dir(str(tmp_path / "nothing"))
    assert not (tmp_path / "nothing").exists()


def test_exporting_an_unknown_ingredient_names_it(plant_dir, tmp_path):
    with Plant(plant_dir) as plant, pytest.raises(ValueError, match="'ghost'"):
        utils.store_ingredients_to_dir(plant, ["ghost"], str(tmp_path / "out"))


# -- a PyPlant plant dir --------------------------------------------------------------------
def make_pyplant_dir(path):
    """The files PyPlant 0.6.0 leaves in its plant dir (pickles and arrays)."""
    path.mkdir(parents=True)
    (path / "plant.pcl").write_bytes(pickle.dumps({"reactors": {}, "ingredients": {}}))
    (path / "manifest.pyplant.pcl").write_bytes(pickle.dumps({"data": {"type": "array"}}))
    (path / "simple.pyplant.pcl").write_bytes(pickle.dumps({}))
    np.save(path / "data.npy", np.arange(3))
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in path.iterdir()}


def test_a_pyplant_plant_dir_is_refused_with_what_to_do_and_left_untouched(tmp_path):
    old = tmp_path / "pyplant-plant"
    before = make_pyplant_dir(old)
    with pytest.raises(PlantDirError) as refused:
        Plant(old)
    message = str(refused.value)
    assert "PyPlant 0.6.0 plant dir" in message and str(old) in message
    assert "new directory" in message and "recomputed" in message
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in old.iterdir()}
    assert after == before
