"""What the coordinator does for a reactor that runs in another process (a dask worker): its
inputs go out as references to durable payloads, and what it reports (sends as references,
what it read and wrote) comes into its pipework here, so that the run records it exactly as it
records a reactor that ran in process. Never loads or moves a value.
"""

from __future__ import annotations

import sys
from typing import Any

from ..errors import PayloadDamagedError
from ..fingerprint import with_code
from ..store.frozen import CODE_META, CONTENT_META
from ..store.payload_store import NAMED, UNCACHED
from ..store.payloads import Payload
from ..store.plant_store import PlantStore
from ..store.records import IngredientRecord
from ..store.writer import PendingWrite
from .executors.base import IngredientRef
from .executors.base import Sent as SentEvent
from .executors.driver import _running
from .pipework import Pipework, Sent


def ref_for(
    store: PlantStore, name: str, sent: Sent | None, record: IngredientRecord | None
) -> IngredientRef:
    """The reference a remote reactor receives for an available ingredient: its payload, which
    is durable (sent in this run by a remote reactor, or stored)."""
    if sent is not None:
        payload: Payload = sent.payload.wait()  # remote sends are durable when reported
        return IngredientRef(
            name, sent.type, payload.path, payload.size, payload.fingerprint, payload.checksum,
            payload.meta,
        )  # fmt: skip
    assert record is not None
    if not store.on_disk(record):
        raise PayloadDamagedError(
            f"Payload of ingredient '{name}' ({record.path}) is missing or has the wrong size."
        )
    return IngredientRef(
        name, record.type, record.path, record.size, record.fingerprint, record.checksum,
        record.meta,
    )  # fmt: skip


def sent_from(event: SentEvent, store: PlantStore) -> Sent:
    """A remote send as the pipework records one (durable already); a value that names classes
    or functions gets their code in its fingerprint here, as a local send does at `send`."""
    ref = event.ref
    fingerprint, meta = ref.fingerprint, dict(ref.meta)
    named = meta.pop(NAMED, None)
    if named and fingerprint is not None and store.code_of is not None:
        code = store.code_of(tuple(_resolve(name, store) for name in named))
        if code:
            meta = {**meta, CODE_META: code, CONTENT_META: fingerprint}
            fingerprint = with_code(fingerprint, code)
    payload = Payload(ref.path, ref.size, fingerprint, meta, ref.checksum or "")
    uncached = bool(ref.meta.get(UNCACHED))
    return Sent(ref.name, ref.type, PendingWrite.completed(ref.name, payload), uncached=uncached)


def _resolve(name: str, store: PlantStore) -> Any:
    """The class or function `module:qualname` names, here (the script's own from its
    namespace); a placeholder that signs as nothing when it cannot be found."""
    module_name, _, qualname = name.partition(":")
    found: Any
    if module_name == "__main__" and store.script_namespace is not None:
        found = store.script_namespace
    else:
        found = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = found.get(part) if isinstance(found, dict) else getattr(found, part, None)
    return found if found is not None else _Unknown


class _Unknown:
    """Stands for code the coordinator cannot find (defined inside a function)."""


def note_params(pipe: Pipework, params: tuple[str, ...] | list[str]) -> None:
    """The params a remote reactor had read (at a send, or when it ended)."""
    for name in params:
        if name not in pipe.touched.params:
            pipe.touched.params.append(name)


def note_subreactor(pipe: Pipework, subreactor_id: str) -> None:
    """A subreactor a remote reactor called, by its id: its function here (for its code)."""
    func = _subreactor(subreactor_id)
    if func is not None and func not in pipe.touched.subreactors:
        pipe.touched.subreactors.append(func)


def _subreactor(subreactor_id: str) -> Any:
    """By its id; a script's function pickled by value does not know its file on the worker,
    where its id is `__main__:name`: then the script's subreactor of that name."""
    from ..reactor import _visible_subreactors

    func = _visible_subreactors.get(subreactor_id)
    module, _, qualname = subreactor_id.partition(":")
    if func is None and module == "__main__":
        found = [
            f for f in _visible_subreactors.values()
            if f.__module__ == "__main__" and f.__qualname__ == qualname
        ]  # fmt: skip
        func = found[0] if len(found) == 1 else None
    return func


def note_finished(pipe: Pipework, touched: Any) -> list[str]:
    """What a remote reactor read and wrote, into its pipework; the names it allocated but
    never sent (its worker deleted them already)."""
    record, allocated = touched
    note_params(pipe, record.params)
    pipe.touched.files.update(record.files)
    return list(allocated)


def print_as(reactor: str, stream: str, text: str) -> None:
    """A line a remote reactor printed, printed here while this thread counts as running that
    reactor (the daemon's console prefixes the line with its name, as for a local one)."""
    token = _running.set(reactor)
    try:
        print(text, file=sys.stderr if stream == "stderr" else sys.stdout)
    finally:
        _running.reset(token)
