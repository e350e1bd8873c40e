"""What the daemon is doing, as clients see it: the script being loaded or the run in progress,
the last one, each reactor's state with its duration and why (and, running, what it waits for
and its progress), turned into events for the PUB socket and into snapshots for `status` (with
a line saying what the main thread is doing and where in the user's code). Written by the
engine thread, read by the server thread under a lock.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..events import EventType, PlantEvent
from ..run.judge import Decision
from ..signatures.origins import is_user_file
from .loader import LoadError

if TYPE_CHECKING:
    from ..plant import Plant

Publish = Callable[[str, dict[str, Any]], None]


class EngineState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state = "idle"
        self.current: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self.reactors: dict[str, dict[str, Any]] = {}
        self.plant: Plant | None = None
        self._publish: Publish = self.publish
        self._engine_thread = threading.get_ident()
        self._pipeline: Path | None = None
        self._loading = False

    # -- publishing -------------------------------------------------------------------------
    def publish(self, kind: str, fields: dict[str, Any]) -> None:
        """Without a server, events go nowhere."""

    def chain(self, sink: Publish) -> Publish:
        self._publish = sink
        return sink

    # -- engine thread ----------------------------------------------------------------------
    def load_began(self, run_id: int, trigger: str, pipeline: Path) -> None:
        """The script's module-level code runs now (until run_began, run_ended, load_failed)."""
        with self._lock:
            self.state, self._pipeline, self._loading = "loading", pipeline, True
            self._engine_thread = threading.get_ident()
            self.current = {
                "run_id": run_id, "trigger": trigger, "started": time.time(),
                "loading": str(pipeline),
            }  # fmt: skip

    def run_began(self, run_id: int, trigger: str, plant: Plant) -> None:
        with self._lock:
            self.state, self.plant, self._loading = "running", plant, False
            self.current = {"run_id": run_id, "trigger": trigger, "started": time.time()}
            self.reactors = {}
        plant.subscribe(lambda event: self._on_event(run_id, event))

    @property
    def run_id(self) -> int | None:
        """The run being loaded or run now, if any (for events from any thread)."""
        current = self.current
        return current["run_id"] if current is not None else None

    def _on_event(self, run_id: int, event: PlantEvent) -> None:
        name = event.reactor or ""
        if event.type in (EventType.reactor_waiting, EventType.reactor_resumed):
            with self._lock:
                info = self.reactors.get(name)
                if info is not None and info["state"] == "running":
                    info.pop("waiting_for", None)
                    if event.type is EventType.reactor_waiting:
                        info["waiting_for"] = event.data.get("ingredient")
            return
        kind, fields = _translate(run_id, event)
        if kind is None:
            return
        with self._lock:
            if kind == "progress":
                info = self.reactors.get(name)
                if info is not None and info["state"] == "running":
                    info["progress"] = {k: v for k, v in fields.items() if k in _PROGRESS}
            elif kind == "reactor_started":
                self.reactors[name] = {"state": "running", "since": time.time()}
            elif kind == "reactor_finished":
                self.reactors[name] = {
                    "state": fields["result"], "duration": fields["duration"],
                    "why": fields.get("why", ""),
                }  # fmt: skip
            elif kind == "reactor_failed":
                self.reactors[name] = {"state": "failed", "why": fields["message"]}
        self._publish(kind, fields)

    def run_ended(
        self, run_id: int, status: str, decisions: list[Decision], elapsed: float
    ) -> None:
        ran = [d.reactor for d in decisions if d.status == "ran"]
        summary = {
            "run_id": run_id, "status": status, "duration": elapsed, "ran": len(ran),
            "warm": sum(d.status == "cached" for d in decisions),
            "failed": [d.reactor for d in decisions if d.status == "failed"],
        }  # fmt: skip
        with self._lock:
            for d in decisions:
                self.reactors[d.reactor] = {
                    "state": {"cached": "warm"}.get(d.status, d.status),
                    "duration": d.duration, "why": d.why,
                }  # fmt: skip
            self.state, self.last = "idle", {**(self.current or {}), **summary}
            self.current, self._loading = None, False
        self._publish("run_finished", summary)

    def load_failed(self, run_id: int, where: LoadError) -> None:
        with self._lock:
            self.state, self.current, self._loading = "idle", None, False
            self.last = {
                "run_id": run_id, "status": "reload_failed", "path": where.path,
                "line": where.line, "column": where.column, "message": where.message,
            }  # fmt: skip
        self._publish("run_finished", {"run_id": run_id, "status": "reload_failed", "ran": 0})

    # -- server thread ----------------------------------------------------------------------
    def is_idle(self) -> bool:
        """As clients were told: idle from the moment `run_finished` is published."""
        with self._lock:
            return self.state == "idle"

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            reactors = {name: dict(info) for name, info in self.reactors.items()}
            for info in reactors.values():
                if info["state"] == "running":
                    info["elapsed"] = time.time() - info.pop("since")
            snapshot = {
                "state": self.state, "current_run": self.current, "last_run": self.last,
                "reactors": reactors,
            }  # fmt: skip
            activity = self._activity(reactors)
            if activity:
                snapshot["activity"] = activity
            return snapshot

    def _activity(self, reactors: dict[str, dict[str, Any]]) -> str | None:
        """`loading pipeline.py for 12.0 s (at slow.py:3)`, `running fit for 2.1 s (at ...)`."""
        if self.current is None:
            return None
        if self._loading and self._pipeline is not None:
            doing = f"loading {self._pipeline.name}"
            elapsed = time.time() - self.current["started"]
        else:
            running = [
                (n, i)
                for n, i in reactors.items()
                if i["state"] == "running" and "waiting_for" not in i
            ]
            if not running:
                return None
            doing, elapsed = f"running {running[-1][0]}", running[-1][1]["elapsed"]
        where = _user_frame(self._engine_thread, self._pipeline)
        return f"{doing} for {elapsed:.1f} s" + (f" (at {where})" if where else "")


