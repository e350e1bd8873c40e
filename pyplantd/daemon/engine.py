"""The daemon's run loop, on the main thread: load the script, run its targets, wait for a save
or a client's command, and again. A save during a run cancels it (at the next receive/send, or
at once inside a reactor's own code through a signal); errors are reported, never fatal. Only
Ctrl-C, SIGTERM or a client's stop end it, after flushing what is being written (a second
Ctrl-C exits at once).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import queue
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..decisions import Decision, forget_tracked_files
from ..errors import PlantError, ReactorFailedError, RunCancelled
from ..host import hosting
from ..reactor import forget_visible
from ..scheduler import running_reactor
from .console import Console
from .loader import ScriptLoader, load_error
from .runtime import DaemonLock, runtime_dir
from .session import Session
from .state import EngineState
from .watcher import Watcher

if TYPE_CHECKING:
    from ..plant import Plant

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
    control: bool = True  # serve the ZeroMQ endpoint for clients
    tcp: bool = False  # the endpoint on tcp://127.0.0.1 instead of ipc://


@dataclass(frozen=True)
class Command:
    """A client's request for the engine: run, invalidate."""

    kind: str
    targets: list[str] = field(default_factory=list)
    run_id: int = 0


class _Stop(BaseException):
    """Ctrl-C, SIGTERM or a client's stop: leave the loop gracefully."""


