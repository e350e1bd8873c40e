"""The registry of visible reactors: ids, and the latest definition winning (notebook cells)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from pyplantd import Plant, ReactorFunc
from pyplantd.reactor import function_id, latest_definition

CELL = "from pyplantd import ReactorFunc\n@ReactorFunc\ndef load(pipe):\n    pipe.send('x', {v})\n"


def _define(namespace: dict[str, Any], value: int, filename: str) -> Any:
    """Run a cell as IPython does: compiled under the cell's own file name, in __main__."""
    exec(compile(CELL.format(v=value), filename, "exec"), namespace)
    return namespace["load"]


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [
        ({"__name__": "__main__", "__file__": "/p/pipeline.py"}, "pipeline:load"),
        ({"__name__": "__main__"}, "__main__:load"),  # a notebook or console
        ({"__name__": "helpers", "__file__": "/p/helpers.py"}, "helpers:load"),
    ],
)
def test_function_id(namespace: dict[str, Any], expected: str) -> None:
    assert function_id(_define(dict(namespace), 1, "/tmp/ipykernel_1/123.py")) == expected


def test_a_later_cell_replaces_a_reactor_in_every_plant_and_says_so_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    first = _define(namespace, 1, "<ipython-input-1-aaaa>")
    with Plant(tmp_path / "plant") as plant:
        plant.run_reactor(first)
        with caplog.at_level(logging.WARNING, logger="pyplantd.reactor"):
            second = _define(namespace, 2, "<ipython-input-2-bbbb>")
            third = _define(namespace, 3, "<ipython-input-3-cccc>")
        assert latest_definition(first) is third
        plant.run_reactor(first)  # the old object: its latest definition runs
        assert plant.fetch_ingredient("x") == 3
    told = [r.getMessage() for r in caplog.records if "defined again" in r.getMessage()]
    assert len(told) == 1 and "'load'" in told[0]
    assert second is not third


def test_a_script_run_again_replaces_its_reactors_without_a_word(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="pyplantd.reactor"):
        for value in (1, 2):  # what the daemon does on every save
            _define({"__name__": "__main__", "__file__": "/p/pipeline.py"}, value, "/p/pipeline.py")
    assert not caplog.records


def test_reactor_func_returns_the_function() -> None:
    def load(pipe: Any) -> None:
        pass

    assert ReactorFunc(load) is load
