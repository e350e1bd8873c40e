"""A process killed (SIGKILL) while payloads are being written: nothing partial is ever served."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np

REPO = Path(__file__).resolve().parents[1]

SPILLING = """
import sys
import numpy as np
from pyplantd import Plant, ReactorFunc

N = 6

def make_reactor(i):
    @ReactorFunc
    def produce(pipe):
        if i:
            yield pipe.receive(f'part{i - 1}')
        pipe.send(f'part{i}', np.full(4 * 2**20, i, dtype=np.float64))  # 32 MiB each
        with open('ran.log', 'a') as log:
            log.write(f'part{i}\\n')
    produce.__name__ = produce.__qualname__ = f'produce{i}'
    return produce

reactors = [make_reactor(i) for i in range(N)]

with Plant(sys.argv[1]) as plant:
    plant.add_reactors(*reactors)
    plant.run_reactor(reactors[-1])
"""


def recorded_reactors(plant_dir: Path) -> set[str]:
    db = sqlite3.connect(plant_dir / "pyplantd.db")
    try:
        return {name for (name,) in db.execute("SELECT name FROM reactors")}
    finally:
        db.close()


def start(script: Path, plant_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(script), str(plant_dir)], cwd=script.parent, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def wait_for_temp_file(payloads: Path, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if payloads.exists() and any(p.name.startswith(".tmp") for p in payloads.iterdir()):
            return True
        time.sleep(0.001)
    return False


def test_killed_mid_write_then_restarted_serves_only_complete_payloads(tmp_path):
    script = tmp_path / "spill.py"
    script.write_text(SPILLING)
    plant_dir = tmp_path / "plant"
    proc = start(script, plant_dir)
    try:
        assert wait_for_temp_file(plant_dir / "payloads", proc), "no write was seen"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (tmp_path / "ran.log").unlink(missing_ok=True)
    committed = recorded_reactors(plant_dir)

    rerun = start(script, plant_dir)
    _, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr.decode()
    names = sorted(p.name for p in (plant_dir / "payloads").iterdir())
    assert not any(n.startswith(".tmp") for n in names)  # orphans removed at start
    assert len(names) == 6
    ran = set((tmp_path / "ran.log").read_text().split())
    everything = {f"part{i}" for i in range(6)}
    finished = {name.replace("produce", "part") for name in committed}
    assert ran == (everything - finished) | {"part5"}  # the target always runs
    for name in names:  # every payload is complete and holds what its producer sent
        with h5py.File(plant_dir / "payloads" / name, "r") as handle:
            data = handle["data"]
            i = int(name.split("-")[0].removeprefix("part"))
            assert data.shape == (4 * 2**20,)
            assert np.all(data[::4096] == i)
