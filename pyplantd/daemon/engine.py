"""The daemon's run loop, on the main thread: load the script, run its targets, wait for a save
or a client's command, and again. A save while the script loads or runs cancels it (at the next
receive/send, or at once inside the user's own code through a signal); errors are reported, never
fatal, whatever the script raises (sys.exit and KeyboardInterrupt too). Only Ctrl-C, SIGTERM or a
client's stop end it, told apart from the script's own exceptions by their signal handler having
run; then it flushes what is being written, saying what it waits for, unless a third stop
insists.
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
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..errors import PlantError, ReactorFailedError, RunCancelled
from ..hosting.host import hosting
from ..hosting.signals import describe_writes
from ..reactor import forget_visible
from ..run.judge import Decision, forget_tracked_files
from ..settings import Settings, given
from ..sizes import format_size
from .bus import DaemonBus, Kind
from .console import Console
from .interrupts import Interrupter, Stop, in_user_code
from .loader import ScriptLoader, load_error
from .runtime import DaemonLock, runtime_dir
from .session import Session
from .state import EngineState
from .watcher import Watcher

if TYPE_CHECKING:
    from ..plant import Plant

FLUSH_SLICE_SECONDS = 0.1  # how often a stop's final flush looks at the signals received
FLUSH_NOTICE_SECONDS = 1.0  # a flush taking longer says what it is waiting for
STOPS_TO_INSIST = 3  # the stop signal that exits at once, without waiting for pending writes
STOP_CHECK_SECONDS = 0.25  # idle: how often the stop count is looked at (a Stop can be lost)
LOAD_WATCH_SECONDS = 0.25  # a load this long watches the user's modules imported so far
# Idle, the engine lets the event thread hand every event to clients before it collects garbage
# (which holds the interpreter lock for tens of milliseconds); this long at most, and looking
# for new work (a save) every slice meanwhile.
EVENTS_OUT_SECONDS = 1.0
EVENTS_OUT_SLICE_SECONDS = 0.002
# How long the main thread keeps the GIL while another thread waits for it (Python's default is
# 5 ms): the event thread sends a reactor's result to clients while the run goes on, and the
# watcher reads a save while a run is cancelled; a few more switches cost the run little.
SWITCH_INTERVAL_SECONDS = 0.0005


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
    # The command's resolved settings (`pyplantd watch`): they decide the plant dir and budgets,
    # with where each came from; without them, the fields above as given.
    settings: Settings | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> WatchOptions:
        return cls(
            settings.pipeline, settings.targets, settings.plant_dir, settings.memory,
            settings.disk, settings.debounce, settings.poll, tcp=settings.tcp, settings=settings,
        )  # fmt: skip

    def plant_settings(self) -> Settings:
        if self.settings is not None:
            return self.settings
        return given(plant_dir=self.plant_dir, memory=self.memory, disk=self.disk)


@dataclass(frozen=True)
class Command:
    """A client's request for the engine: run, invalidate, clean."""

    kind: str
    targets: list[str] = field(default_factory=list)
    run_id: int = 0
    everything: bool = False  # clean: every result
    reply: Future[int] | None = field(default=None, compare=False)  # clean: bytes freed


