"""Eight independent one-second steps and a sink that gathers them: run it on two threads.

    python examples/wide.py                              # threads:2, as Plant(...) asks: ~4 s
    pyplantd run examples/wide.py --executor inline      # one at a time: ~8 s

The sink asks for all eight parts in one yield (a tuple of receives), so on a first run their
producers start together; on later runs the recorded inputs' producers start before it asks.
Change `seconds` in the config and all eight re-run, two at a time.
"""

import os
import time
from pathlib import Path

from pyplantd import ConfigBase, Plant, ReactorFunc

PARTS = 8


class Config(ConfigBase):
    def __init__(self):
        super().__init__()
        self.seconds = 1.0


def make_part(pipe, config, index):
    """A slow step (waiting on I/O, say): threads let others run meanwhile."""
    time.sleep(config.seconds)
    pipe.send(f"part_{index}", [index] * 3)


@ReactorFunc
def part_0(pipe, config):
    make_part(pipe, config, 0)


@ReactorFunc
def part_1(pipe, config):
    make_part(pipe, config, 1)


@ReactorFunc
def part_2(pipe, config):
    make_part(pipe, config, 2)


@ReactorFunc
def part_3(pipe, config):
    make_part(pipe, config, 3)


@ReactorFunc
def part_4(pipe, config):
    make_part(pipe, config, 4)


@ReactorFunc
def part_5(pipe, config):
    make_part(pipe, config, 5)


@ReactorFunc
def part_6(pipe, config):
    make_part(pipe, config, 6)


@ReactorFunc
def part_7(pipe, config):
    make_part(pipe, config, 7)


@ReactorFunc
def gather(pipe):
    parts = yield tuple(pipe.receive(f"part_{index}") for index in range(PARTS))
    total = sum(sum(part) for part in parts)
    pipe.send("total", total)
    print(f"total of {len(parts)} parts: {total}")


if __name__ == "__main__":
    beside = Path(__file__).with_name("wide-plant")
    plant_dir = os.environ.get("PYPLANTD_WIDE_DIR", beside)
    executor = os.environ.get("PYPLANTD_WIDE_EXECUTOR", "threads:2")
    with Plant(plant_dir, executor=executor) as plant:
        plant.set_config(Config())
        started = time.perf_counter()
        plant.run_reactor(gather)
        print(f"{time.perf_counter() - started:.2f} s with {executor}")