class Engine:
    def __init__(self, options: WatchOptions, console: Console) -> None:
        self.options = options
        self.pipeline = options.pipeline.absolute()
        self.console = console
        self.session = Session(options.plant_dir, options.memory, options.disk)
        self.loader = ScriptLoader(self.pipeline)
        self.inbox: queue.Queue[set[Path] | Command] = queue.Queue()
        self.watcher = Watcher(
            self._on_change, options.debounce, on_notice=console.notice,
            force_polling=options.force_polling, on_unchanged=self._on_unchanged,
        )  # fmt: skip
        self.state = EngineState()
        # replaced by the server's when clients can listen
        self.publish: Callable[[str, dict[str, Any]], None] = self.state.publish
        self._run_ids = itertools.count(1)
        self.server: Any = None
        self._running = False
        self._cancel = threading.Event()
        self._stopping = False
        self._idle = False
        self._main = threading.main_thread().ident

    # -- lifetime ---------------------------------------------------------------------------
    def serve(self) -> int:
        """Run until stopped; the exit code."""
        runtime = runtime_dir(self.pipeline)
        lock = DaemonLock(runtime, self.pipeline, self.options.plant_dir)
        server = None
        try:
            with self._signals():
                server = self._start_server(runtime)
                self.watcher.watch({self.pipeline})
                self.watcher.start()
                self.console.notice(f"watching {self.pipeline.name} ({self.watcher.mode})")
                try:
                    self.cycle("start", targets_always_run=True)
                    while True:
                        self._handle(self._next_work())
                except _Stop:
                    self.console.notice("stopping: flushing what is still being written")
        finally:
            self.watcher.stop()
            self.session.close(SHUTDOWN_FLUSH_SECONDS)
            if server is not None:
                server.stop()
            lock.release()
        return 0

    def _start_server(self, runtime: Path) -> Any:
        if not self.options.control:
            return None
        from .control import Control
        from .server import Server

        server = Server(
            runtime, Control(self).handlers(), self.pipeline, self.options.tcp,
            on_notice=self.console.notice,
        )  # fmt: skip
        self.publish = self.state.chain(server.publish)
        self.server = server
        self.console.on_line = lambda reactor, text: server.publish(
            "log", {"reactor": reactor, "text": text}
        )
        server.start()
        return server

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
        # Unwind at once only where nothing of ours is half done: waiting for work, or inside
        # a reactor's own code. Elsewhere (a commit, a print) the run stops at its next step.
        if self._idle or running_reactor() is not None:
            raise _Stop()
        self._cancel.set()

    def _on_cancel_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only inside a reactor's own code: elsewhere the scheduler stops at the next step.
        if self._cancel.is_set() and running_reactor() is not None:
            raise RunCancelled()

    # -- requests from other threads --------------------------------------------------------
    def _on_change(self, paths: set[Path]) -> None:
        """Watcher thread: queue the change; cancel the run in progress."""
        self.inbox.put(paths)
        self.cancel()

    def _on_unchanged(self, paths: set[Path]) -> None:
        """Watcher thread: a save that left the bytes as they were runs nothing; say so."""
        self.console.notice(f"{self._describe(paths)}: the same bytes as before, nothing to run")

    def cancel(self) -> bool:
        """Cancel the run in progress, if any (any thread)."""
        if not self._running:
            return False
        self._cancel.set()
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pthread_kill(self._main or 0, signal.SIGUSR1)
        return True

    def request_run(self, targets: list[str]) -> int:
        run_id = next(self._run_ids)
        self.inbox.put(Command("run", list(targets), run_id))
        return run_id

    def request_invalidate(self, reactor: str) -> int:
        run_id = next(self._run_ids)
        self.inbox.put(Command("invalidate", [reactor], run_id))
        return run_id

    def request_stop(self) -> None:
        """A client's stop: graceful, like a first Ctrl-C."""
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pthread_kill(self._main or 0, signal.SIGTERM)

    # -- the loop ---------------------------------------------------------------------------
    def _next_work(self) -> set[Path] | Command:
        if self._stopping:
            raise _Stop()
        self._idle = True
        try:
            if self.inbox.empty():
                self.settle()
            work = self.inbox.get()
        finally:
            self._idle = False
        if isinstance(work, Command):
            return work
        while True:  # a burst over several files: one run
            try:
                more = self.inbox.get_nowait()
            except queue.Empty:
                return work
            if isinstance(more, Command):
                self.inbox.put(more)  # after this change's run
                return work
            work |= more

    def _handle(self, work: set[Path] | Command) -> None:
        if isinstance(work, set):
            forget_tracked_files(work)  # whatever their stamps say: the watcher saw new bytes
            self.cycle(self._describe(work), targets_always_run=False)
        elif work.kind == "run":
            self.cycle("run requested", True, targets=work.targets, run_id=work.run_id)
        elif work.kind == "invalidate":
            self.cycle(f"invalidated {work.targets[0]}", False, run_id=work.run_id,
                       invalidate=work.targets[0])  # fmt: skip

    def _describe(self, changed: set[Path]) -> str:
        names = sorted(p.name for p in changed)
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        return "saved " + ", ".join(names[:3]) + more

    def settle(self) -> None:
        """Housekeeping while idle: collect garbage now, then freeze what survives, so the
        collector's full passes during the next save's run scan only that run's new objects
        (a full pass over everything the daemon holds takes tens of milliseconds)."""
        gc.unfreeze()  # frozen objects that became garbage since are collected too
        gc.collect()
        gc.freeze()

    # -- one cycle --------------------------------------------------------------------------
    def cycle(
        self,
        trigger: str,
        targets_always_run: bool,
        targets: list[str] | None = None,
        run_id: int | None = None,
        invalidate: str | None = None,
    ) -> list[Decision]:
        """Reload the script and run what it asks for; report, never raise (but _Stop)."""
        run_id = run_id if run_id is not None else next(self._run_ids)
        self._cancel.clear()
        started = time.perf_counter()
        self.publish("run_started", {"run_id": run_id, "trigger": trigger})
        if not self._load(trigger, run_id):
            return []
        plant = self.session.plant
        if plant is None:
            self.console.notice(f"{self.pipeline.name} made no Plant(...): nothing to run")
            self.publish("run_finished", {"run_id": run_id, "status": "empty", "ran": 0})
            return []
        decisions: list[Decision] = []
        status = "ok"
        self._running = True
        self.state.run_began(run_id, trigger, plant)
        try:
            chosen = targets or self.options.targets or self.session.requested or plant.sinks()
            forced = plant.downstream_of(invalidate) if invalidate else []
            plant.store.script_namespace = _script_namespace(plant)
            with self.console.run(trigger, plant), _script_as_main(plant):
                decisions = plant.run_reactors(
                    chosen, forced, targets_always_run=targets_always_run,
                    should_stop=self._cancel.is_set,
                )  # fmt: skip
        except RunCancelled:
            status = "cancelled"
        except _Stop:
            status = "cancelled"
            raise
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
        elapsed = time.perf_counter() - started
        self.state.run_ended(run_id, status, decisions, elapsed)
        self.console.run_finished(trigger, decisions, status, elapsed, plant)
        return decisions

    def _load(self, trigger: str, run_id: int) -> bool:
        self.session.begin_load()
        self._forget_reloaded_definitions()
        try:
            with hosting(self.session):
                self.loader.run()
        except (_Stop, KeyboardInterrupt):
            raise
        except BaseException as failure:  # the script's own error: report it, keep the last state
            where = load_error(failure, self.pipeline)
            self.console.reload_failed(trigger, where, failure)
            self.publish("reload_failed", {
                "run_id": run_id, "path": where.path, "line": where.line,
                "column": where.column, "message": where.message,
            })  # fmt: skip
            self.state.load_failed(run_id, where)
            self.watcher.watch(self._watched_files())
            return False
        return True

    def _forget_reloaded_definitions(self) -> None:
        """Reactors and subreactors of the script and the user's modules are defined afresh by
        the reload; one the new code no longer defines (deleted, renamed) must not run again.
        Its stored results stay: an undo serves them."""
        reloaded = {"__main__", *self.loader.user_modules()}

        def defined_by_reload(func: Callable[..., Any]) -> bool:
            code = getattr(func, "__code__", None)
            in_project = code is not None and self.loader.is_project_file(code.co_filename)
            return in_project or getattr(func, "__module__", None) in reloaded

        forget_visible(defined_by_reload)

    def _watched_files(self) -> set[Path]:
        files = self.loader.watched_files()
        notice = self.loader.folders_notice(files)
        if notice is not None:
            self.console.notice(notice)
        store = self.session.store
        if store is not None:
            files |= {Path(path) for record in store.reactors.values() for path in record.files}
        return files


@contextlib.contextmanager
def _script_as_main(plant: Plant) -> Iterator[None]:
    """While the script's reactors run, the script is `__main__` again, as under `python
    pipeline.py`: a value of a class it defines is pickled at `send` under that name, and
    unpickled by it (the loader restores the daemon's own `__main__` once the script ran)."""
    namespace = _script_namespace(plant)
    if namespace is None:
        yield
        return
    module = types.ModuleType("__main__")
    module.__dict__.update(namespace)
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = module
    try:
        yield
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def _script_namespace(plant: Plant) -> dict[str, Any] | None:
    """The globals of the script's last execution (those of a reactor it defines)."""
    for func in plant.get_reactors():
        if getattr(func, "__module__", None) == "__main__":
            namespace: dict[str, Any] = func.__globals__
            return namespace
    return None
