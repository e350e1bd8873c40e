"""Execution history: how long each reactor ran, PyPlant's `get_execution_history` records."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class ExecutionRecord:
    reactor_name: str
    start_time: float
    total_runtime: float
    finish_time: float
    status: str  # ran / failed
    reasons: list[str]

    # -- PyPlant's names --------------------------------------------------------------------
    @property
    def reactorName(self) -> str:  # noqa: N802
        return self.reactor_name

    @property
    def startTime(self) -> float:  # noqa: N802
        return self.start_time

    @property
    def totalRuntime(self) -> float:  # noqa: N802
        return self.total_runtime

    @property
    def finishTime(self) -> float:  # noqa: N802
        return self.finish_time


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    head = (f"{hours}h " if hours else "") + (f"{minutes}m " if minutes or hours else "")
    return f"{head}{rest:.2f} s"


def print_history(
    records: dict[str, ExecutionRecord], print_fn: Callable[[Any], Any] = print
) -> None:
    ordered = sorted(records.values(), key=lambda r: r.total_runtime, reverse=True)
    width = max([len(r.reactor_name) for r in ordered] + [7])
    print_fn(f"{'Reactor':<{width}}  {'status':<6}  {'run time':>10}")
    for record in ordered:
        duration = format_duration(record.total_runtime)
        print_fn(f"{record.reactor_name:<{width}}  {record.status:<6}  {duration:>10}")
