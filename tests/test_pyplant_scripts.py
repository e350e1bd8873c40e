"""PyPlant 0.6.0 scripts and unit tests, in PyPlant's own spelling with only the import changed
(`from pyplantd import *`), run as their users run them: `python pipeline.py`, `python -m
unittest`, and under a real `pyplantd watch` daemon. PyPlant itself is not needed.

The pipeline uses what PyPlant scripts use: camelCase keywords, `specs.` types registered through
`plant.warehouse`, a custom spec written against PyPlant's IngredientTypeSpec interface,
`useCache=False`, subreactors, event listeners, and `except ValueError` around `run_reactor`.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable

import pytest
from conftest import LOG_HELPER, Project
from test_daemon import Daemon, start_daemon, take_ran

__all__ = ["start_daemon"]  # a fixture used below

PIPELINE = (
    """
import logging
import os

import numpy as np
import scipy.sparse

from pyplantd import *
"""
    + LOG_HELPER
    + '''

N = 10


class Note:
    def __init__(self, text):
        self.text = text


class NoteSpec(specs.IngredientTypeSpec):
    """A custom type in PyPlant's interface: writes its own file under the warehouse dir."""

    @classmethod
    def get_name(cls):
        return 'note'

    def store(self, warehouse, name, value):
        with open(os.path.join(warehouse.baseDir, name + '.txt'), 'w') as file:
            file.write(value.text)
        return {'length': len(value.text)}

    def fetch(self, warehouse, name, meta):
        with open(os.path.join(warehouse.baseDir, name + '.txt')) as file:
            text = file.read()
        assert len(text) == meta['length']
        return Note(text)

    def is_instance(self, value):
        return isinstance(value, Note)


@ReactorFunc
def load(pipe: Pipework, config: ConfigBase):
    log_run('load')
    n = pipe.read_config(paramName='n')
    pipe.send('data', np.arange(1, n + 1, dtype=np.float64), Ingredient.Type.array)
    pipe.send('items', list(range(n)), useCache=False)


@SubreactorFunc
def normalize(pipe, name):
    data = yield pipe.receive(name)
    return data / data.max()


@ReactorFunc
def process(pipe: Pipework, config: ConfigBase):
    log_run('process')
    normed = yield from normalize(pipe, 'data')
    items = yield pipe.receive('items')
    items.append(-1)  # useCache=False: the next consumer does not see this
    pipe.send('sparse', scipy.sparse.diags(normed).tocsr())
    frames = pipe.allocate('frames', specs.HdfArraySpec, shape=(len(normed), 2), dtype=np.float32)
    frames[:, 0] = normed
    pipe.send('frames', frames)
    pipe.send('note', Note('{}:{}'.format(config.label, len(items))))


@ReactorFunc
def report(pipe: Pipework, config: ConfigBase):
    log_run('report')
    items = yield pipe.receive('items')
    sparse = yield pipe.receive('sparse')
    frames = yield pipe.receive('frames')
    note = yield pipe.receive('note')
    text = '{} items={} sparse={:.3f} frames={:.3f}'.format(
        note.text, len(items), sparse.sum(), float(frames[:, 0].sum()))
    print('REPORT', text)
    pipe.send('text', text)


subreactors = []

if __name__ == '__main__':
    logger = logging.getLogger('pipeline')
    with Plant(plantDir=os.environ.get('PLANT_DIR', 'plant'), logger=logger,
               logLevel=logging.WARNING) as plant:
        plant.warehouse.register_ingredient_specs(
            [specs.HdfArraySpec(), specs.ScipySparseSpec(), NoteSpec()])
        plant.add_event_listener(eventType=Plant.EventType.subreactor_started,
                                 callback=lambda eventType, name: subreactors.append(name))
        plant.set_config({'n': N, 'label': 'run', 'verbose': False})
        plant.mark_params_as_auxiliary(params=['verbose'])
        plant.run_reactor(reactorToRun=report)
        if plant.is_ingredient_known('text'):
            print('FETCHED', plant.warehouse.fetch('text'))
            print('SUBREACTORS', subreactors)
            print('PRODUCER', plant.get_ingredient_object('text').producerName)
