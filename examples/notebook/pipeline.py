"""A small pipeline for the notebook beside it (explore.ipynb): noisy points, a fitted line
(an object: fetched as a pickle, from the checked payload file), and a summary.

Start the daemon here (`pyplantd watch pipeline.py`), then run the notebook.
"""

import os
from pathlib import Path

import numpy as np
from model import Line

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def load(pipe, config):
    rng = np.random.default_rng(7)
    x = np.linspace(0.0, 1.0, config.n)
    pipe.send("points", np.stack([x, 2.0 * x + 1.0 + rng.normal(0.0, 0.05, config.n)], axis=1))


@ReactorFunc
def fit(pipe):
    points = yield pipe.receive("points")
    slope, intercept = np.polyfit(points[:, 0], points[:, 1], 1)
    pipe.send("model", Line(float(slope), float(intercept)))
    pipe.send("summary", {"points": len(points), "slope": round(float(slope), 3)})


if __name__ == "__main__":
    beside = Path(__file__).with_name("notebook-plant")
    with Plant(os.environ.get("PYPLANTD_EXAMPLE_DIR", beside)) as plant:
        plant.set_config({"n": 200})
        plant.run_reactor(fit)