def _translate(run_id: int, event: PlantEvent) -> tuple[str | None, dict[str, Any]]:
    base = {"run_id": run_id, "reactor": event.reactor}
    if event.type is EventType.reactor_started:
        return "reactor_started", base
    if event.type is EventType.reactor_finished:
        duration = float(event.data.get("duration", 0.0))
        return "reactor_finished", {**base, "duration": duration, "result": "ran"}
    if event.type is EventType.reactor_cached:
        why = "; ".join(event.data.get("reasons") or [])
        return "reactor_finished", {**base, "duration": 0.0, "result": "warm", "why": why}
    if event.type is EventType.reactor_failed:
        return "reactor_failed", {**base, **failure_fields(event.data.get("exception"))}
    if event.type is EventType.reactor_progress:
        return "progress", {**base, **{k: v for k, v in event.data.items() if k in _PROGRESS}}
    return None, {}


_PROGRESS = ("done", "total", "note", "elapsed", "rate", "eta")  # a progress event's own fields


def _user_frame(thread: int, pipeline: Path | None) -> str | None:
    """`path:line` of the innermost frame of the user's code that `thread` is executing."""
    frame = sys._current_frames().get(thread)
    while frame is not None:
        filename = frame.f_code.co_filename
        if is_user_file(filename):
            path = Path(filename)
            if pipeline is not None and path.is_relative_to(pipeline.parent):
                path = path.relative_to(pipeline.parent)
            return f"{path}:{frame.f_lineno}"
        frame = frame.f_back
    return None


def failure_fields(exc: BaseException | None) -> dict[str, Any]:
    """Exception type, message, and the place (path, line, column) in the deepest frame of the
    user's own code."""
    if exc is None:
        return {
            "exception": "Error", "message": "", "path": "", "line": 0, "column": 0,
            "traceback": "",
        }  # fmt: skip
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if is_user_file(f.filename)]
    where = frames[-1] if frames else None
    trimmed = "".join(traceback.format_list(frames)) + f"{type(exc).__name__}: {exc}\n"
    # Python >= 3.11 knows the column of the expression that raised (0-based); else column 1
    column = (getattr(where, "colno", None) or 0) + 1 if where else 0
    return {
        "exception": type(exc).__name__, "message": str(exc),
        "path": where.filename if where else "", "line": where.lineno if where else 0,
        "column": column, "traceback": trimmed,
    }  # fmt: skip