'''
)

UNIT_TESTS = """
import unittest

import numpy as np

from pyplantd import *
from pyplantd.test import PipeworkMock, run_reactor_to_completion, run_subreactor_to_completion

from pipeline import Note, normalize, process


class TestProcess(unittest.TestCase):

    def test_process_alone(self):
        pipe = PipeworkMock({'label': 'unit'}, {'data': np.array([1.0, 4.0]), 'items': [7, 8]})
        run_reactor_to_completion(process, pipe)
        products = pipe.get_products()
        self.assertEqual(products['note'].text, 'unit:3')
        self.assertEqual(products['sparse'].shape, (2, 2))
        self.assertEqual(list(products['frames'][:, 0]), [0.25, 1.0])

    def test_allocation_goes_to_the_callback(self):
        calls = []
        def callback(method, name, type, **kwargs):
            calls.append((method, name))
            return np.zeros(kwargs['shape'], dtype=np.float32)
        pipe = PipeworkMock({'label': 'x'}, {'data': np.array([2.0]), 'items': []}, callback)
        run_reactor_to_completion(process, pipe)
        self.assertEqual(calls, [('allocate', 'frames')])

    def test_subreactor_alone(self):
        pipe = PipeworkMock({}, {'data': np.array([1.0, 2.0])})
        run_subreactor_to_completion(normalize(pipe, 'data'), pipe)


if __name__ == '__main__':
    unittest.main()
"""

EXPLODE = """
from pyplantd import *


@ReactorFunc
def parse(pipe):
    int('not a number')


with Plant('plant-explode') as plant:
    try:
        plant.run_reactor(parse)
    except ValueError as e:
        print('CAUGHT', e.args[0])
"""

# PyPlant's other import paths, and `except` clauses for errors pyplantd raises itself.
SUBMODULES = """
import pyplantd.pyplant as pp
from pyplantd.pyplant import ReactorFunc
from pyplantd.test.PipeworkMock import PipeworkMock
from pyplantd.test.test_utils import run_reactor_to_completion


@ReactorFunc
def needs(pipe):
    yield pipe.receive('never_sent')


with pp.Plant('plant-errors') as plant:
    try:
        plant.run_reactor('nope')
    except ValueError:
        print('CAUGHT unknown reactor')
    try:
        plant.run_reactor(needs)
    except RuntimeError:
        print('CAUGHT missing ingredient')
try:
    run_reactor_to_completion(needs, PipeworkMock({}, {}))
except KeyError:
    print('CAUGHT missing mock input')
"""

REPORT = re.compile(r"REPORT (.*)$", re.M)


def write_project(project: Project) -> None:
    project.write("pipeline.py", PIPELINE)
    project.write("test_reactors.py", UNIT_TESTS)
    project.write("explode.py", EXPLODE)
    project.write("submodules.py", SUBMODULES)


def fresh_report(project: Project) -> str:
    """The oracle: what the pipeline as it is now computes in an empty plant dir."""
    fresh = project.root / "fresh-plant"
    shutil.rmtree(fresh, ignore_errors=True)
    result = project.python(env={"PLANT_DIR": str(fresh)})
    assert result.returncode == 0, result.stderr
    shutil.rmtree(fresh)
    (project.root / "ran.log").unlink(missing_ok=True)  # what the fresh run ran is no news
    return REPORT.findall(result.stdout)[0]


def test_a_pyplant_script_runs_one_shot_with_only_its_import_changed(project: Project):
    write_project(project)
    first = project.python()
    assert first.returncode == 0, first.stderr
    assert first.ran == ["report", "load", "process"]
    assert "REPORT run:11 items=10 sparse=5.500 frames=5.500" in first.stdout
    assert "FETCHED run:11 items=10" in first.stdout
    assert "SUBREACTORS ['normalize']" in first.stdout and "PRODUCER report" in first.stdout

    again = project.python()
    assert again.returncode == 0, again.stderr
    assert again.ran == ["report"]  # the target; everything else is served from the plant dir
    assert REPORT.findall(again.stdout) == REPORT.findall(first.stdout)

    project.edit("pipeline.py", "N = 10", "N = 4")
    edited = project.python()
    assert edited.ran == ["report", "load", "process"]
    assert REPORT.findall(edited.stdout) == [fresh_report(project)]
    assert "run:5 items=4 sparse=2.500" in edited.stdout


def test_pyplant_style_unit_tests_and_except_clauses_work_unchanged(project: Project):
    write_project(project)
    tests = project._run([sys.executable, "-m", "unittest", "-v", "test_reactors"])
    assert tests.returncode == 0, tests.stderr
    assert "Ran 3 tests" in tests.stderr and "OK" in tests.stderr
    explode = project.python("explode.py")
    assert explode.returncode == 0, explode.stderr
    assert "CAUGHT invalid literal for int() with base 10: 'not a number'" in explode.stdout
    caught = project.python("submodules.py")
    assert caught.returncode == 0, caught.stderr
    assert caught.stdout.split("\n")[:3] == [
        "CAUGHT unknown reactor", "CAUGHT missing ingredient", "CAUGHT missing mock input",
    ]  # fmt: skip


def test_a_pyplant_script_runs_under_the_daemon_and_serves_what_a_fresh_run_computes(
    project: Project, start_daemon: Callable[..., Daemon]
):
    write_project(project)
    daemon = start_daemon()
    start = daemon.next_run(timeout=60)
    assert start.states == {"load": "ran", "process": "ran", "report": "ran"}, start
    assert take_ran(project) == ["load", "process", "report"]
    assert any("REPORT run:11 items=10" in line for line in start.lines), start

    project.edit("pipeline.py", "N = 10", "N = 6")
    run = daemon.next_run(timeout=60)
    assert take_ran(project) == ["load", "process", "report"], run
    served = [REPORT.search(line)[1] for line in run.lines if REPORT.search(line)]
    assert served == [fresh_report(project)]

    project.edit("pipeline.py", "    return data / data.max()", "    return data / data.max()  #")
    run = daemon.next_run(timeout=60)
    assert "nothing to re-run" in run.summary and take_ran(project) == [], run

    project.edit("pipeline.py", "'label': 'run'", "'label': 'daemon'")
    run = daemon.next_run(timeout=60)
    assert take_ran(project) == ["process", "report"], run  # load did not read 'label'
    served = [REPORT.search(line)[1] for line in run.lines if REPORT.search(line)]
    assert served == [fresh_report(project)] == ["daemon:7 items=6 sparse=3.500 frames=3.500"]


@pytest.mark.parametrize("name", ["pipeline.py"])
def test_the_pipeline_names_only_pyplants_api(name: str):
    """Guard: the scripts above are PyPlant code (no pyplantd-only names)."""
    for only_pyplantd in ("track_file", "use_cache", "plant_dir", "log_level", "subscribe"):
        assert only_pyplantd not in PIPELINE + UNIT_TESTS + EXPLODE + SUBMODULES


SOURCE_HASHED = (
    """
import inspect
from pyplantd import *
"""
    + LOG_HELPER
    + """

@ReactorFunc
def load(pipe):
    log_run('load')
    pipe.send('x', 1)


@ReactorFunc
def show(pipe):
    log_run('show')
    x = yield pipe.receive('x')


with Plant('plant', functionHash=lambda f: inspect.getsource(f)) as plant:
    plant.run_reactor(show)
"""
)


def test_function_hash_of_the_source_text_gives_pyplants_rerun_on_comment_edits(
    project: Project,
):
    """The README's way back to PyPlant's rule: a comment-only edit re-runs the reactor."""
    project.write("pipeline.py", SOURCE_HASHED)
    assert project.python().ran == ["show", "load"]
    assert project.python().ran == ["show"]
    project.edit("pipeline.py", "    log_run('load')", "    log_run('load')  # a comment")
    assert project.python().ran == ["show", "load"]


ALLOCATING = (
    """
import os

import numpy as np

from pyplantd import *
"""
    + LOG_HELPER
    + """

class RawSpec(specs.IngredientTypeSpec):
    # an allocatable spec in PyPlant's interface: a raw memmap file; close() is logged
    def __init__(self):
        super().__init__()
        self.isAllocatable = True

    @classmethod
    def get_name(cls):
        return 'raw'

    def allocate(self, warehouse, name, **kwargs):
        path = os.path.join(warehouse.baseDir, name + '.raw')
        return np.memmap(path, dtype=kwargs['dtype'], mode='w+', shape=kwargs['shape'])

    def store(self, warehouse, name, value):
        value.flush()
        return {'shape': value.shape, 'dtype': str(value.dtype)}

    def fetch(self, warehouse, name, meta):
        return np.memmap(os.path.join(warehouse.baseDir, name + '.raw'), mode='r', **meta)

    def deallocate(self, warehouse, name):
        os.remove(os.path.join(warehouse.baseDir, name + '.raw'))

    def close(self):
        with open('closed.log', 'a') as log:
            log.write('closed\\n')


N = 3


@ReactorFunc
def fill(pipe, config):
    log_run('fill')
    pipe.register_config_param('label')
    data = pipe.allocate('raw', RawSpec, shape=(N,), dtype=np.float64)
    data[:] = np.arange(N)
    pipe.send('raw', data)


@ReactorFunc
def report(pipe):
    log_run('report')
    raw = yield pipe.receive('raw')
    print('REPORT', raw.tolist())
    pipe.send('text', str(raw.tolist()))


if __name__ == '__main__':
    with Plant(os.environ.get('PLANT_DIR', 'plant')) as plant:
        plant.warehouse.register_ingredient_specs([RawSpec()])
        plant.set_config({'label': 'a'})
        plant.run_reactor(report)
"""
)


def closed_count(project: Project) -> int:
    log = project.root / "closed.log"
    return len(log.read_text().split()) if log.exists() else 0


def test_a_pyplant_spec_allocation_under_the_daemon_and_its_spec_closed_at_each_reload(
    project: Project, start_daemon: Callable[..., Daemon]
):
    project.write("pipeline.py", ALLOCATING)
    daemon = start_daemon()
    run = daemon.next_run(timeout=60)
    assert take_ran(project) == ["fill", "report"], run
    assert any("REPORT [0.0, 1.0, 2.0]" in line for line in run.lines), run
    assert closed_count(project) == 0

    # a reload: the first load's spec is closed (as PyPlant's plant shutdown closed it); fill
    # re-runs for its parameter, allocates the same content, and report is served
    project.edit("pipeline.py", "'label': 'a'", "'label': 'b'")
    run = daemon.next_run(timeout=60)
    assert take_ran(project) == ["fill"], run
    assert closed_count(project) == 1, run

    project.edit("pipeline.py", "N = 3", "N = 5")
    run = daemon.next_run(timeout=60)
    assert take_ran(project) == ["fill", "report"], run
    assert closed_count(project) == 2, run
    served = [REPORT.search(line)[1] for line in run.lines if REPORT.search(line)]
    assert served == [fresh_report(project)] == ["[0.0, 1.0, 2.0, 3.0, 4.0]"]

    # a reload that no longer registers the spec closes the previous load's all the same: it
    # is not used on, as a fresh run would not know it either
    assert closed_count(project) == 3  # the fresh run closed its own at its shutdown
    registration = "        plant.warehouse.register_ingredient_specs([RawSpec()])\n"
    project.edit("pipeline.py", registration, "")
    run = daemon.next_run(timeout=60)
    assert closed_count(project) == 4, run
