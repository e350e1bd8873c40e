"""The pipeline from PyPlant's introduction: load a large array once, re-plot it cheaply.

Run it twice: the second time only `plot_data` runs. Edit the plot (or the `color` in the
config) and only the plot re-runs; edit `expensive_operation` so that its data changes (the
seed) and both do; an edit that leaves its data as it was (the `sleep`) re-runs `load_data`
only: `plot_data`'s input is unchanged (early cutoff).
"""

import os
import time
from pathlib import Path

import numpy as np

from pyplantd import ConfigBase, Ingredient, Plant, ReactorFunc


class Config(ConfigBase):
    def __init__(self):
        super().__init__()
        self.size = 2_000_000
        self.color = "green"


def expensive_operation(size):
    """A cheap stand-in for loading or computing something slow."""
    time.sleep(0.5)
    rng = np.random.default_rng(42)
    return rng.normal(size=size).astype(np.float32)


def plot_examples(data, color):
    """A text 'plot': a histogram of the data drawn with the configured color's initial."""
    counts, edges = np.histogram(data, bins=10)
    for count, left in zip(counts, edges[:-1], strict=True):
        print(f"{left:+.2f} {color[0] * int(60 * count / counts.max())}")


@ReactorFunc
def load_data(pipe, config):
    data = expensive_operation(config.size)
    pipe.send("data", data, Ingredient.Type.array)


@ReactorFunc
def plot_data(pipe, config):
    data = yield pipe.receive("data")
    plot_examples(data, config.color)


if __name__ == "__main__":
    # beside this script: a plant dir of yours, unlike one in a shared /tmp
    beside = Path(__file__).with_name("quickstart-plant")
    plant_dir = os.environ.get("PYPLANTD_QUICKSTART_DIR", beside)
    with Plant(plant_dir) as plant:
        plant.set_config(Config())
        plant.run_reactor(plot_data)
