"""A fork server: imports numpy, h5py and pyplantd once, then forks a clean child per job, so a
one-shot run costs a fork instead of a new interpreter. A child is a new process in every way
that matters (its own pyplantd state, the user's modules imported fresh); only third-party
imports are inherited, as they would be loaded identically anyway.

Jobs (one JSON line each on stdin; one JSON reply line on stdout):
  {"kind": "run", "mode": "python" | "cli", "project", "plant", "out", "timeout", "bytecode"}
      `python pipeline.py`, or `pyplantd run pipeline.py --explain`, in `project`;
      `"bytecode": false` keeps CPython from reading or writing __pycache__.
  {"kind": "plain", "project", "out", "reactors", "producers", "timeout"}
      the plain-Python oracle (oracle.py) on a project copy.
The child's stdout and stderr go to `out/stdout.txt`. Reply: {"rc": int, "timed_out": bool}.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 120.0  # one run of a tiny project takes well under a second; a loaded machine...


def preload() -> None:
    """Import what every run imports; and what the CLI imports on first use (its parser and
    table rendering), by asking it for help once."""
    import contextlib
    import io

    import h5py  # noqa: F401
    import numpy  # noqa: F401

    import difftest.oracle  # noqa: F401
    import pyplantd.cli
    import pyplantd.plant
    from pyplantd.terminal import report

    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        pyplantd.cli.app(args=["run", "--help"], prog_name="pyplantd")
    from rich.console import Console

    Console(file=io.StringIO()).print(report.decision_table([]))


def child(job: dict[str, Any]) -> None:
    rc = 1
    try:
        out = job["out"]
        fd = os.open(os.path.join(out, "stdout.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ.update(DIFFTEST_OUT=out, DIFFTEST_PLANT=job.get("plant", "plant"))
        os.environ["COLUMNS"] = "200"
        os.chdir(job["project"])
        sys.path.insert(0, job["project"])
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # As a user's Python does by default, whatever this environment says, unless asked
        # not to: then __pycache__ is neither read nor written.
        sys.dont_write_bytecode = not job.get("bytecode", True)
        if sys.dont_write_bytecode:
            sys.pycache_prefix = os.path.join(out, "no-pycache")
        if job["kind"] == "plain":
            from difftest.oracle import evaluate

            evaluate(job["project"], job["reactors"], job["producers"])
            rc = 0
        elif job["mode"] == "python":
            rc = run_python()
        else:
            rc = run_cli()
    except BaseException:
        traceback.print_exc()
        rc = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def run_python() -> int:
    """`python pipeline.py`."""
    import runpy

    sys.argv = ["pipeline.py"]
    try:
        runpy.run_path("pipeline.py", run_name="__main__")
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    return 0


def run_cli() -> int:
    """`pyplantd run pipeline.py --explain`."""
    from pyplantd.cli import app

    sys.argv = ["pyplantd", "run", "pipeline.py", "--explain"]
    try:
        app(args=["run", "pipeline.py", "--explain"], prog_name="pyplantd")
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    return 0


def wait(pid: int, timeout: float) -> tuple[int, bool]:
    deadline = time.monotonic() + timeout
    pidfd = os.pidfd_open(pid)
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return -9, True
            select.select([pidfd], [], [], remaining)
    finally:
        os.close(pidfd)


# -- the client: the runner's side -----------------------------------------------------------
class Zygote:
    """The fork server as a subprocess: `run(**job)` sends a job and waits for its reply."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(REPO / "tests"), str(REPO), str(REPO / "client")]
        )}  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "difftest.zygote"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env=env, cwd=tempfile.gettempdir(),
        )  # fmt: skip
        self._reply(120.0)

    def _reply(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"the fork server did not answer within {timeout} s")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def run(self, **job: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        job.setdefault("timeout", RUN_TIMEOUT)
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        return self._reply(float(job["timeout"]) + 60)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def main() -> None:
    preload()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(job)
        rc, timed_out = wait(pid, float(job.get("timeout", 120)))
        print(json.dumps({"rc": rc, "timed_out": timed_out}), flush=True)


if __name__ == "__main__":
    main()
