"""The daemon's ZeroMQ endpoint: a ROUTER socket answering signed requests and a PUB socket
streaming events, both on loopback only, served by one thread so that clients get answers
while reactors compute on the main thread.

Only the engine changes plant state: commands that act (run, cancel, invalidate, shutdown) go
to the engine's inbox; the others read what the engine publishes. Messages: see
pyplant_client.protocol. Unauthenticated input gets no reply; malformed input one error reply.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from pyplant_client import protocol

from .. import __version__

logger = logging.getLogger(__name__)

_EVENTS_INPROC = "inproc://pyplantd-events"
_MAX_IPC_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS


class BadArgumentsError(Exception):
    """A well-formed request whose arguments do not fit its command."""


Handler = Callable[[dict[str, Any]], dict[str, Any] | tuple[dict[str, Any], list[bytes]]]


class Server:
    def __init__(
        self, runtime: Path, handlers: dict[str, Handler], pipeline: Path, tcp: bool = False,
        limit: int = protocol.MAX_MESSAGE_BYTES,
    ) -> None:  # fmt: skip
        self.runtime, self.handlers, self.limit = runtime, handlers, limit
        self.key = protocol.new_key()
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.pub = self.context.socket(zmq.PUB)
        self.pull = self.context.socket(zmq.PULL)
        for socket in (self.router, self.pub, self.pull):
            socket.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.MAXMSGSIZE, limit)  # larger input drops that peer, not us
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)  # a gone client's reply is dropped
        self.pull.bind(_EVENTS_INPROC)
        request, events = self._bind(tcp)
        self.info = protocol.ConnectionInfo(
            request, events, self.key, os.getpid(), protocol.process_start_time(os.getpid()),
            pipeline=str(pipeline), pyplantd_version=__version__,
        )  # fmt: skip
        self.connection_file = self.info.write(runtime)
        self.guard = protocol.ReplayGuard()
        self.unauthenticated = 0
        self.malformed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pushers: dict[int, zmq.Socket[bytes]] = {}
        self._push_lock = threading.Lock()
        self._seq = 0

    def _bind(self, tcp: bool) -> tuple[str, str]:
        request_path, events_path = self.runtime / "request.sock", self.runtime / "events.sock"
        if not tcp and len(str(request_path)) < _MAX_IPC_PATH:
            for path in (request_path, events_path):
                path.unlink(missing_ok=True)  # left by a daemon that died
            self.router.bind(f"ipc://{request_path}")
            self.pub.bind(f"ipc://{events_path}")
            for path in (request_path, events_path):
                os.chmod(path, 0o600)
            return f"ipc://{request_path}", f"ipc://{events_path}"
        request_port = self.router.bind_to_random_port("tcp://127.0.0.1")
        events_port = self.pub.bind_to_random_port("tcp://127.0.0.1")
        return f"tcp://127.0.0.1:{request_port}", f"tcp://127.0.0.1:{events_port}"

    # -- lifetime ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="pyplantd-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._push_lock:
            for socket in self._pushers.values():
                socket.close(0)
            self._pushers.clear()
        for socket in (self.router, self.pub, self.pull):
            socket.close(0)
        self.context.term()
        self.connection_file.unlink(missing_ok=True)
        for name in ("request.sock", "events.sock"):
            (self.runtime / name).unlink(missing_ok=True)

    # -- events (any thread) ----------------------------------------------------------------
    def publish(self, kind: str, fields: dict[str, Any]) -> None:
        """Queue an event for the PUB socket; ZeroMQ sockets belong to one thread each."""
        ident = threading.get_ident()
        with self._push_lock:
            if self._stop.is_set():
                return
            pusher = self._pushers.get(ident)
            if pusher is None:
                pusher = self.context.socket(zmq.PUSH)
                pusher.setsockopt(zmq.LINGER, 0)
                pusher.connect(_EVENTS_INPROC)
                self._pushers[ident] = pusher
        pusher.send_json({"type": kind, "fields": fields})

    # -- the server thread ------------------------------------------------------------------
    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.pull, zmq.POLLIN)
        while not self._stop.is_set():
            try:
                ready = dict(poller.poll(100))
                if self.router in ready:
                    self._answer(self.router.recv_multipart())
                if self.pull in ready:
                    self._forward_events()
            except zmq.ZMQError as err:
                if self._stop.is_set():
                    return
                logger.warning("control endpoint: %s", err)
            except Exception:  # a bug in a handler must not end the endpoint
                logger.exception("control endpoint")

    def _forward_events(self) -> None:
        while True:
            try:
                event: dict[str, Any] = self.pull.recv_json(zmq.NOBLOCK)  # type: ignore[assignment]
            except zmq.Again:
                return
            self._seq += 1
            key = self.key.encode()
            self.pub.send_multipart(
                protocol.encode_event(key, self._seq, event["type"], event["fields"])
            )

    def _answer(self, frames: list[bytes]) -> None:
        identity, rest = frames[0], frames[1:]
        try:
            request = protocol.decode_request(self.key.encode(), rest, self.guard, self.limit)
        except protocol.UnauthenticatedError:
            self.unauthenticated += 1  # no reply: an unauthenticated peer learns nothing
            return
        except protocol.ProtocolError as err:
            self.malformed += 1
            self._send(
                identity, protocol.encode_error(self.key.encode(), "", "Malformed", str(err))
            )
            return
        self._send(identity, self._dispatch(request))

    def _dispatch(self, request: protocol.Request) -> list[bytes]:
        key = self.key.encode()
        handler = self.handlers.get(request.cmd)
        if handler is None:
            self.malformed += 1
            known = ", ".join(sorted(self.handlers))
            message = f"unknown command '{request.cmd}' (known: {known})"
            return protocol.encode_error(key, request.id, "UnknownCommand", message)
        try:
            result = handler(request.args)
        except BadArgumentsError as err:
            self.malformed += 1
            return protocol.encode_error(key, request.id, "BadArguments", str(err))
        except Exception as err:
            logger.exception("command %s", request.cmd)
            return protocol.encode_error(key, request.id, type(err).__name__, str(err))
        extra: list[bytes] = []
        if isinstance(result, tuple):
            result, extra = result
        return protocol.encode_reply(key, request.id, result) + extra

    def _send(self, identity: bytes, frames: list[bytes]) -> None:
        with contextlib.suppress(zmq.ZMQError):  # a slow or gone client does not block us
            self.router.send_multipart([identity, *frames], zmq.NOBLOCK)
