"""A pipeline spread over two modules: reactors here, plain helpers in helpers.py.

No decorator is needed on the helpers: editing `normalize` re-runs `prepare` (and what depends
on its output); editing `summarize` re-runs only `report`.
"""

import os
from pathlib import Path

import numpy as np
from helpers import SCALE, normalize, summarize

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def load(pipe):
    rng = np.random.default_rng(0)
    pipe.send("raw", rng.uniform(0, 10, size=100_000))


@ReactorFunc
def prepare(pipe):
    raw = yield pipe.receive("raw")
    pipe.send("prepared", normalize(raw) * SCALE)


@ReactorFunc
def report(pipe):
    prepared = yield pipe.receive("prepared")
    print(summarize(prepared))


if __name__ == "__main__":
    # beside this script: a plant dir of yours, unlike one in a shared /tmp
    beside = Path(__file__).with_name("plant")
    plant_dir = os.environ.get("PYPLANTD_EXAMPLE_DIR", beside)
    with Plant(plant_dir) as plant:
        plant.run_reactor(report)
