"""The daemon's run loop, on the main thread: load the script, run its targets, wait for a save,
and again. A save during a run cancels it (at the next receive/send, or at once inside a
reactor's own code through a signal); errors are reported, never fatal. Only Ctrl-C, SIGTERM or
a stop request end it, after flushing what is being written (a second Ctrl-C exits at once).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from ..decisions import Decision
from ..errors import PlantError, ReactorFailedError, RunCancelled
from ..host import hosting
from ..scheduler import running_reactor
from .console import Console
from .loader import ScriptLoader, load_error
from .runtime import DaemonLock, runtime_dir
from .session import Session
from .watcher import Watcher

SHUTDOWN_FLUSH_SECONDS = 10.0  # a graceful stop waits this long, at most, for pending writes


@dataclass
class WatchOptions:
    pipeline: Path
    targets: list[str] = field(default_factory=list)
    plant_dir: Path | None = None
    memory: int | None = None
    disk: int | None = None
    debounce: float = 0.02
    force_polling: bool = False


class _Stop(BaseException):
    """Ctrl-C or SIGTERM: leave the loop gracefully."""


class Engine:
    def __init__(self, options: WatchOptions, console: Console) -> None:
        self.options = options
        self.pipeline = options.pipeline.absolute()
        self.console = console
        self.session = Session(options.plant_dir, options.memory, options.disk)
        self.loader = ScriptLoader(self.pipeline)
        self.changes: queue.Queue[set[Path]] = queue.Queue()
        self.watcher = Watcher(
            self._on_change, options.debounce, on_notice=console.notice,
            force_polling=options.force_polling,
        )  # fmt: skip
        self._running = False
        self._cancel = threading.Event()
        self._stopping = False
        self._main = threading.main_thread().ident

    # -- lifetime ---------------------------------------------------------------------------
    def serve(self) -> int:
        """Run until stopped; the exit code."""
        lock = DaemonLock(runtime_dir(self.pipeline), self.pipeline, self.options.plant_dir)
        try:
            with self._signals():
                self.watcher.watch({self.pipeline})
                self.watcher.start()
                self.console.notice(f"watching {self.pipeline.name} ({self.watcher.mode})")
                try:
                    self.cycle("start", targets_always_run=True)
                    while True:
                        self.cycle(self._describe(self._next_change()), targets_always_run=False)
                except _Stop:
                    self.console.notice("stopping: flushing what is still being written")
        finally:
            self.watcher.stop()
            self.session.close(SHUTDOWN_FLUSH_SECONDS)
            lock.release()
        return 0

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        previous = {
            sig: signal.signal(sig, handler)
            for sig, handler in (
                (signal.SIGINT, self._on_stop_signal),
                (signal.SIGTERM, self._on_stop_signal),
                (signal.SIGUSR1, self._on_cancel_signal),
            )
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stopping:
            os._exit(130)  # a second Ctrl-C: the user does not want to wait
        self._stopping = True
        raise _Stop()

    def _on_cancel_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only inside a reactor's own code: elsewhere the scheduler stops at the next step.
        if self._cancel.is_set() and running_reactor() is not None:
            raise RunCancelled()

    # -- saves ------------------------------------------------------------------------------
    def _on_change(self, paths: set[Path]) -> None:
        """Watcher thread: queue the change; cancel the run in progress."""
        self.changes.put(paths)
        if self._running:
            self._cancel.set()
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pthread_kill(self._main or 0, signal.SIGUSR1)

    def _next_change(self) -> set[Path]:
        changed = self.changes.get()
        while True:  # a burst over several files: one run
            try:
                changed |= self.changes.get_nowait()
            except queue.Empty:
                return changed

    def _describe(self, changed: set[Path]) -> str:
        names = sorted(p.name for p in changed)
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        return "saved " + ", ".join(names[:3]) + more

    # -- one cycle --------------------------------------------------------------------------
    def cycle(self, trigger: str, targets_always_run: bool) -> list[Decision]:
        """Reload the script and run what it asks for; report, never raise (but _Stop)."""
        self._cancel.clear()
        started = time.perf_counter()
        if not self._load(trigger):
            return []
        plant = self.session.plant
        if plant is None:
            self.console.notice(f"{self.pipeline.name} made no Plant(...): nothing to run")
            return []
        decisions: list[Decision] = []
        status = "ok"
        self._running = True
        try:
            targets = self.options.targets or self.session.requested or plant.sinks()
            with self.console.run(trigger, plant):
                decisions = plant.run_reactors(
                    targets, targets_always_run=targets_always_run, should_stop=self._cancel.is_set
                )
        except RunCancelled:
            status = "cancelled"
        except ReactorFailedError as failure:
            status = "failed"
            self.console.reactor_failed(failure)
        except PlantError as failure:
            status = "failed"
            self.console.error(str(failure))
        finally:
            self._running = False
            decisions = decisions or plant.last_run
            self.watcher.watch(self._watched_files())
        self.console.run_finished(trigger, decisions, status, time.perf_counter() - started, plant)
        return decisions

    def _load(self, trigger: str) -> bool:
        self.session.begin_load()
        try:
            with hosting(self.session):
                self.loader.run()
        except (_Stop, KeyboardInterrupt):
            raise
        except BaseException as failure:  # the script's own error: report it, keep the last state
            self.console.reload_failed(trigger, load_error(failure, self.pipeline), failure)
            self.watcher.watch(self._watched_files())
            return False
        return True

    def _watched_files(self) -> set[Path]:
        files = self.loader.watched_files()
        store = self.session.store
        if store is not None:
            files |= {Path(path) for record in store.reactors.values() for path in record.files}
        return files
