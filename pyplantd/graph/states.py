"""Each reactor's state for the graph, in the engine's own words: from a dry-run plan and the run
history (`pyplantd graph`), or from what the daemon published about its runs (`pyplant graph`).

fresh: its stored result matches the present; stale: it would re-run, and why (the planner's
reasons); failed: its last run raised; never ran: it has no result yet; running: right now.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..run.planner import PlannedStep
from ..store.records import HistoryEntry, ReactorRecord
from .model import Node, NodeState


def planned_states(
    steps: list[PlannedStep],
    records: Mapping[str, ReactorRecord],
    outcomes: Mapping[str, HistoryEntry],
) -> dict[str, NodeState]:
    """States from a plan made without targets (nothing forced) and each reactor's last outcome."""
    states = {}
    for step in steps:
        record = records.get(step.reactor_id)
        outcome = outcomes.get(step.reactor)
        duration = record.duration if record is not None else None
        if outcome is not None and outcome.status == "failed":
            message = outcome.reasons[-1] if outcome.reasons else "failed"
            now = [r for r in step.reasons if r != message] if record is not None else []
            state = NodeState("failed", [f"last run failed: {message}", *now], outcome.duration)
        elif record is None:
            state = NodeState("never ran")
        elif step.action == "cached":
            state = NodeState("fresh", [], duration)
        else:
            state = NodeState("stale", list(step.reasons), duration)
        states[step.reactor_id] = state
    return states


def live_states(
    snapshot: Mapping[str, Any], nodes: list[Node], records: Mapping[str, ReactorRecord]
) -> dict[str, NodeState]:
    """States from the daemon's snapshot (EngineState.snapshot) of its current and last run."""
    seen: Mapping[str, Any] = snapshot.get("reactors") or {}
    states = {}
    for node in nodes:
        record = records.get(node.id)
        duration = record.duration if record is not None else None
        info = seen.get(node.name)
        if not isinstance(info, dict):
            states[node.id] = (
                NodeState("stale", [_unchecked(snapshot)], duration)
                if record is not None
                else NodeState("never ran")
            )
            continue
        states[node.id] = _from_info(info, duration)
    return states


def _from_info(info: Mapping[str, Any], duration: float | None) -> NodeState:
    state, why = info.get("state"), str(info.get("why") or "")
    if state == "running":
        return NodeState("running", [], duration, info.get("elapsed"))
    if state == "failed":
        return NodeState("failed", [why] if why else [], info.get("duration", duration))
    if state == "ran":
        return NodeState("fresh", [f"ran: {why}"] if why else [], info.get("duration", duration))
    reasons = [why] if why and why != "cached" else []  # warm; "restored an earlier result ..."
    return NodeState("fresh", reasons, duration)


def _unchecked(snapshot: Mapping[str, Any]) -> str:
    """Why a reactor with a stored result has no state from the daemon's last run."""
    last = snapshot.get("last_run") or {}
    if snapshot.get("state") == "running":
        return "not reached yet by the run in progress"
    if last.get("status") == "failed":
        return "not checked: the last run stopped at a failure"
    if last.get("status") == "cancelled":
        return "not checked: the last run was cancelled"
    return "not checked by the last run (its targets do not need it)"


def live_notes(snapshot: Mapping[str, Any]) -> list[str]:
    """What the reader should know about the daemon's runs to read the states right."""
    notes = []
    current, last = snapshot.get("current_run"), snapshot.get("last_run")
    if isinstance(current, dict):
        notes.append(f"Run {current.get('run_id')} in progress ({current.get('trigger', '')}).")
    if isinstance(last, dict) and last.get("status") == "reload_failed":
        notes.append(
            f"The last save did not load ({last.get('path')}:{last.get('line')}: "
            f"{last.get('message')}): the states are those of the last run that did."
        )
    return notes
