"""Data larger than memory: write it block by block, stream it through, reduce it.

`make_frames` allocates an HDF5 dataset in the plant dir and fills it one block at a time;
`smooth` reads it block by block and writes a second one; `summarize` reduces that. With a
memory budget smaller than the data, nothing is ever loaded whole. Run it twice: the second
time only `summarize` (the target) runs, reading the stored data from disk.

    python examples/out_of_core.py                 # 512 MiB of frames
    FRAMES=4096 python examples/out_of_core.py     # 4 GiB
"""

import os
from pathlib import Path

import numpy as np

from pyplantd import Ingredient, Plant, ReactorFunc

FRAME = (256, 512)  # float32: 512 KiB per frame
BLOCK = 64  # frames written or read at a time: 32 MiB


@ReactorFunc
def make_frames(pipe, config):
    count = config.frames
    frames = pipe.allocate(
        "frames", Ingredient.Type.hdf_array, shape=(count, *FRAME), dtype="float32",
        chunks=(BLOCK, *FRAME),
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for start in range(0, count, BLOCK):
        stop = min(start + BLOCK, count)
        frames[start:stop] = rng.standard_normal((stop - start, *FRAME), dtype=np.float32)
    pipe.send("frames", frames)


@ReactorFunc
def smooth(pipe):
    frames = yield pipe.receive("frames")  # an h5py.Dataset: nothing is read yet
    smoothed = pipe.allocate(
        "smoothed", Ingredient.Type.hdf_array, shape=frames.shape, dtype="float32",
        chunks=frames.chunks,
    )  # fmt: skip
    for start in range(0, frames.shape[0], BLOCK):
        block = frames[start : start + BLOCK]
        smoothed[start : start + BLOCK] = (block + np.roll(block, 1, axis=2)) / 2
    pipe.send("smoothed", smoothed)


@ReactorFunc
def summarize(pipe):
    smoothed = yield pipe.receive("smoothed")
    total, count = 0.0, 0
    for start in range(0, smoothed.shape[0], BLOCK):
        block = smoothed[start : start + BLOCK]
        total += float(block.sum(dtype=np.float64))
        count += block.size
    print(f"{smoothed.shape[0]} frames, mean {total / count:+.6f}")


if __name__ == "__main__":
    # beside this script: a plant dir of yours, unlike one in a shared /tmp
    beside = Path(__file__).with_name("out-of-core-plant")
    plant_dir = os.environ.get("PYPLANTD_EXAMPLE_DIR", beside)
    with Plant(plant_dir, memory="256MiB") as plant:
        plant.set_config({"frames": int(os.environ.get("FRAMES", "1024"))})
        plant.run_reactor(summarize)
