"""`Client`: talks to a running `pyplantd watch` through its connection file. Requests go over a
DEALER socket (signed, answered by id, never blocking past a timeout), events come from a SUB
socket. Depends on pyzmq and the protocol module only: numpy and h5py are imported inside
`fetch`, pyplantd never. Not thread-safe: use one Client per thread.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import itertools
import math
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import zmq

from . import pickles, protocol, trust
from .errors import (
    ClientError,
    ClientTimeoutError,
    DaemonNotRunningError,
    ProtocolError,
    UntrustedFileError,
)
from .transport import NOBLOCK, recv_frames, send_frames

DEFAULT_TIMEOUT = 5.0  # seconds to wait for a reply
FOLLOW_POLL = 1.0  # seconds of silence on the event stream before asking `status` instead
MARK_FIRST_PAUSE = 0.001  # seconds to await a mark before asking again (doubling each time),
MARK_MAX_PAUSE = 0.2  # up to this; a subscription usually takes effect within 1-2 ms
HANDSHAKE_WAIT = 2.0  # at most, for a daemon that does not know `mark`
_LOOPBACK = ("ipc://", "tcp://127.0.0.1:", "tcp://localhost:", "tcp://[::1]:")
_START_HINT = "Start one with `pyplantd watch pipeline.py`."
# A payload file's checksum as the daemon names it: xxh3_128 over "<dtype.str>|<shape tuple>|"
# then the array's C-order bytes (the store's content hash of an array).
CHECKSUM_ALGORITHM = "xxh3_128-array"


# -- is the daemon there? ---------------------------------------------------------------------
def check_alive(info: protocol.ConnectionInfo) -> None:
    """DaemonNotRunningError unless the connection file's pid is alive and still the daemon."""
    pid = info.pid
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise ProtocolError(f"the connection file names no valid pid ({pid!r})")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise DaemonNotRunningError(
            f"stale connection file: daemon pid {pid} is gone. {_START_HINT}"
        ) from None
    except PermissionError:
        pass  # alive but another user's: the start time below tells whether it is the daemon
    if protocol.process_start_time(pid) != info.process_start:
        raise DaemonNotRunningError(
            f"stale connection file: daemon pid {pid} is now another process. {_START_HINT}"
        )
    if _is_zombie(pid):
        raise DaemonNotRunningError(f"daemon pid {pid} has exited. {_START_HINT}")


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[:1] == ["Z"]


def _check_info(info: protocol.ConnectionInfo) -> None:
    if info.version != protocol.PROTOCOL_VERSION:
        raise ProtocolError(
            f"the daemon speaks protocol version {info.version!r}, this client "
            f"{protocol.PROTOCOL_VERSION}. Install matching versions of pyplantd and pyplant."
        )
    for endpoint in (info.request, info.events):
        if not isinstance(endpoint, str) or not endpoint.startswith(_LOOPBACK):
            raise ProtocolError(f"refusing endpoint {endpoint!r}: the daemon listens on loopback")
    if not isinstance(info.key, str) or not info.key:
        raise ProtocolError("the connection file holds no key")


