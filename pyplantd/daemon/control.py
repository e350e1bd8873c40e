"""The commands clients send the daemon, one `cmd_<verb>` each (see pyplant_client.protocol).

Answers come from what the engine publishes (its state, the warm store); commands that act are
handed to the engine's inbox. Runs on the server thread: nothing here mutates plant state.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BadArgumentsError, PlantError
from ..graph.live import LiveGraph
from ..sizes import format_size
from ..store.listing import describe_shape
from ..suggest import did_you_mean
from .server import Handler

if TYPE_CHECKING:
    from .engine import Engine

PREVIEW_CHARS = 400
MAX_BUFFER_BYTES = 2**30  # larger arrays are fetched from their file
# The checksum the store records at commit for each type whose payload file a client reads
# itself, named for the client to recompute (pyplant_client.client). For an array it is the
# content hash of store/specs.py: xxh3_128 over "<dtype.str>|<shape tuple>|" and the C-order
# bytes. An hdf_array records none (hashing data larger than memory at commit would defeat it).
FILE_CHECKSUMS = {"array": "xxh3_128-array"}
# A pickled payload's checksum: xxh3_128 of the file's bytes (store/specs.py, PickleSpec).
PICKLE_CHECKSUM = "xxh3_128-file"
PICKLE_SUFFIX = ".pkl"
CLEAN_WAIT = 3.0  # seconds a clean waits for the engine before it is only queued


class Control:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.started = time.time()
        self.live_graph = LiveGraph(engine)

    def handlers(self) -> dict[str, Handler]:
        return {
            name.removeprefix("cmd_"): getattr(self, name)
            for name in dir(self)
            if name.startswith("cmd_")
        }

    # -- reading ----------------------------------------------------------------------------
    def cmd_ping(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True, "time": time.time()}

    def cmd_status(self, args: dict[str, Any]) -> dict[str, Any]:
        status = self.engine.state.snapshot()
        store = self.engine.session.store
        if store is not None:
            status["memory"] = {**store.memory_use(), "warm": store.warm_contents()}
        server = self.engine.server
        if server is not None:
            status["endpoint"] = {
                "unauthenticated": server.unauthenticated, "malformed": server.malformed,
                "events_dropped": server.events_dropped,
            }  # fmt: skip
        status["pipeline"] = str(self.engine.pipeline)
        if store is not None:
            status["plant_dir"] = str(store.plant_dir)
        status["uptime"] = time.time() - self.started
        return status

    def cmd_ingredients(self, args: dict[str, Any]) -> dict[str, Any]:
        store = self.engine.session.store
        if store is None:
            return {"ingredients": []}
        rows, now = [], time.time()
        versions = store.version_counts()
        for record in sorted(store.ingredient_records().values(), key=lambda r: r.name):
            producer = store.reactor(record.producer)
            rows.append({
                "name": record.name, "producer": producer.name if producer else "?",
                "type": record.type, "shape": describe_shape(record.meta),
                "size": record.size, "tier": store.tier(record),
                "age": max(0.0, now - record.created_at),
                "versions": versions.get(record.producer, 0),
            })  # fmt: skip
        return {"ingredients": rows}

    def cmd_graph(self, args: dict[str, Any]) -> dict[str, Any]:
        """Reactors, their states and the ingredients between them (pyplant_client.graph_render
        draws it), from published state and copies of the records only."""
        return self.live_graph.model()

    def cmd_preview(self, args: dict[str, Any]) -> dict[str, Any]:
        value, record = self._value(args)
        return {"name": record.name, "type": record.type, "text": preview(value)}

    def cmd_fetch(
        self, args: dict[str, Any]
    ) -> dict[str, Any] | tuple[dict[str, Any], list[bytes]]:
        value, record = self._value(args)
        store = self.engine.session.store
        assert store is not None
        durable = store.on_disk(record)
        on_disk = record.type in ("array", "hdf_array") and record.meta.get("dtype") != "object"
        if on_disk and durable:  # the client reads dataset "data" of the file itself
            path = str(store.payload_path(record))
            algorithm = FILE_CHECKSUMS.get(record.type)
            checksum = None
            if algorithm and record.checksum:  # the client checks the file against it
                checksum = {"algorithm": algorithm, "digest": record.checksum}
            return {
                **record.meta, "kind": "file", "path": path, "format": "hdf5",
                "size": record.size, "checksum": checksum,
            }  # fmt: skip
        if isinstance(value, np.ndarray) and not value.dtype.hasobject:
            if value.nbytes > MAX_BUFFER_BYTES:
                raise BadArgumentsError(f"'{record.name}' is not on disk yet and too large to send")
            data = np.ascontiguousarray(value).tobytes()
            meta = {"dtype": value.dtype.str, "shape": list(value.shape), "nbytes": len(data)}
            digest = hashlib.sha256(data).hexdigest()
            return {"kind": "buffer", **meta, "sha256": digest}, [data]
        if _jsonable(value):
            return {"kind": "value", "json": value}
        if store.spec(record.type).suffix == PICKLE_SUFFIX and durable and record.checksum:
            # Never pickled over the socket: the client may load the file itself, if it wants
            # pickles, after checking its owner, size and this checksum.
            path = str(store.payload_path(record))
            return {
                "kind": "file", "format": "pickle", "path": path, "size": record.size,
                "python_type": type(value).__qualname__,
                "checksum": {"algorithm": PICKLE_CHECKSUM, "digest": record.checksum},
            }  # fmt: skip
        raise BadArgumentsError(
            f"'{record.name}' ({type(value).__name__}) cannot be sent without pickling; "
            "fetch arrays and plain values, or use `pyplant preview`."
        )

    def _value(self, args: dict[str, Any]) -> tuple[Any, Any]:
        name = args.get("name")
        store = self.engine.session.store
        if not isinstance(name, str):
            raise BadArgumentsError("give the ingredient's name: {'name': ...}")
        record = store.ingredient(name) if store is not None else None
        if record is None or store is None:
            known = store.ingredient_names() if store else []
            raise BadArgumentsError(
                f"no ingredient named '{name}' (known: {', '.join(known) or 'none'})."
                + did_you_mean(name, known)
            )
        return store.load(record), record

    # -- acting -----------------------------------------------------------------------------
    def cmd_run(self, args: dict[str, Any]) -> dict[str, Any]:
        targets = args.get("targets") or []
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise BadArgumentsError("targets is a list of reactor names")
        self._check_reactors(targets)
        return {"run_id": self.engine.request_run(targets)}

    def cmd_cancel(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"cancelled": self.engine.cancel()}

    def cmd_invalidate(self, args: dict[str, Any]) -> dict[str, Any]:
        reactor = args.get("reactor")
        if not isinstance(reactor, str):
            raise BadArgumentsError("give the reactor's name: {'reactor': ...}")
        self._check_reactors([reactor])
        return {"run_id": self.engine.request_invalidate(reactor)}

    def cmd_clean(self, args: dict[str, Any]) -> dict[str, Any]:
        """Remove old versions, the named ingredients, or all results, as `pyplantd clean` does,
        on the engine thread once it is idle: `freed` bytes, or `queued` while a run goes on."""
        names, everything = list(args.get("names") or []), bool(args.get("all"))
        if names and everything:
            raise BadArgumentsError("give ingredient names or all, not both")
        store = self.engine.session.store
        if store is None:
            raise BadArgumentsError(
                "the pipeline has not opened its plant yet (see the daemon's output)"
            )
        missing = [n for n in names if not store.has_ingredient(n)]
        if missing:
            known = store.ingredient_names()
            hints = "".join(did_you_mean(n, known) for n in missing)
            raise BadArgumentsError(
                f"no ingredient named {', '.join(missing)} (known: "
                f"{', '.join(known) or 'none'}).{hints}"
            )
        reply = self.engine.request_clean(names, everything)
        try:
            return {"freed": reply.result(CLEAN_WAIT)}
        except FutureTimeout:
            return {"queued": True}
        except PlantError as error:
            raise BadArgumentsError(str(error)) from None

    def cmd_shutdown(self, args: dict[str, Any]) -> dict[str, Any]:
        self.engine.request_stop()
        return {"stopping": True}

    def _check_reactors(self, names: list[str]) -> None:
        plant = self.engine.session.plant
        if plant is None:
            if names:
                raise BadArgumentsError(
                    "the pipeline has not loaded yet (see the daemon's output); fix it and save"
                )
            return
        known = plant.reactor_names()
        unknown = [n for n in names if n not in known]
        if unknown:
            hints = "".join(did_you_mean(n, known) for n in unknown)
            raise BadArgumentsError(
                f"unknown reactor {', '.join(unknown)} (known: {', '.join(sorted(known))}).{hints}"
            )


def preview(value: Any) -> str:
    """A small textual summary, never the data: shape, dtype, min/max/mean, or a repr head."""
    if isinstance(value, np.ndarray) or (hasattr(value, "dtype") and hasattr(value, "shape")):
        text = f"{type(value).__name__} shape={tuple(value.shape)} dtype={value.dtype}"
        size = int(np.prod(value.shape)) if value.shape else 1
        if size and np.issubdtype(value.dtype, np.number) and size * value.dtype.itemsize < 2**30:
            array = np.asarray(value)
            text += (
                f" min={array.min():.6g} max={array.max():.6g} mean={array.mean():.6g}"
                f" ({format_size(array.nbytes)})"
            )
        return text
    text = repr(value)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 3] + "..."


def _jsonable(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if depth > 20:
        return False
    if isinstance(value, list):
        return all(_jsonable(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _jsonable(v, depth + 1) for k, v in value.items())
    return False
