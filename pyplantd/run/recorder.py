"""Record what ran: a finished reactor's commit (its record, outputs and version), queued behind
its payloads' writes, and the durability barrier at the end of a run.

Runs on the coordinator's thread; the commits themselves are built on the store's writer thread.
Never decides what runs (the scheduler) or whether it is fresh (the judge).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import StoreError
from ..reactor import function_id
from ..store.plant_store import PlantStore, output_record
from ..store.records import ReactorRecord, Version
from ..store.writer import PendingWrite
from .judge import Judge, version_key

if TYPE_CHECKING:
    from .pipework import Touched
    from .scheduler import Reactor


class Recorder:
    def __init__(self, store: PlantStore, judge: Judge) -> None:
        self.store, self.judge = store, judge
        self.commits: list[PendingWrite] = []
        self.write_errors: list[StoreError] = []

    def commit_later(self, reactor: Reactor, touched: Touched, elapsed: float) -> None:
        """Queue the reactor's commit behind its payloads; what needs the engine (code, params)
        is computed now, the fingerprints when the writer gets there."""
        subs = [function_id(f) for f in touched.subreactors]
        code, params = self.judge.code(reactor, subs), self.judge.param_states(touched.params)
        sent, inputs, files = list(touched.sent.values()), dict(touched.inputs), dict(touched.files)

        def build() -> Version:
            now = time.time()
            fingerprints = {name: source.fingerprint() for name, source in inputs.items()}
            record = ReactorRecord(
                reactor.id, reactor.name, code.digest, code.parts, params, fingerprints,
                [s.name for s in sent], subs, files, duration=elapsed, finished_at=now,
            )  # fmt: skip
            outputs = [
                replace(output_record(s.payload, s.name, reactor.id, s.type), created_at=now)
                for s in sent
            ]
            return Version(version_key(record), record, outputs, now)

        self.commits.append(self.store.commit_later(reactor.name, build))

    def wait(self) -> None:
        """The durability barrier: a run ends when what it made is on disk and recorded."""
        for commit in self.commits:
            try:
                commit.wait()
            except StoreError as err:  # that reactor re-runs next time; the run fails at its end
                self.write_errors.append(err)
        self.commits.clear()
