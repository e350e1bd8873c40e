"""PyPlant 0.6.0 compatibility, in process: each PyPlant name and behaviour that pyplantd keeps.

The scripts written in PyPlant's own spelling, run one-shot and under the daemon, are in
test_pyplant_scripts.py.
"""

from __future__ import annotations

import pickle

import pytest

from pyplantd import Plant, PlantError, ReactorFailedError, ReactorFunc


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
