"""Measures what the terminal costs reactors: pipe.progress in a tight loop, and a 1000-reactor run.

Two figures:

1. progress calls: a reactor looping 1,000,000 times over a trivial body, bare, calling
   `pipe.progress(i, n)` every iteration, and iterating `pipe.track(range(n))`; in this
   process (`Plant.run_reactor`), the reactor's own duration. The calls are throttled to ten
   reports a second, so the cost is the call itself.
2. a 1000-reactor run in the daemon: a real `pyplantd watch` subprocess whose output is a pipe
   (plain lines) or a pseudo-terminal (the live view, redrawn 8 times a second), both drained
   by this process. 1000 reactors each iterate `pipe.track` over 2,000 items and send a value,
   and a last one receives them all (so it waits, on the live view, for each in turn). Each
   save edits a constant every reactor reads: all 1001 run. The run's duration is the daemon's
   own (its `run_finished` event).

Prints a Markdown section on stdout; progress on stderr.

    bench/.venv/bin/python bench/bench_terminal.py --calls 1000000 --reactors 1000 --saves 5
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import os
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from _common import (
    child_env,
    fmt_seconds,
    load_average,
    log,
    md_table,
    median,
    touch_own_memory,
    warm_memory,
)

RUN_TIMEOUT = 600.0
COLUMNS, ROWS = 160, 50


# --- 1: progress calls in a tight loop ----------------------------------------------------------
def measure_calls(calls: int, repeats: int) -> dict[str, list[float]]:
    from pyplantd import Plant, ReactorFunc

    @ReactorFunc
    def bare(pipe):
        total = 0
        for number in range(calls):
            total += number
        pipe.send("bare", total)

    @ReactorFunc
    def progress(pipe):
        total = 0
        for number in range(calls):
            total += number
            pipe.progress(number + 1, calls)
        pipe.send("progress", total)

    @ReactorFunc
    def track(pipe):
        total = 0
        for number in pipe.track(range(calls)):
            total += number
        pipe.send("track", total)

    found: dict[str, list[float]] = {"bare": [], "progress": [], "track": []}
    with tempfile.TemporaryDirectory(prefix="bench-terminal-") as work:
        for repeat in range(repeats):
            with Plant(Path(work) / f"plant-{repeat}") as plant:
                touch_own_memory()
                for name, reactor in (("bare", bare), ("progress", progress), ("track", track)):
                    plant.run_reactor(reactor)
                    found[name].append(plant.last_run[-1].duration)
            log(f"calls: repeat {repeat + 1}/{repeats}")
    return found


# --- 2: a 1000-reactor run, the daemon's output a pipe or a terminal -----------------------------
def pipeline(reactors: int, items: int, constant: int) -> str:
    parts = [f"from pyplantd import Plant, ReactorFunc\n\nK = {constant}\n"]
    for index in range(reactors):
        parts.append(
            f"\n@ReactorFunc\ndef r{index}(pipe):\n    total = K\n"
            f"    for number in pipe.track(range({items})):\n        total += number\n"
            f"    pipe.send('v{index}', total)\n"
        )
    parts.append(
        f"\n@ReactorFunc\ndef report(pipe):\n    total = 0\n    for index in range({reactors}):\n"
        "        total += yield pipe.receive(f'v{index}')\n    print('total', total)\n"
        "\n\nif __name__ == '__main__':\n    with Plant('plant') as plant:\n"
        "        plant.run_reactor(report)\n"
    )
    return "".join(parts)


class Drained:
    """A daemon subprocess whose output is read (and dropped) as fast as it comes."""

    def __init__(self, root: Path, terminal: bool) -> None:
        cmd = [sys.executable, "-m", "pyplantd.cli", "watch", "pipeline.py"]
        env = {**child_env(), "COLUMNS": str(COLUMNS), "LINES": str(ROWS)}
        self.received = 0
        if terminal:
            master, slave = os.openpty()
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
            env["TERM"] = "xterm-256color"
            self.proc = subprocess.Popen(
                cmd, cwd=root, env=env, stdin=slave, stdout=slave, stderr=slave,
                start_new_session=True,
            )  # fmt: skip
            os.close(slave)
            read: Callable[[], bytes] = functools.partial(_read_fd, master)
            self._close: Callable[[], None] = functools.partial(os.close, master)
        else:
            self.proc = subprocess.Popen(
                cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            stream: IO[bytes] = self.proc.stdout  # type: ignore[assignment]
            read = functools.partial(stream.read1, 65536)
            self._close = stream.close
        self._reader = threading.Thread(target=self._drain, args=(read,), daemon=True)
        self._reader.start()

    def _drain(self, read: Callable[[], bytes]) -> None:
        while data := read():
            self.received += len(data)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(10)
        self._close()


def _read_fd(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the terminal's other end closed
        return b""


@dataclass
class RunFigures:
    durations: list[float] = field(default_factory=list)  # the daemon's own, per run
    cpu: list[float] = field(default_factory=list)  # the daemon process's CPU time, per run
    printed: int = 0  # bytes, all runs


class Served:
    """A project under a daemon of its own, and a client following its runs."""

    def __init__(self, root: Path, reactors: int, items: int, terminal: bool,
                 stack: contextlib.ExitStack) -> None:  # fmt: skip
        import psutil

        self.root, self.reactors, self.items = root, reactors, items
        self.script = root / "pipeline.py"
        self.script.write_text(pipeline(reactors, items, 0))
        self.daemon = Drained(root, terminal)
        stack.callback(self.daemon.stop)
        self.client = stack.enter_context(_connect(root, self.daemon))
        self.stream = stack.enter_context(self.client.subscribe())
        self.process = psutil.Process(self.daemon.proc.pid)
        self.figures = RunFigures()
        _wait_idle(self.client)

    def run(self, save: int) -> None:
        """Save an edit every reactor depends on; the run's duration and the daemon's CPU."""
        warm_memory()
        cpu = sum(self.process.cpu_times()[:2])
        self.script.write_text(pipeline(self.reactors, self.items, save))
        finished = _finished(self.client.follow(self.stream, None, timeout=RUN_TIMEOUT))
        if finished.get("status") != "ok" or finished.get("ran") != self.reactors + 1:
            raise RuntimeError(f"the run did not run every reactor: {finished}")
        self.figures.durations.append(float(finished["duration"]))
        self.figures.cpu.append(sum(self.process.cpu_times()[:2]) - cpu)
        self.figures.printed = self.daemon.received


def measure_runs(reactors: int, items: int, saves: int) -> dict[str, RunFigures]:
    """`saves` runs of every reactor in each of two daemons, one printing to a pipe and one to a
    terminal, taking turns so that the machine's load weighs on both alike."""
    with tempfile.TemporaryDirectory(prefix="bench-terminal-") as work, \
            contextlib.ExitStack() as stack:  # fmt: skip
        served = {}
        for label, terminal in (("pipe", False), ("terminal", True)):
            root = Path(work) / label
            root.mkdir()
            served[label] = Served(root, reactors, items, terminal, stack)
        for save in range(1, saves + 1):
            for label, one in served.items():
                one.run(save)
                log(f"run ({label}): save {save}/{saves}")
        return {label: one.figures for label, one in served.items()}


