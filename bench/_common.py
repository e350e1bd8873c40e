"""Shared helpers for the benchmarks: timed subprocess runs, memory warm-up, statistics, Markdown.

Every `bench_*.py` imports from here; this module imports nothing from `pyplantd` or `pyplant`,
so it works even when the engine under test does not import.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GIB = 2**30
FLOAT32 = 4  # bytes
WARM_GIB = 2.0
STDERR_TAIL_LINES = 4
# Set in some sandboxes; they would make every child re-compile whatever it imports from source
# (an earlier pyplantd put on PYTHONPATH by --baseline-rev), which no user's machine does.
UNSET_IN_CHILDREN = ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")


@dataclass(frozen=True)
class RunResult:
    """One subprocess run: wall time, child CPU time, exit status and output."""

    cmd: tuple[str, ...]
    seconds: float
    cpu_seconds: float
    returncode: int | None  # None when the run was killed by its timeout
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def failure(self) -> str:
        """One line saying why the run failed, with the tail of its stderr."""
        if self.timed_out:
            why = f"timed out after {self.seconds:.0f} s"
        else:
            why = f"exit code {self.returncode}"
        return f"{why}: {tail(self.stderr)}"


def log(message: str) -> None:
    """Progress goes to stderr; stdout is reserved for the Markdown section."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def warm_memory(gib: float = WARM_GIB) -> None:
    """Write `gib` GiB once and free it.

    The host reclaims memory a guest leaves idle; the next first touch of those pages is then
    slow and lands in whichever process happens to run, distorting its timing.
    """
    if gib <= 0:
        return
    block = np.empty(int(gib * GIB), dtype=np.uint8)
    block.fill(1)
    del block


def touch_own_memory(largest: int = 64 * 2**20) -> int:
    """Read every page of this process's own writable memory (its heap and anonymous mappings
    up to `largest` bytes each: Python's objects, not big arrays); the bytes read.

    Writing and freeing GiBs (warm_memory) makes the host take back pages of this very process
    too: touching its long-lived objects afterwards (modules, functions) then costs up to tens
    of milliseconds, once, in whatever runs next. Call it after warm_memory, before timing code
    that runs in this process. Linux only (/proc/self/mem); elsewhere it does nothing.
    """
    total = 0
    try:
        maps, mem = open("/proc/self/maps"), open("/proc/self/mem", "rb", buffering=0)  # noqa: SIM115
    except OSError:
        return 0
    with maps, mem:
        for line in maps:
            fields = line.split()
            low, high = (int(bound, 16) for bound in fields[0].split("-"))
            anonymous = len(fields) < 6 or fields[5] == "[heap]"
            if fields[1].startswith("rw") and anonymous and high - low <= largest:
                try:
                    total += len(os.pread(mem.fileno(), high - low, low))
                except OSError:  # a mapping that cannot be read this way
                    continue
    return total


def child_env() -> dict[str, str]:
    """This process's environment without the variables that make children atypical."""
    return {k: v for k, v in os.environ.items() if k not in UNSET_IN_CHILDREN}


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(
    cmd: Sequence[str],
    timeout: float,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    warm_gib: float = WARM_GIB,
    sync: bool = False,
) -> RunResult:
    """Run `cmd` to completion in a new process and time it; never raises for the child's failure.

    Memory is warmed before the clock starts, and with `sync` dirty pages are flushed first
    (the run then pays for no earlier process's writes). CPU time is the growth of this process's
    waited-for children's rusage, exact as long as runs are sequential. `env` defaults to
    `child_env()`.
    """
    env = child_env() if env is None else env
    if sync:
        os.sync()
    warm_memory(warm_gib)
    cpu_before = _children_cpu_seconds()
    start = time.perf_counter()
    try:
        done = subprocess.run(
            list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
        )
        returncode: int | None = done.returncode
        stdout, stderr = done.stdout, done.stderr
    except subprocess.TimeoutExpired as err:
        returncode = None
        stdout, stderr = _text(err.stdout), _text(err.stderr)
    seconds = time.perf_counter() - start
    cpu = _children_cpu_seconds() - cpu_before
    return RunResult(tuple(cmd), seconds, cpu, returncode, stdout, stderr)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def tail(text: str, lines: int = STDERR_TAIL_LINES) -> str:
    """The last non-empty lines of `text`, joined with ' | ' so they fit in one table cell."""
    # Skip 3.11+ traceback underlines (^^^^, ~~~~): they carry nothing in one line.
    kept = [line.strip() for line in text.splitlines() if line.strip().strip("^~")]
    return " | ".join(kept[-lines:]) or "(no output)"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def fmt_seconds(seconds: float) -> str:
    """Seconds with three significant figures, or an em dash when unknown."""
    if math.isnan(seconds):
        return "—"
    if abs(seconds) < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s" if abs(seconds) < 10 else f"{seconds:.1f} s"


def fmt_time(seconds: float) -> str:
    """Like fmt_seconds, with microseconds for what takes less than a millisecond."""
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else fmt_seconds(seconds)


def best_of(func: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` timings of an in-process call (the machine is shared)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def fmt_ratio(numerator: float, denominator: float) -> str:
    if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
        return "—"
    return f"{numerator / denominator:.2f}x"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; '|' inside cells is escaped."""

    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    separator = "| " + " | ".join("---" for _ in headers) + " |"
    return "\n".join([line(headers), separator, *(line(row) for row in rows)])


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, e.g. '1.02, 0.80, 0.51'."""
    return ", ".join(f"{load:.2f}" for load in os.getloadavg())


def machine_summary() -> dict[str, str]:
    """What the figures were measured on: cores, memory, CPU model, Python, OS, date."""
    return {
        "cores (nproc)": str(len(os.sched_getaffinity(0))),
        "memory": f"{_total_memory_gib():.1f} GiB",
        "cpu": _cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "os": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def _total_memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt_median_min(values: Sequence[float], fmt: Callable[[float], str] = fmt_seconds) -> str:
    """'median (min)' of `values` formatted with `fmt`; just the value when there is one."""
    if not values:
        return "—"
    shown = fmt(median(values))
    return f"{shown} ({fmt(min(values))})" if len(values) > 1 else shown


def fmt_bytes(size: float) -> str:
    """Bytes in binary units: 512 KiB, 1.50 GiB."""
    if math.isnan(size):
        return "—"
    for unit in ("B", "KiB", "MiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.2f} GiB"


def sync_and_warm(gib: float = WARM_GIB) -> None:
    """Flush dirty pages to disk, then warm memory: a timed write then pays only for its own
    data, and the page cache it fills comes from memory the host has not reclaimed."""
    os.sync()
    warm_memory(gib)
