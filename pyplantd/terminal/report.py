"""Terminal rendering of run results: the decision table, explanations, plans, tracebacks.

Shared by `pyplantd run` and the daemon console. Depends on rich, never on typer.
"""

from __future__ import annotations

import traceback

from rich.console import Console
from rich.table import Table

from ..run.history import format_duration
from ..run.judge import Decision
from ..run.planner import PlannedStep
from ..signatures.origins import is_user_file
from ..sizes import format_size
from ..store.listing import IngredientRow

_STYLE = {
    "ran": "green",
    "cached": "dim",
    "failed": "bold red",
    "run": "yellow",
    "may run": "yellow",
}


def decision_table(decisions: list[Decision], cached: str = "cached") -> Table:
    """reactor, result (ran, `cached` or another word for it, failed), duration, why."""
    table = Table(title=None, show_edge=False, pad_edge=False)
    for column in ("reactor", "result", "duration", "why"):
        table.add_column(column, justify="right" if column == "duration" else "left")
    for d in decisions:
        duration = format_duration(d.duration) if d.status != "cached" else "-"
        style = _STYLE.get(d.status, "")
        status = cached if d.status == "cached" else d.status
        table.add_row(d.reactor, f"[{style}]{status}[/]", duration, _short_why(d))
    return table


def result_table(decisions: list[Decision], max_rows: int, cached: str = "cached") -> Table:
    """The decision table of a run in at most `max_rows` rows: reactors that ran or failed
    first, then as many cached ones as fit, the others counted in a last row."""
    if len(decisions) <= max_rows:
        return decision_table(decisions, cached)
    keep = [i for i, d in enumerate(decisions) if d.status != "cached"][: max_rows - 1]
    room = max_rows - 1 - len(keep)
    keep += [i for i, d in enumerate(decisions) if d.status == "cached"][:room]
    kept = set(keep)
    hidden = [d for i, d in enumerate(decisions) if i not in kept]
    table = decision_table([decisions[i] for i in sorted(kept)], cached)
    statuses = ", ".join(
        f"{sum(d.status == s for d in hidden)} {cached if s == 'cached' else s}"
        for s in ("ran", "failed", "cached")
        if any(d.status == s for d in hidden)
    )
    table.add_row(f"[dim]and {len(hidden)} more[/]", f"[dim]{statuses}[/]", "", "")
    return table


def _short_why(decision: Decision) -> str:
    if not decision.reasons:
        return "cached"
    first = decision.reasons[0]
    if first == "target" and len(decision.reasons) > 1:
        first = f"target; {decision.reasons[1]}"
        rest = len(decision.reasons) - 2
    else:
        rest = len(decision.reasons) - 1
    return first + (f" (+{rest} more)" if rest > 0 else "")


def summary_line(decisions: list[Decision]) -> str:
    ran = [d for d in decisions if d.status == "ran"]
    cached = sum(d.status == "cached" for d in decisions)
    failed = sum(d.status == "failed" for d in decisions)
    total = sum(d.duration for d in ran)
    line = (
        f"{len(ran)} of {len(decisions)} reactors ran ({format_duration(total)}), {cached} cached"
    )
    return line + (f", {failed} failed" if failed else "")


def print_explanations(console: Console, decisions: list[Decision]) -> None:
    for d in decisions:
        reasons = d.reasons or ["cached: code, params and inputs unchanged"]
        console.print(f"[bold]{d.reactor}[/]: {d.status}")
        for reason in reasons:
            console.print(f"    {reason}", highlight=False)


def plan_table(steps: list[PlannedStep]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("reactor", "would", "expected", "why"):
        table.add_column(column, justify="right" if column == "expected" else "left")
    for step in steps:
        expected = format_duration(step.expected) if step.expected is not None else "?"
        style = _STYLE.get(step.action, "dim")
        why = "; ".join(step.reasons) or "cached"
        table.add_row(step.reactor, f"[{style}]{step.action}[/]", expected, why)
    return table


def ingredient_table(rows: list[IngredientRow]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("ingredient", "producer", "type", "shape", "size", "tier", "age", "versions"):
        table.add_column(column, justify="right" if column in ("size", "versions") else "left")
    for row in rows:
        tier = f"[red]{row.tier}[/]" if row.tier == "missing" else row.tier
        table.add_row(
            row.name, row.producer, row.type, row.shape, format_size(row.size), tier,
            format_age(row.age), str(row.versions),
        )  # fmt: skip
    return table


def format_age(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def user_traceback(exc: BaseException) -> str:
    """The traceback of `exc` with only the user's own frames, as `path:line` lines."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if is_user_file(f.filename)]
    lines = ["Traceback (your code, most recent call last):"]
    for frame in frames:
        lines.append(f"  {frame.filename}:{frame.lineno}, in {frame.name}")
        if frame.line:
            lines.append(f"    {frame.line}")
    lines.append(f"{type(exc).__name__}: {exc}")
    return "\n".join(lines)