class Engine:
    def __init__(self, options: WatchOptions, console: Console) -> None:
        self.options = options
        self.pipeline = options.pipeline.absolute()
        self.console = console
        self.session = Session(options.plant_settings(), on_notice=console.notice)
        self.loader = ScriptLoader(self.pipeline)
        self.inbox: queue.Queue[set[Path] | Command] = queue.Queue()
        self.watcher = Watcher(
            self._on_change, options.debounce, on_notice=console.notice,
            force_polling=options.force_polling, on_unchanged=self._on_unchanged,
            on_burst=self.cancel,
        )  # fmt: skip
        # Everything clients hear leaves through this bus; the server subscribes when started.
        self.bus = DaemonBus()
        self.state = EngineState(self.bus)
        self.console.on_line = self._publish_line
        self._run_ids = itertools.count(1)
        self.server: Any = None
        self._busy = False  # loading the script or running reactors: a save cancels it
        self._cancel = threading.Event()
        self._stops = 0  # stop signals received (Ctrl-C, SIGTERM, a client's stop)
        self._stop_signal: int = signal.SIGTERM
        self._idle = False
        self._flushing = False
        self._main = threading.main_thread().ident
        self.interrupter = Interrupter()
        self._loading = threading.Event()
        self._load_began = 0.0  # time.monotonic() when the load in progress began
        self._watch_lock = threading.Lock()  # one thread at a time computes the watched files
        self._watched: set[Path] = {self.pipeline}

    def _start_cluster(self) -> None:
        """A dask cluster the command asked for (--executor local:N, --cluster) starts now,
        before the script runs: its workers are fresh interpreters, never copies of a process
        running the script; it stops when the daemon exits."""
        choice = self.session.settings.executor
        if choice is None or choice.kind not in ("local", "cluster"):
            return
        from ..run.executors.dask import shared_cluster

        cluster = shared_cluster(choice)
        self.console.notice(f"dask cluster {cluster.name} at {cluster.address}")

    @property
    def _stopping(self) -> bool:
        return self._stops > 0

    # -- lifetime ---------------------------------------------------------------------------
    def serve(self) -> int:
        """Run until stopped; the exit code."""
        runtime = runtime_dir(self.pipeline)
        lock = DaemonLock(runtime, self.pipeline, self.options.plant_dir)
        server = None
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        try:
            with self._signals():  # until the end: a stop during the final flush is counted
                try:
                    server = self._start_server(runtime)
                    self.watcher.watch({self.pipeline})
                    self.watcher.start()
                    self._start_load_watch()
                    self.console.notice(f"watching {self.pipeline.name} ({self.watcher.mode})")
                    self._start_cluster()
                    self.cycle("start", targets_always_run=True)
                    while True:
                        self._handle(self._next_work())
                except Stop:
                    self.console.notice("stopping: flushing what is still being written")
                finally:
                    self.interrupter.withdraw()
                    self._stop_load_watch()
                    self.watcher.stop()
                    self._flush_and_close()
                    _stop_clusters()
        finally:
            if server is not None:
                server.stop()
            lock.release()
            sys.setswitchinterval(switch_interval)
        return 0

    def _flush_and_close(self) -> None:
        """Wait for pending writes, saying what they are if it takes a while, until they are
        durable or a third stop insists (then exit at once: the plant dir stays consistent,
        and the reactors that made what is dropped run again next time)."""
        store = self.session.store
        if store is not None:
            self._flushing = True
            began, told = time.monotonic(), 0
            while not store.flush(FLUSH_SLICE_SECONDS):
                pending = store.pending_writes()
                if self._stops >= STOPS_TO_INSIST:
                    self.console.notice(f"exiting without writing {describe_writes(pending)}")
                    os._exit(128 + self._stop_signal)
                slow = time.monotonic() - began > FLUSH_NOTICE_SECONDS
                if pending and (slow or self._stops > 1) and told != self._stops:
                    told = self._stops
                    more = STOPS_TO_INSIST - self._stops
                    self.console.notice(
                        f"stopping: still writing {describe_writes(pending)}; "
                        + ("one more stop exits" if more == 1 else f"{more} more stops exit")
                        + " without it (Ctrl-C)"
                    )
        self.session.close()

    def _start_server(self, runtime: Path) -> Any:
        if not self.options.control:
            return None
        from .control import Control
        from .server import Server

        server = Server(
            runtime, Control(self).handlers(), self.pipeline, self.options.tcp,
            on_notice=self.console.notice, quiet_handlers=self._quiet_handlers(),
        )  # fmt: skip
        printed = self.console.printed

        def publish(kind: str, fields: dict[str, Any]) -> None:
            printed.flush()  # clients get a reactor's lines before what follows them
            server.publish(kind, fields)

        self.bus.subscribe(publish)
        self.server = server
        server.start()
        return server

    def _quiet_handlers(self) -> list[object]:
        """The daemon's own signal handlers (installed by now): they raise only into the
        user's code or while the engine is idle, never while it publishes an event."""
        return [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)]

    def _publish_line(self, reactor: str | None, text: str) -> None:
        """A line a reactor printed (the console's reactor output), for clients."""
        self.bus.publish(Kind.log, {"run_id": self.state.run_id, "reactor": reactor, "text": text})

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        previous = {
            sig: signal.signal(sig, self._on_stop_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        self.interrupter.start()
        try:
            yield
        finally:
            self.interrupter.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        """Ctrl-C, SIGTERM, a client's stop. Counted here, so that a stop is known by this
        handler having run, whatever the script's code raised or swallowed since."""
        self._stops += 1
        self._stop_signal = signum
        if self._flushing:
            return  # the final flush looks at the count between its waits
        if self._stops >= STOPS_TO_INSIST:  # the user insists; no lock may be taken here
            self.console.urgent("stopping at once: what was still being written is dropped")
            os._exit(128 + signum)
        if self._stops > 1:
            self.console.urgent("stopping: still finishing; one more stop exits at once")
        elif self._busy:
            self.console.urgent("stopping: ending the run; what finished is kept")
        self._cancel.set()
        # Unwind at once only where nothing of ours is half done: waiting for work, or inside
        # the user's own code; elsewhere (a commit, a print) as soon as the user's code runs
        # again, or at the run's next step.
        if self._idle or in_user_code(frame):
            raise Stop()
        if self._busy:
            self.interrupter.request(Stop)

    # -- requests from other threads --------------------------------------------------------
    def _on_change(self, paths: set[Path]) -> None:
        """Watcher thread: queue the change; cancel the run in progress."""
        self.inbox.put(paths)
        self.cancel()

    def _on_unchanged(self, paths: set[Path]) -> None:
        """Watcher thread: a save that left the bytes as they were runs nothing; say so."""
        self.console.notice(f"{self._describe(paths)}: the same bytes as before, nothing to run")

    def cancel(self) -> bool:
        """Cancel the load or run in progress, if any (any thread). A run whose end was
        published is over for clients, though the console may still be printing its summary."""
        if not self._busy or self.state.is_idle():
            return False
        self._cancel.set()
        self.interrupter.request(RunCancelled)
        return True

    def request_run(self, targets: list[str]) -> int:
        run_id = next(self._run_ids)
        self.inbox.put(Command("run", list(targets), run_id))
        return run_id

    def request_invalidate(self, reactor: str) -> int:
        run_id = next(self._run_ids)
        self.inbox.put(Command("invalidate", [reactor], run_id))
        return run_id

    def request_clean(self, names: list[str], everything: bool) -> Future[int]:
        """Clean the plant (see PlantStore.clean) once the engine is idle; the bytes freed."""
        reply: Future[int] = Future()
        self.inbox.put(Command("clean", list(names), everything=everything, reply=reply))
        return reply

    def request_stop(self) -> None:
        """A client's stop: graceful, like a first Ctrl-C."""
        with contextlib.suppress(ProcessLookupError, OSError):
            signal.pthread_kill(self._main or 0, signal.SIGTERM)

    # -- the loop ---------------------------------------------------------------------------
    def _next_work(self) -> set[Path] | Command:
        self._idle = True
        try:
            if self.inbox.empty():
                self._let_events_out()
            if self.inbox.empty():
                self.settle()
            work = self._wait_for_work()
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

    def _let_events_out(self) -> None:
        """Wait for the events of the run that just ended to leave for clients: the reactor's
        result a client waits for must not wait for the collection `settle` runs."""
        if self.server is None:
            return
        deadline = time.monotonic() + EVENTS_OUT_SECONDS
        while not self.server.wait_sent(EVENTS_OUT_SLICE_SECONDS):
            if not self.inbox.empty() or self._stopping or time.monotonic() > deadline:
                return  # new work waits for no queued printed line to reach clients

    def _wait_for_work(self) -> set[Path] | Command:
        """The next change or command. The stop handler raises Stop here, but a signal that
        lands inside a finalizer or a weakref callback (the collection `settle` runs, say)
        has its exception printed and dropped: so the stop count is looked at too, often."""
        while True:
            if self._stopping:
                raise Stop()
            try:
                return self.inbox.get(timeout=STOP_CHECK_SECONDS)
            except queue.Empty:
                continue

    def _handle(self, work: set[Path] | Command) -> None:
        if isinstance(work, set):
            forget_tracked_files(work)  # whatever their stamps say: the watcher saw new bytes
            self.cycle(self._describe(work), targets_always_run=False, after_save=True)
        elif work.kind == "run":
            self.cycle("run requested", True, targets=work.targets, run_id=work.run_id)
        elif work.kind == "invalidate":
            self.cycle(f"invalidated {work.targets[0]}", False, run_id=work.run_id,
                       invalidate=work.targets[0])  # fmt: skip
        elif work.kind == "clean":
            self._clean(work)

    def _clean(self, command: Command) -> None:
        """A client's clean, between runs: nothing reads or writes the store meanwhile."""
        assert command.reply is not None
        store = self.session.store
        try:
            if store is None:
                raise PlantError("the pipeline has not opened its plant yet")
            freed = store.clean(command.targets, command.everything)
        except PlantError as failure:
            command.reply.set_exception(failure)
            return
        what = "every result" if command.everything else ", ".join(command.targets)
        self.console.notice(f"cleaned {what or 'old versions'}: {format_size(freed)} freed")
        command.reply.set_result(freed)

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
        after_save: bool = False,
    ) -> list[Decision]:
        """Reload the script and run what it asks for; report, never raise (but Stop)."""
        run_id = run_id if run_id is not None else next(self._run_ids)
        self.interrupter.withdraw()
        self._cancel.clear()
        self.bus.publish(Kind.run_started, {"run_id": run_id, "trigger": trigger})
        self._busy = True
        try:
            decisions = self._load_and_run(
                trigger, targets_always_run, targets, run_id, invalidate, after_save
            )
        finally:
            self._busy = False
            self.interrupter.withdraw()
        if self._stopping:  # whatever the script made of the Stop raised into it
            raise Stop()
        return decisions

    def _load_and_run(
        self,
        trigger: str,
        targets_always_run: bool,
        targets: list[str] | None,
        run_id: int,
        invalidate: str | None,
        after_save: bool,
    ) -> list[Decision]:
        started = time.perf_counter()
        if not self._load(trigger, run_id, started, after_save):
            return []
        if after_save and self._superseded(trigger, run_id, started):
            return []
        plant = self.session.plant
        if plant is None:
            self.console.notice(f"{self.pipeline.name} made no Plant(...): nothing to run")
            self.state.run_ended(run_id, "empty", [], time.perf_counter() - started)
            return []
        decisions: list[Decision] = []
        status = "ok"
        self.state.run_began(run_id, trigger, plant)
        try:
            chosen = targets or self.options.targets or self.session.requested or plant.sinks()
            forced = plant.downstream_of(invalidate) if invalidate else []
            plant.store.script_namespace = _script_namespace(plant)
            with self.console.run(trigger, plant), _script_as_main(plant):
                decisions = plant.run_reactors(
                    chosen, forced, targets_always_run=targets_always_run,
                    should_stop=self._cancel.is_set, exits_are_failures=True,
                    freeze_older_objects=False,  # settle() freezes what survives each run
                )  # fmt: skip
        except Stop:
            status = "cancelled"
            raise
        except RunCancelled:
            status = "cancelled"
        except ReactorFailedError as failure:
            status = "failed"
            self.console.reactor_failed(failure)
        except PlantError as failure:
            status = "failed"
            self.console.error(str(failure))
        except BaseException as failure:  # not the script's doing: say so, keep serving
            status = "failed"
            self.console.unexpected(failure)
        finally:
            decisions = decisions or plant.last_run
            self._rewatch()
        elapsed = time.perf_counter() - started
        self.state.run_ended(run_id, status, decisions, elapsed)
        self.console.run_finished(trigger, decisions, status, elapsed, plant)
        return decisions

    def _superseded(self, trigger: str, run_id: int, started: float) -> bool:
        """A watched file was written again after the watcher read it (the save was reported
        the moment it ended): what was loaded may be half-written, so nothing runs; the watcher
        reports the newer save once it ends."""
        again = self.watcher.changed_since_read()
        if not again:
            return False
        self.console.notice(f"{trigger}: {self._describe(again)[6:]} changed again; waiting for it")
        self.state.run_ended(run_id, "superseded", [], time.perf_counter() - started)
        return True

    def _load(self, trigger: str, run_id: int, started: float, after_save: bool = False) -> bool:
        """Execute the script; False if it did not load (reported) or was cancelled."""
        self.session.begin_load()
        self.state.load_began(run_id, trigger, self.pipeline)
        with self._watch_lock:
            reloaded = self.loader.purge()
        self._forget_reloaded_definitions(reloaded)
        self._load_began = time.monotonic()
        self._loading.set()
        try:
            with hosting(self.session):
                self.loader.execute()
        except Stop:
            raise
        except BaseException as failure:  # the script's own, sys.exit(1) too: report it
            self._loading.clear()
            if self._stopping:
                raise Stop() from None
            elapsed = time.perf_counter() - started
            if isinstance(failure, RunCancelled) or self._cancel.is_set():
                self.console.load_cancelled(trigger, self.pipeline.name, elapsed)
                self.state.run_ended(run_id, "cancelled", [], elapsed)
            elif after_save and self._superseded(trigger, run_id, started):
                pass  # a half-written file's error is none: the save is not over
            else:
                self._report_load_error(trigger, run_id, failure)
            self._rewatch()
            return False
        finally:
            self._loading.clear()
        if self._stopping:
            raise Stop()
        return True

    def _forget_reloaded_definitions(self, modules: set[str]) -> None:
        """Reactors and subreactors of the script and the user's modules (`modules`, just
        purged) are defined afresh by the reload; one the new code no longer defines (deleted,
        renamed) must not run again. Its stored results stay: an undo serves them."""
        reloaded = {"__main__", *modules}

        def defined_by_reload(func: Callable[..., Any]) -> bool:
            code = getattr(func, "__code__", None)
            in_project = code is not None and self.loader.is_project_file(code.co_filename)
            return in_project or getattr(func, "__module__", None) in reloaded

        forget_visible(defined_by_reload)

    def _report_load_error(self, trigger: str, run_id: int, failure: BaseException) -> None:
        where = load_error(failure, self.pipeline)
        self.console.reload_failed(trigger, where, failure)
        self.bus.publish(Kind.reload_failed, {
            "run_id": run_id, "path": where.path, "line": where.line,
            "column": where.column, "message": where.message,
        })  # fmt: skip
        self.state.load_failed(run_id, where)

    def _rewatch(self) -> None:
        with self._watch_lock:
            self._watched = self._watched_files()
            self.watcher.watch(self._watched, self.loader.read_as())

    # A save of the module whose import hangs must cancel the load: it is watched before the
    # load ends, by a thread that looks at what the script imported so far every little while.
    def _start_load_watch(self) -> None:
        self._load_watch_stop = threading.Event()
        self._load_watch = threading.Thread(
            target=self._watch_while_loading, name="pyplantd-load-watch", daemon=True
        )
        self._load_watch.start()

    def _stop_load_watch(self) -> None:
        if getattr(self, "_load_watch", None) is not None:
            self._load_watch_stop.set()  # wakes it
            self._load_watch.join()

    def _watch_while_loading(self) -> None:
        """Every LOAD_WATCH_SECONDS, a load going on for that long has what it imported so
        far watched. It looks rather than being woken when a load begins: woken, it would
        take the interpreter lock from the load of every save."""
        while not self._load_watch_stop.wait(LOAD_WATCH_SECONDS):
            began = self._load_began
            if not self._loading.is_set() or time.monotonic() - began < LOAD_WATCH_SECONDS:
                continue
            with self._watch_lock:
                if self._loading.is_set():
                    with contextlib.suppress(RuntimeError):  # a dict changed under us: later
                        # adds only: what is not imported yet may still be
                        self._watched |= self._watched_files()
                        self.watcher.watch(self._watched)

    def _watched_files(self) -> set[Path]:
        files = self.loader.watched_files()
        notice = self.loader.folders_notice(files)
        if notice is not None:
            self.console.notice(notice)
        store = self.session.store
        if store is not None:
            files |= {
                Path(path) for record in store.reactor_records().values() for path in record.files
            }
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


def _stop_clusters() -> None:
    """The dask clusters this daemon started stop with it (connections to others close)."""
    dask = sys.modules.get("pyplantd.run.executors.dask")
    if dask is not None:
        dask.stop_clusters()