def _connect(root: Path, daemon: Drained) -> Any:
    from pyplant_client import Client

    deadline = time.monotonic() + RUN_TIMEOUT
    while True:
        try:
            return Client.find(root)
        except Exception:
            if daemon.proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _wait_idle(client: Any) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT
    while client.status().get("state") != "idle" or not client.status().get("last_run"):
        if time.monotonic() > deadline:
            raise TimeoutError("the daemon's first run did not end")
        time.sleep(0.1)


def _finished(events: Any) -> dict[str, Any]:
    for event in events:
        if event.get("type") == "run_finished":
            return dict(event)
    raise RuntimeError("no run_finished")


# --- the section --------------------------------------------------------------------------------
def render(args: argparse.Namespace, calls: dict[str, list[float]],
           runs: dict[str, RunFigures], loads: tuple[str, str]) -> str:  # fmt: skip
    bare = median(calls["bare"])
    rows = []
    for name, label in (("bare", "bare loop"), ("progress", "`pipe.progress(i, n)` each"),
                        ("track", "`for i in pipe.track(range(n))`")):  # fmt: skip
        took = median(calls[name])
        extra = "" if name == "bare" else f"{(took - bare) / args.calls * 1e9:.0f} ns"
        rows.append([label, fmt_seconds(took), fmt_seconds(min(calls[name])), extra])
    call_table = md_table(["reactor", "median", "min", "added per call"], rows)

    plain, live = runs["pipe"], runs["terminal"]
    run_rows = [
        [label, fmt_seconds(median(found.durations)), fmt_seconds(min(found.durations)),
         fmt_seconds(median(found.cpu)), f"{found.printed / 1024:.0f} KiB"]
        for label, found in (("a pipe (plain lines)", plain), ("a terminal (live view)", live))
    ]  # fmt: skip
    slower = median(live.durations) / median(plain.durations) - 1
    more_cpu = median(live.cpu) / median(plain.cpu) - 1
    run_table = md_table(
        ["daemon output to", "run median", "min", "daemon CPU per run", "printed (all runs)"],
        run_rows,
    )
    return f"""## Terminal: progress calls, a 1000-reactor run with and without the live view

**Progress calls.** A reactor looping {args.calls:,} times over `total += i`, in this process;
its own duration, median of {args.repeats} (throttled to ten reports a second, so this is the
cost of the call):

{call_table}

**A {args.reactors}-reactor run in the daemon** (`pyplantd watch`, a real subprocess): each of
{args.reactors} reactors iterates `pipe.track` over {args.items:,} items and sends a value, one
more receives them all; each of {args.saves} saves re-runs all {args.reactors + 1}. The run's
duration as the daemon reports it, with its output a pipe or a pseudo-terminal (both drained;
two daemons taking turns, one save each):

{run_table}

With the live view, the run's median changes by {slower:+.1%} and the daemon's CPU time by
{more_cpu:+.1%}. It redraws 8 times a second, from a drawing cached between redraws, and shows
the reactors in flight and the last ten finished; without a terminal the daemon prints a line
per reactor instead. Wall times on this shared machine vary more from run to run.

Load average before/after: {loads[0]} / {loads[1]}.

    {command_line(args)}
"""


def command_line(args: argparse.Namespace) -> str:
    return (
        f"bench/.venv/bin/python bench/bench_terminal.py --calls {args.calls} --repeats "
        f"{args.repeats} --reactors {args.reactors} --items {args.items} --saves {args.saves}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reactors", type=int, default=1000)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--saves", type=int, default=5)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = load_average()
    calls = measure_calls(args.calls, args.repeats)
    try:
        runs = measure_runs(args.reactors, args.items, args.saves)
    except Exception as failure:  # report it in the section, never crash the runner
        print(f"## Terminal\n\nthe daemon runs failed: {failure!r}\n")
        return
    print(render(args, calls, runs, (load_before, load_average())))


if __name__ == "__main__":
    main()