class Client:
    """A connection to one daemon.

    >>> with Client.find("examples") as client:  # doctest: +SKIP
    ...     run_id = client.run(["plot_data"])
    ...     client.status()["state"]
    'running'
    """

    def __init__(self, info: protocol.ConnectionInfo, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        _check_info(info)
        check_alive(info)
        self.info, self.timeout = info, timeout
        self._key = info.key.encode()  # the daemon signs with the hex text's bytes
        self._ids = itertools.count(1)
        self._rcvtimeo = -1  # the socket's receive timeout (ms) as last set
        self._context = zmq.Context()
        self._knows_mark: bool | None = None  # does the daemon answer `mark`? (None: not asked)
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(info.request)

    @classmethod
    def find(
        cls, path: str | os.PathLike[str] = ".", *, timeout: float = DEFAULT_TIMEOUT
    ) -> Client:
        """Walk up from `path` to `.pyplantd/connection.json` and connect to its daemon.
        UntrustedFileError when what it finds on the way is not the current user's own."""
        try:
            found = protocol.find_connection_file(Path(path))
            if found is None:
                raise DaemonNotRunningError(
                    f"no pyplantd daemon found from {Path(path).absolute()} (no "
                    f"{protocol.RUNTIME_DIR}/{protocol.CONNECTION_FILE} here or above). "
                    + _START_HINT
                )
            info = protocol.ConnectionInfo.read(found)
        except trust.UntrustedFileError as err:
            raise UntrustedFileError(str(err)) from None
        except protocol.ProtocolError as err:
            raise ProtocolError(str(err)) from err
        return cls(info, timeout=timeout)

    def close(self) -> None:
        self._context.destroy(linger=0)  # also closes event streams still open

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------------------
    def call(
        self, cmd: str, args: dict[str, Any] | None = None, *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send one command, return its result (raises ClientError subclasses)."""
        return self._call(cmd, args, timeout)[0]

    def _call(
        self, cmd: str, args: dict[str, Any] | None, timeout: float | None
    ) -> tuple[dict[str, Any], list[bytes]]:
        request_id = str(next(self._ids))  # unique per socket is enough to match replies
        frames = protocol.encode_request(self._key, cmd, args, request_id)
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        try:
            send_frames(self._socket, frames, NOBLOCK)
        except zmq.Again:  # the queue towards a daemon that stopped reading is full
            raise self._no_reply(cmd, wait) from None
        while True:
            reply = self._receive(deadline - time.monotonic())
            if reply is None:
                raise self._no_reply(cmd, wait)
            message = self._verified(reply)
            # Replies to earlier requests that timed out are dropped; an error without an id is
            # the daemon refusing a request it could not read: ours, as we send one at a time.
            if message is not None and message["id"] in (request_id, ""):
                if message["id"] == "" and message.get("ok") is not False:
                    continue
                return self._result(cmd, message), reply[2:]

    def _receive(self, remaining: float) -> list[bytes] | None:
        """The next message, or None after `remaining` seconds. A blocking receive with a
        timeout rather than poll-then-receive: `Socket.poll` builds a Poller on every call."""
        if remaining <= 0:
            return None
        milliseconds = math.ceil(remaining * 1000)
        if milliseconds != self._rcvtimeo:  # the same for every call with the same timeout
            self._socket.setsockopt(zmq.RCVTIMEO, milliseconds)
            self._rcvtimeo = milliseconds
        try:
            return recv_frames(self._socket)
        except zmq.Again:
            return None

    def _verified(self, reply: list[bytes]) -> dict[str, Any] | None:
        try:
            # Frames after the signed two are raw data that the signed payload describes.
            return protocol.decode_reply(self._key, reply[:2])
        except protocol.UnauthenticatedError:
            return None  # not from our daemon: it gets no more attention than it gave
        except protocol.ProtocolError as err:
            raise ProtocolError(f"bad reply from daemon pid {self.info.pid}: {err}") from err

    def _result(self, cmd: str, message: dict[str, Any]) -> dict[str, Any]:
        if message.get("ok") is True:
            result = message.get("result")
            if not isinstance(result, dict):
                raise ProtocolError(f"the reply to '{cmd}' holds no result object")
            return result
        error = message.get("error")
        error = error if isinstance(error, dict) else {}
        text = str(error.get("message") or f"the daemon refused '{cmd}'")
        raise ProtocolError(text, type=str(error.get("type") or "Error"))

    def _no_reply(self, cmd: str, wait: float) -> ClientError:
        try:
            check_alive(self.info)
        except DaemonNotRunningError as gone:
            return gone
        return ClientTimeoutError(
            f"daemon pid {self.info.pid} did not answer '{cmd}' within {wait:g} s. "
            "It may be stuck in a call that holds the GIL; see its terminal, or pass a longer "
            "--timeout."
        )

    # -- commands ---------------------------------------------------------------------------
    def ping(self) -> dict[str, Any]:
        return self.call("ping")

    def status(self) -> dict[str, Any]:
        """State, current and last run, each reactor's state, memory, pipeline, uptime."""
        return self.call("status")

    def run(self, targets: Sequence[str] | None = None) -> int:
        """Queue a run (of these reactors, else the script's targets); its run id."""
        result = self.call("run", {"targets": list(targets)} if targets else {})
        return _field(result, "run_id", int, "run")

    def cancel(self) -> bool:
        """Cancel the run in progress; False if none was."""
        return bool(self.call("cancel").get("cancelled"))

    def invalidate(self, reactor: str) -> int:
        """Re-run this reactor and what depends on it; the run id."""
        return _field(self.call("invalidate", {"reactor": reactor}), "run_id", int, "invalidate")

    def ingredients(self) -> list[dict[str, Any]]:
        rows = _field(self.call("ingredients"), "ingredients", list, "ingredients")
        return [row for row in rows if isinstance(row, dict)]

    def graph(self) -> dict[str, Any]:
        """The pipeline's graph model: reactors with their state, ingredients as edges (draw it
        with pyplant_client.graph_render)."""
        return self.call("graph")

    def preview(self, name: str) -> str:
        """A short text about an ingredient's value (shape, dtype, range, or a repr head)."""
        return _field(self.call("preview", {"name": name}), "text", str, "preview")

    def shutdown(self) -> None:
        """Ask the daemon to stop (it flushes pending writes first)."""
        self.call("shutdown")

    def clean(self, names: Sequence[str] = (), everything: bool = False) -> dict[str, Any]:
        """Remove old versions, these ingredients, or every result (`everything`), as
        `pyplantd clean` does: `{"freed": bytes}`, or `{"queued": True}` while a run goes on."""
        args: dict[str, Any] = {"names": list(names)} if names else {}
        if everything:
            args["all"] = True
        return self.call("clean", args)

    def fetch(self, name: str, *, allow_pickle: bool = False) -> Any:
        """An ingredient's value: a numpy array (read-only when sent in memory) or a JSON value.

        Other objects (a trained model) are only ever stored as pickles, and loading a pickle
        runs code: with `allow_pickle` true, the payload file the daemon names is loaded here,
        in this process, once it is found to be yours, of the recorded size and checksum.
        Nothing is ever unpickled from the socket."""
        result, extra = self._call("fetch", {"name": name}, None)
        kind = result.get("kind")
        if kind == "value":
            return result.get("json")
        if kind == "file" and result.get("format") == "pickle":
            if not allow_pickle:
                raise ClientError(pickles.refusal(name, result.get("python_type")))
            return pickles.load(name, result)
        try:
            import numpy as np  # only here: the client installs without numpy
        except ImportError:
            raise ClientError(
                f"'{name}' is an array; fetching arrays needs numpy: pip install numpy"
            ) from None
        if kind == "buffer":
            return _array_from_buffer(np, result, extra)
        if kind == "file":
            return _array_from_file(np, name, result)
        raise ProtocolError(f"the reply to 'fetch' has an unknown kind {kind!r}")

    def fetch_pickled(self, name: str) -> bytes:
        """An ingredient as the bytes of a pickle, unpickled by nobody here: a stored pickle's
        checked bytes as they are, or any other value pickled now."""
        result, _extra = self._call("fetch", {"name": name}, None)
        if result.get("kind") == "file" and result.get("format") == "pickle":
            return pickles.checked_bytes(name, result)
        return pickles.dumps(self.fetch(name))

    # -- events -----------------------------------------------------------------------------
    def subscribe(self) -> EventStream:
        """An open event stream (a context manager) that receives every event the daemon
        publishes from now on: open it before asking for what you await.

        A ZeroMQ subscription takes effect some time after the connection, and a PUB socket
        drops what it sends meanwhile; so the daemon is asked to publish a mark with a token of
        ours until it comes back. A daemon that does not know `mark` (one from before it) gets
        only the bounded wait for the connection's handshake, which does not guarantee it."""
        stream = EventStream(self._context, self.info.events, self._key)
        try:
            # The handshake first: a mark asked before it is lost (asked again 1 ms later).
            stream.await_handshake(min(self.timeout, HANDSHAKE_WAIT))
            self._mark(stream, self.timeout)
        except BaseException:
            stream.close()
            raise
        stream.stop_monitor()
        return stream

    def _mark(self, stream: EventStream, wait: float) -> bool:
        """Ask for a mark until it arrives on `stream` (True; the events before it are kept
        for `stream.next`), or False when the daemon does not know `mark`."""
        if self._knows_mark is False:
            return False
        token = secrets.token_hex(8)
        deadline = time.monotonic() + wait
        pause = MARK_FIRST_PAUSE
        while True:
            try:
                self.call("mark", {"token": token})
            except ProtocolError as err:
                if err.type != "UnknownCommand":
                    raise
                self._knows_mark = False
                return False
            self._knows_mark = True
            # A mark sent before the subscription took effect is lost: ask again, less often.
            if stream.await_mark(token, min(pause, deadline - time.monotonic())):
                return True
            if time.monotonic() >= deadline:
                raise ClientTimeoutError(
                    f"the event stream of daemon pid {self.info.pid} did not start within "
                    f"{wait:g} s (no mark came back). The daemon may be very busy; pass a "
                    "longer --timeout."
                )
            pause = min(pause * 2, MARK_MAX_PAUSE)

    def events(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Every valid event, as it comes; stops after `timeout` seconds without one."""
        with self.subscribe() as stream:
            while (event := stream.next(timeout)) is not None:
                yield event

    def follow(
        self, stream: EventStream, run_id: int | None = None, *, timeout: float | None = None,
        poll: float = FOLLOW_POLL,
    ) -> Iterator[dict[str, Any]]:  # fmt: skip
        """The events of run `run_id` (else of the current or next run), its run_finished last.

        Events can be lost (a slow subscriber; gaps in `seq` are counted in `stream.missed`);
        when the stream is quiet, `status` tells whether the run is over. Its run_finished may
        still be on the way then: a mark, queued behind it, tells; only when the mark comes
        without it does a run_finished built from `status` (`"synthesized": True`) end the run.
        """
        after = 0
        if run_id is None:
            status = self.status()
            run_id = _run_id(status.get("current_run"))
            after = _run_id(status.get("last_run")) or 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = poll if deadline is None else min(poll, deadline - time.monotonic())
            if wait <= 0:
                raise ClientTimeoutError(f"the run did not finish within {timeout:g} s")
            event = stream.next(wait)
            if event is None:
                finished = self._finished_from_status(run_id, after)
                if finished is None:
                    continue
                # Everything published before `status` answered comes before a mark: read
                # on up to it, so that events on their way are shown, not replaced.
                if self._mark(stream, self.timeout) and stream.pending():
                    continue
                yield finished
                return
            rid = event.get("run_id")
            if run_id is None and isinstance(rid, int) and rid > after:
                run_id = rid  # the next run has begun
            if rid == run_id and run_id is not None:
                yield event
                if event.get("type") == "run_finished":
                    return

    def _finished_from_status(self, run_id: int | None, after: int) -> dict[str, Any] | None:
        status = self.status()
        current, last = status.get("current_run"), status.get("last_run")
        last_id = _run_id(last) or 0
        if run_id is None:
            run_id = last_id if last_id > after else None
        if run_id is None or last_id < run_id or _run_id(current) == run_id:
            return None
        fields = dict(last) if last_id == run_id and isinstance(last, dict) else {}
        fields.setdefault("status", "unknown")  # a later run already replaced it
        return {**fields, "v": protocol.PROTOCOL_VERSION, "type": "run_finished",
                "run_id": run_id, "synthesized": True}  # fmt: skip


class EventStream:
    """Signed events from the daemon's PUB socket, invalid ones skipped (counted in `skipped`),
    events lost on the way counted from the gaps in their `seq` (in `missed`), marks (answers to
    `mark` requests, this client's or another's) never returned."""

    def __init__(
        self, context: zmq.Context[Any], endpoint: str, key: bytes, connect: float | None = None
    ) -> None:
        self._key = key
        self.skipped = 0
        self.missed = 0
        self._seq: int | None = None  # of the last event received
        self._pending: collections.deque[dict[str, Any]] = collections.deque()
        self._socket = context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        # Watched from before the connection, for the fallback of daemons without `mark`.
        self._monitor: zmq.Socket[Any] | None = self._socket.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED
        )
        self._socket.connect(endpoint)
        if connect is not None:
            self.await_handshake(connect)
            self.stop_monitor()

    def await_handshake(self, wait: float) -> None:
        """Wait (at most `wait` s) for the connection's handshake: the subscription is sent
        then, but may still take effect later; events published meanwhile are lost."""
        if self._monitor is not None and self._monitor.poll(math.ceil(wait * 1000)):
            self._monitor.recv_multipart(zmq.NOBLOCK)

    def stop_monitor(self) -> None:
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(linger=0)
            self._monitor = None

    def await_mark(self, token: str, timeout: float) -> bool:
        """Whether the mark with `token` arrives within `timeout` s; the events that come
        before it are kept, in order, for `next`."""
        deadline = time.monotonic() + timeout
        while (event := self._receive(deadline - time.monotonic())) is not None:
            if event.get("type") != "mark":
                self._pending.append(event)
            elif event.get("token") == token:
                return True
        return False

    def pending(self) -> bool:
        """Whether events received already wait to be returned by `next`."""
        return bool(self._pending)

    def next(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next valid event, or None after `timeout` seconds (None: wait for ever)."""
        if self._pending:
            return self._pending.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            event = self._receive(wait)
            if event is not None and event.get("type") != "mark":
                return event
            if event is None and deadline is not None and time.monotonic() >= deadline:
                return None

    def _receive(self, wait: float) -> dict[str, Any] | None:
        """The next valid event, marks included, or None after `wait` seconds."""
        deadline = time.monotonic() + wait
        while (remaining := deadline - time.monotonic()) > 0:
            if not self._socket.poll(math.ceil(remaining * 1000)):
                return None
            frames = self._socket.recv_multipart(zmq.NOBLOCK)
            try:
                event = protocol.decode_event(self._key, frames)
            except protocol.ProtocolError:
                self.skipped += 1
                continue
            self._count_gap(event.get("seq"))
            return event
        return None

    def _count_gap(self, seq: object) -> None:
        if not isinstance(seq, int) or isinstance(seq, bool):
            return
        if self._seq is not None and seq > self._seq + 1:
            self.missed += seq - self._seq - 1
        self._seq = seq  # lower: the daemon restarted and counts from 1 again

    def close(self) -> None:
        self.stop_monitor()
        self._socket.close(linger=0)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# -- reply fields -----------------------------------------------------------------------------
def _field(result: dict[str, Any], key: str, kind: type, cmd: str) -> Any:
    value = result.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ProtocolError(f"the reply to '{cmd}' has no {kind.__name__} '{key}'")
    return value


def _run_id(run: object) -> int | None:
    value = run.get("run_id") if isinstance(run, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dtype(np: Any, text: object) -> Any:
    try:
        dtype = np.dtype(text) if isinstance(text, str) else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.hasobject or dtype.itemsize == 0:
        raise ProtocolError(f"unusable dtype {text!r} in the reply to 'fetch'")
    return dtype


def _shape(value: object) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or len(value) > 64:
        raise ProtocolError(f"unusable shape {value!r} in the reply to 'fetch'")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value):
        raise ProtocolError(f"unusable shape {value!r} in the reply to 'fetch'")
    return tuple(value)


def _array_from_buffer(np: Any, result: dict[str, Any], extra: list[bytes]) -> Any:
    dtype, shape = _dtype(np, result.get("dtype")), _shape(result.get("shape"))
    if len(extra) != 1:
        raise ProtocolError(f"a 'buffer' reply carries one data frame, this one {len(extra)}")
    data, nbytes = extra[0], result.get("nbytes")
    if nbytes != math.prod(shape) * dtype.itemsize or len(data) != nbytes:
        raise ProtocolError(
            f"a {dtype} array of shape {shape} is {math.prod(shape) * dtype.itemsize} bytes; "
            f"the reply says {nbytes!r} and carries {len(data)}"
        )
    digest = result.get("sha256")
    # The data frame is not signed itself: the signed payload's digest vouches for it.
    if not isinstance(digest, str) or not hmac.compare_digest(
        hashlib.sha256(data).hexdigest(), digest
    ):
        raise ProtocolError("the array's bytes do not match the digest of the signed reply")
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _array_from_file(np: Any, name: str, result: dict[str, Any]) -> Any:
    """The array in the payload file the daemon names, believed only if the file is the user's
    own, has the size recorded and its content the checksum recorded when it was stored: a
    file changed on disk since is refused, though the daemon may still hold the right value."""
    path, kind = result.get("path"), result.get("format")
    if not isinstance(path, str) or not path:
        raise ProtocolError("a 'file' reply to 'fetch' names no path")
    if "checksum" not in result:
        raise ProtocolError(f"the daemon sent no checksum for {path}; refusing it unchecked")
    try:
        info = trust.check_payload_file(Path(path))
    except trust.UntrustedFileError as err:
        raise UntrustedFileError(str(err)) from None
    except OSError as err:
        raise ClientError(f"cannot read '{name}' from {path}: {err.strerror or err}") from None
    size = result.get("size")
    if size is not None and info.st_size != size:
        raise UntrustedFileError(pickles.altered(name, path, f"{info.st_size} bytes, not {size}"))
    array = _read_payload(np, name, path, kind)
    if "dtype" in result and np.dtype(array.dtype) != _dtype(np, result["dtype"]):
        raise ProtocolError(f"{path} holds {array.dtype}, the daemon said {result['dtype']}")
    if "shape" in result and tuple(array.shape) != _shape(result["shape"]):
        raise ProtocolError(f"{path} holds shape {array.shape}, the daemon said {result['shape']}")
    _check_content(np, name, path, array, result["checksum"])
    return array


def _read_payload(np: Any, name: str, path: str, kind: object) -> Any:
    """The whole array, in memory: a memory map would let later changes to the file through."""
    if kind == "npy":
        return np.load(path, allow_pickle=False)
    if kind != "hdf5":
        raise ProtocolError(f"unknown payload format {kind!r} in the reply to 'fetch'")
    try:
        import h5py
    except ImportError:
        raise ClientError(
            f"'{name}' is stored as HDF5 ({path}); reading it needs h5py: pip install h5py"
        ) from None
    with h5py.File(path, "r") as handle:
        if not isinstance(handle.get("data"), h5py.Dataset):  # e.g. a pickled object array
            raise ProtocolError(f"{path} holds no 'data' dataset that can be read safely")
        return handle["data"][()]


def _check_content(np: Any, name: str, path: str, array: Any, checksum: object) -> None:
    """UntrustedFileError unless `array` has the content hash recorded at commit. None: the
    store records none for this payload (an hdf_array, larger than memory): size only."""
    if checksum is None:
        return
    if not isinstance(checksum, dict) or checksum.get("algorithm") != CHECKSUM_ALGORITHM:
        raise ProtocolError(f"unknown checksum {checksum!r} in the reply to 'fetch'")
    try:
        import xxhash
    except ImportError:
        raise ClientError(
            f"checking '{name}' against its checksum needs xxhash: pip install xxhash"
        ) from None
    hasher = xxhash.xxh3_128()
    hasher.update(f"{array.dtype.str}|{tuple(array.shape)}|".encode())
    hasher.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    digest = checksum.get("digest")
    if not isinstance(digest, str) or not hmac.compare_digest(hasher.hexdigest(), digest):
        raise UntrustedFileError(pickles.altered(name, path, "its content is not what was stored"))
