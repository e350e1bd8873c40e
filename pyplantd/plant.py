"""Plant: the public face of the engine — registration, config, runs, results, history.

It owns one run at a time (see scheduler.Run) over a PlantStore. Never imports the daemon or CLI.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from . import events
from .compat.names import pyplant_keywords, unknown_ingredient, unused_string_hash
from .config import ConfigBase, as_config
from .errors import (
    IngredientNotFoundError,
    NotAReactorError,
    ReactorNotFoundError,
    RunCancelled,
)
from .events import EventBus, EventType, PlantEvent
from .ingredient import Ingredient
from .reactor import function_id, is_reactor, latest_definition, visible_reactors
from .run import history
from .run.history import ExecutionRecord, print_history
from .sizes import script_budget
from .suggest import unknown

# The engine (store, scheduler, signatures) is imported when a Plant is made, not with this
# module: `from pyplantd import *` in a script, or a module of reactors, does not pay for it.
if TYPE_CHECKING:
    import logging

    from .compat.warehouse import PlantWarehouse as Warehouse
    from .run.executors import ExecutorChoice
    from .run.executors.base import Executor
    from .run.judge import Decision
    from .run.planner import PlannedStep
    from .run.scheduler import Reactor, Run, RunContext
    from .signatures.signature import SignatureComputer
    from .store.plant_store import PlantStore
    from .store.specs import IngredientTypeSpec

ReactorRef = Callable[..., Any] | str


class Plant:
    """Runs reactors, stores every ingredient, and re-runs only what a change affected.

    >>> with Plant('/tmp/my-plant') as plant:                     # doctest: +SKIP
    ...     plant.set_config({'color': 'red'})
    ...     plant.run_reactor(plot_data)
    """

    EventType = EventType
    ExecutionRecord = ExecutionRecord

    @pyplant_keywords(
        plantDir="plant_dir", logLevel="log_level", functionHash="function_hash",
        stringHash="string_hash",
    )  # fmt: skip
    def __init__(
        self,
        plant_dir: str | os.PathLike[str],
        logger: logging.Logger | None = None,
        log_level: int | None = None,
        function_hash: Callable[[Callable[..., Any]], str] | None = None,
        *,
        track_versions: bool = True,
        memory: int | str | None = None,
        disk: int | str | None = None,
        string_hash: Callable[[str], str] | None = None,
        executor: str | ExecutorChoice | None = None,
    ) -> None:
        import logging

        from .hosting.host import current_host
        from .hosting.signals import graceful_sigterm
        from .run.executors import as_choice
        from .store.plant_store import PlantStore

        if string_hash is not None:
            unused_string_hash()
        self._logger = logger or logging.getLogger("pyplantd")
        if log_level is not None:
            self._logger.setLevel(log_level)
        self._function_hash = function_hash
        self.track_versions = track_versions
        self.memory = script_budget("memory", memory)
        self.disk = script_budget("disk", disk)
        # Where reactors run (inline, threads:N, local:N, a cluster address); a host's settings
        # (--executor, [tool.pyplantd]) replace it when the user set them.
        self.executor = as_choice(executor) if executor is not None else None
        self._host = current_host()
        self._store = (
            self._host.open_store(self, plant_dir)
            if self._host
            else PlantStore(plant_dir, self.memory, self.disk)
        )
        self.plant_dir = self._store.plant_dir
        self._index_cache = self._store.index_cache()  # flushed after each run
        self._graceful = graceful_sigterm()
        self._reactors: dict[str, Reactor] = {}
        self._config = ConfigBase()
        self._events = EventBus()
        self._history: dict[str, ExecutionRecord] = {}
        self._closed = False
        self._warehouse: Warehouse | None = None
        self.last_run: list[Decision] = []
        self.runs: list[list[Decision]] = []

    # -- lifetime ---------------------------------------------------------------------------
    def __enter__(self) -> Plant:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def shutdown(self) -> None:
        """Finish deferred work and release the plant dir (the `with` block does this)."""
        if self._closed:
            return
        self._closed = True
        from .hosting.signals import flushing, release_sigterm

        try:
            if self._host is not None:
                self._host.on_close(self)
        finally:
            if self._host is None or not self._host.owns_store(self._store):
                with flushing(self._store.pending_writes()):  # not cut short by a stop
                    self._store.close()  # flushes pending writes first
            if self._graceful:
                release_sigterm()
            # What custom specs' close() did is the plant's own doing; with none, no code of
            # the user's ran since the run ended noted every value.
            changes = sys.modules.get("pyplantd.signatures.changes")
            if changes is not None and self._store.custom_specs:
                changes.CHANGES.run_ended()

    close = shutdown

    # -- registration -----------------------------------------------------------------------
    def add_reactors(self, *funcs: Callable[..., Any] | Iterable[Callable[..., Any]]) -> None:
        """Register reactor functions (a list works too)."""
        from .run.scheduler import Reactor

        for item in funcs:
            group: Iterable[Any] = item if isinstance(item, list | tuple | set) else [item]
            for func in group:
                if not is_reactor(func):
                    raise NotAReactorError(
                        f"{func!r} is not a reactor. Decorate it with @ReactorFunc."
                    )
                reactor = Reactor(function_id(func), func.__name__, func)
                self._reactors[reactor.id] = reactor

    add_reactor = add_reactors

    def add_all_visible_reactors(self) -> None:
        self.add_reactors(visible_reactors())

    def get_reactors(self) -> list[Callable[..., Any]]:
        return [reactor.func for reactor in self._reactors.values()]

    def register_ingredient_specs(self, specs: Iterable[IngredientTypeSpec]) -> None:
        """Add custom ingredient types (see IngredientTypeSpec; PyPlant's interface works too)."""
        from .store.specs import IngredientTypeSpec

        specs = list(specs)
        if not all(isinstance(spec, IngredientTypeSpec) for spec in specs):
            from .compat.spec_adapter import as_native  # a PyPlant-interface spec

            specs = [as_native(spec) for spec in specs]
        self._store.register_specs(specs)

    # -- config -----------------------------------------------------------------------------
    def set_config(self, config: Mapping[str, Any] | ConfigBase) -> None:
        self._config = as_config(config)

    @pyplant_keywords(params="names")
    def mark_params_as_auxiliary(self, names: Iterable[str]) -> None:
        """Changing these parameters re-runs nothing."""
        self._config.mark_auxiliary(names)

    def get_config_object(self) -> ConfigBase:
        return self._config

    # -- running ----------------------------------------------------------------------------
    @pyplant_keywords(reactorToRun="reactor")
    def run_reactor(self, reactor: ReactorRef) -> list[Decision]:
        """Run `reactor` (always) and whatever it needs that is not up to date."""
        self._ensure_registered()
        target = self._resolve(reactor)
        if self._host is not None and self._host.on_run_reactor(self, target.id):
            return []
        return self.run_reactors([target.id])

    def run_reactors(
        self,
        reactors: Iterable[ReactorRef],
        forced: Iterable[str] = (),
        *,
        targets_always_run: bool = True,
        should_stop: Callable[[], bool] | None = None,
        exits_are_failures: bool = False,
        freeze_older_objects: bool = True,
    ) -> list[Decision]:
        """One run with several targets.

        `forced` reactor ids re-run whatever their state; with `targets_always_run=False` the
        targets are skipped like any other reactor when nothing they depend on changed (the
        daemon after a save); `should_stop()` is polled between steps to cancel the run;
        `exits_are_failures` makes a reactor's sys.exit() or KeyboardInterrupt a
        ReactorFailedError instead of ending the process (the daemon); `freeze_older_objects`
        leaves what existed before the run out of garbage collection during it (a host that
        freezes objects itself, the daemon, passes False).
        """
        self._ensure_registered()
        from .run.executors import open_executor

        targets = [self._resolve(r) for r in reactors]
        executor = open_executor(self.executor)  # opened per run: nothing outlives it idle
        try:
            with _older_objects_frozen() if freeze_older_objects else contextlib.nullcontext():
                return self._run_with(
                    executor, targets, set(forced), targets_always_run, should_stop,
                    exits_are_failures,
                )  # fmt: skip
        finally:
            executor.close()

    def _run_with(
        self,
        executor: Executor,
        targets: list[Reactor],
        forced: set[str],
        targets_always_run: bool,
        should_stop: Callable[[], bool] | None,
        exits_are_failures: bool,
    ) -> list[Decision]:
        from .run.scheduler import Run

        ctx = self._context(forced)
        ctx.exits_are_failures = exits_are_failures
        ctx.executor = executor
        if should_stop is not None:
            ctx.should_stop = should_stop
        run = Run(ctx, targets, targets_always_run)
        run_id = self._store.start_run([t.id for t in targets])
        self._events.emit(
            PlantEvent(EventType.run_started, None, {"targets": [t.name for t in targets]})
        )
        status = "failed"
        try:
            decisions = run.execute()
            status = "ok"
            return decisions
        except RunCancelled:
            status = "cancelled"
            raise
        finally:
            self._end_run(run, run_id, status)

    def downstream_of(self, reactor: ReactorRef) -> list[str]:
        """The reactor and every reactor that receives, directly or not, what it sends."""
        from .run.walk import reached

        self._ensure_registered()
        start = self._resolve(reactor).id
        records = self._store.reactor_records()
        receivers: dict[str, list[str]] = {}
        for rid, record in records.items():
            for name in record.inputs:
                receivers.setdefault(name, []).append(rid)

        def consumers(rid: str) -> list[str]:
            record = records.get(rid)
            return [r for name in record.outputs for r in receivers.get(name, [])] if record else []

        return sorted(reached([start], consumers))

    def sinks(self) -> list[str]:
        """Reactors whose outputs no other reactor receives (and those that never ran)."""
        self._ensure_registered()
        records = self._store.reactor_records()
        received = {name for r in records.values() for name in r.inputs}
        return [
            reactor.id
            for reactor in self._reactors.values()
            if reactor.id not in records or not set(records[reactor.id].outputs) & received
        ]

    def _context(self, forced: set[str]) -> RunContext:
        from .run.scheduler import RunContext

        signatures = self._signatures()
        return RunContext(
            self._store, self._config, self._reactors, signatures, self._events, forced,
            self.track_versions,
        )  # fmt: skip

    def _end_run(self, run: Run, run_id: int, status: str) -> None:
        from .signatures.changes import CHANGES
        from .store.records import HistoryEntry

        CHANGES.run_ended()  # what the run did to values itself never counts

        decisions = list(run.decisions.values())
        self.last_run = decisions
        self.runs.append(decisions)
        for d in decisions:
            if d.status in ("ran", "failed"):
                finish = d.started_at + d.duration
                self._history[d.reactor] = ExecutionRecord(
                    d.reactor, d.started_at, d.duration, finish, d.status, d.reasons
                )
        entries = [
            HistoryEntry(d.reactor, d.status, d.duration, d.reasons, d.started_at)
            for d in decisions
        ]
        self._store.finish_run(run_id, status, entries)
        self._events.emit(
            PlantEvent(EventType.run_finished, None, {"status": status, "decisions": decisions})
        )
        self._index_cache.flush()  # after the run is reported: new code indexes for next time

    def _signatures(self) -> SignatureComputer:
        from .signatures.changes import CHANGES
        from .signatures.signature import SignatureComputer

        CHANGES.run_starts()  # what the script's own code changed in place since the last run
        return SignatureComputer(self._function_hash, self.track_versions, self._index_cache)

    def _ensure_registered(self) -> None:
        # As in PyPlant: with nothing added explicitly, every visible @ReactorFunc joins.
        from .run.scheduler import Reactor

        if not self._reactors:
            self.add_all_visible_reactors()
        for reactor_id, reactor in list(self._reactors.items()):
            latest = latest_definition(reactor.func)  # redefined since, in a notebook cell
            if latest is not reactor.func:
                self._reactors[reactor_id] = Reactor(reactor_id, latest.__name__, latest)

    def _resolve(self, ref: ReactorRef) -> Reactor:
        if callable(ref):
            reactor_id = function_id(ref)
            if reactor_id not in self._reactors:
                self.add_reactors(ref)
            return self._reactors[reactor_id]
        if ref in self._reactors:
            return self._reactors[ref]
        matches = [r for r in self._reactors.values() if r.name == ref]
        if len(matches) == 1:
            return matches[0]
        if matches:
            ids = ", ".join(r.id for r in matches)
            raise ReactorNotFoundError(
                f"Reactor name '{ref}' is ambiguous ({ids}). Use the full id."
            )
        known = [r.name for r in self._reactors.values()]
        raise ReactorNotFoundError(
            unknown("Reactor", ref, known, "this plant")
            + f" Add it with plant.add_reactors({ref})."
        )

    def plan(
        self, reactors: Iterable[ReactorRef], *, targets_always_run: bool = True
    ) -> list[PlannedStep]:
        """What `run_reactors(reactors)` would do and why, running nothing (a dry run)."""
        from .run.planner import Planner

        self._ensure_registered()
        targets = [self._resolve(r) for r in reactors]
        steps = Planner(self._context(set())).plan(targets, targets_always_run)
        self._index_cache.flush()
        return steps

    def reactor_names(self) -> list[str]:
        return [r.name for r in self._reactors.values()]

    def registered(self) -> list[Reactor]:
        """The registered reactors, from a copy taken at once (the daemon's server thread reads
        it while the engine thread may be registering)."""
        return list(self._reactors.copy().values())

    # -- results ----------------------------------------------------------------------------
    def fetch_ingredient(self, name: str) -> Any:
        """The stored value of an ingredient, without running anything."""
        record = self._store.ingredient(name)
        if record is None:
            raise IngredientNotFoundError(
                unknown("Ingredient", name, self._store.ingredient_names(), "the plant")
                + " Run the reactor that sends it first."
            )
        return self._store.load(record)

    def is_ingredient_known(self, name: str) -> bool:
        return self._store.has_ingredient(name)

    def accept(self, reactor: ReactorRef) -> None:
        """Record the reactor's current code as matching its stored outputs (after a harmless
        refactor), so it does not re-run for that change."""
        from .run.judge import code_signature

        self._ensure_registered()
        target = self._resolve(reactor)
        record = self._store.reactor(target.id)
        if record is None:
            raise ReactorNotFoundError(
                f"Reactor '{target.name}' never ran in this plant, so there is nothing to accept."
            )
        code = code_signature(self._signatures(), target.func, record.subreactors)
        record.code_digest, record.code_parts = code.digest, code.parts
        self._store.put_reactor(record)
        self._index_cache.flush()

    # -- observing --------------------------------------------------------------------------
    @pyplant_keywords(eventType="event_type")
    def add_event_listener(
        self, event_type: events.EventType, callback: Callable[..., None]
    ) -> None:
        """`callback(event_type, reactor_name)` whenever an event of that type happens."""
        self._events.add_listener(event_type, callback)

    def remove_event_listener(self, callback: Callable[..., None]) -> None:
        self._events.remove(callback)

    def subscribe(self, callback: Callable[[PlantEvent], None]) -> None:
        """`callback(event)` for every event, with details (durations, reasons, errors)."""
        self._events.subscribe(callback)

    def get_execution_history(self) -> dict[str, history.ExecutionRecord]:
        return dict(self._history)

    @pyplant_keywords(printFn="print_fn")
    def print_execution_history(self, print_fn: Callable[[Any], Any] = print) -> None:
        print_history(self._history, print_fn)

    @property
    def store(self) -> PlantStore:
        return self._store

    def __repr__(self) -> str:
        return f"Plant({str(self.plant_dir)!r})"

    # -- PyPlant's names --------------------------------------------------------------------
    def get_ingredient_object(self, name: str) -> Ingredient:
        """What the plant knows of a stored ingredient: name, type, producer, fingerprint."""
        record = self._store.ingredient(name)
        if record is None:
            raise unknown_ingredient(name, self._store.ingredient_names())
        producer = self._store.reactor(record.producer)
        producer_name = producer.name if producer is not None else record.producer
        return Ingredient(name, record.type, producer_name, record.fingerprint)

    @property
    def plantDir(self) -> str:  # noqa: N802
        return str(self.plant_dir)

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    @property
    def config(self) -> ConfigBase:
        """The config set with `set_config` (read-only here: set a new one with it)."""
        return self._config

    @property
    def executionHistory(self) -> dict[str, history.ExecutionRecord]:  # noqa: N802
        return self.get_execution_history()

    @property
    def warehouse(self) -> Warehouse:
        """PyPlant's ``plant.warehouse``: register_ingredient_specs, fetch, close..."""
        from .compat.warehouse import PlantWarehouse  # PyPlant scripts only

        if self._warehouse is None:
            self._warehouse = PlantWarehouse(self)
        return self._warehouse


@contextlib.contextmanager
def _older_objects_frozen() -> Iterator[None]:
    """During a run, the objects that existed before it (modules, the script's functions, the
    store's records) are left out of garbage collection: a full collection in the middle of a
    run would walk them all for nothing (20-30 ms in a run of 1000 reactors). Undone when the
    run ends, so garbage made before it is still collected. (Not gc.get_freeze_count() to see
    whether a host froze objects: it walks every frozen object.)"""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
