"""The daemon's ZeroMQ endpoint: a ROUTER socket answering signed requests and a PUB socket
streaming events, both on loopback only, each served by its own thread so that clients get
answers while reactors compute on the main thread.

The request thread blocks in the ROUTER's receive itself (no poller), so that a request's path
is receive, verify, dispatch, send. Events from any thread are signed where they are published,
in order, and sent from there when nothing waits to be sent before them and no signal handler
can cut the message in two (a reactor's result reaches clients without waiting for another
thread to be scheduled); otherwise they are queued for the event thread. The PUB socket is used
under one lock, by one thread at a time.

Only the engine changes plant state: commands that act (run, cancel, invalidate, shutdown) go
to the engine's inbox; the others read what the engine publishes. Messages: see
pyplant_client.protocol. Unauthenticated input gets no reply; malformed input one error reply.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import zmq
from pyplant_client import protocol
from pyplant_client.transport import NOBLOCK, recv_frames, send_frames

from .. import __version__
from ..errors import BadArgumentsError
from .bus import Kind

logger = logging.getLogger(__name__)

# sun_path holds 108 bytes on Linux, 104 on macOS, its NUL included: bytes, not characters
_MAX_IPC_PATH_BYTES = 103
_STOP_CHECK_MS = 100  # the request thread looks at the stop flag this often when idle
_MAX_QUEUED_EVENTS = 10_000  # beyond, events are dropped (as PUB drops for slow subscribers)
# Printed lines come in floods: they always go through the event thread, which sends them
# while the run goes on; other events are few, and a client may be waiting for each.
_ALWAYS_QUEUED = frozenset({Kind.log.value})
# Python runs signal handlers in the main thread, between instructions and inside pyzmq's
# send: one that raises there leaves a message cut, and its rest glued to the next one.
_SIGNALS = tuple(sorted(set(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP}))
_NOT_PYTHON = (signal.SIG_DFL, signal.SIG_IGN, None)  # handlers that run no Python code


Handler = Callable[[dict[str, Any]], dict[str, Any] | tuple[dict[str, Any], list[bytes]]]


class Server:
    def __init__(
        self, runtime: Path, handlers: dict[str, Handler], pipeline: Path, tcp: bool = False,
        limit: int = protocol.MAX_MESSAGE_BYTES, on_notice: Callable[[str], None] | None = None,
        quiet_handlers: Iterable[object] = (),
    ) -> None:  # fmt: skip
        """`quiet_handlers`: signal handlers that never raise in pyplantd's own code (the
        daemon's); while only they and no other Python handler are installed, the main thread
        sends events itself."""
        self.runtime, self.limit = runtime, limit
        self.handlers = {**handlers, "mark": self._mark}
        self._notice = on_notice or logger.warning
        self.key = protocol.new_key()
        self.context = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.pub = self.context.socket(zmq.PUB)
        for socket in (self.router, self.pub):
            socket.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.MAXMSGSIZE, limit)  # larger input drops that peer, not us
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)  # a gone client's reply is dropped
        self.router.setsockopt(zmq.RCVTIMEO, _STOP_CHECK_MS)
        request, events = self._bind(tcp)
        self.info = protocol.ConnectionInfo(
            request, events, self.key, os.getpid(), protocol.process_start_time(os.getpid()),
            pipeline=str(pipeline), pyplantd_version=__version__,
        )  # fmt: skip
        self.connection_file = self.info.write(runtime)
        self.guard = protocol.ReplayGuard()
        self.unauthenticated = 0
        self.malformed = 0
        self.events_dropped = 0
        self._key_bytes = self.key.encode()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # Signed event frames with their `seq`, in that order; None tells the event thread to end.
        self._events: queue.SimpleQueue[tuple[int, list[bytes]] | None] = queue.SimpleQueue()
        # Guards `seq`, what was queued and sent, and the PUB socket itself.
        self._pub_lock = threading.Lock()
        self._sent = threading.Condition(self._pub_lock)  # notified as events leave
        self._seq = 0
        self._queued = 0  # the `seq` of the last event queued or sent, and of the last one sent
        self._sent_seq = 0
        self._quiet = frozenset([*_NOT_PYTHON, *quiet_handlers])
        self._main = threading.main_thread().ident

    def _bind(self, tcp: bool) -> tuple[str, str]:
        """Unix sockets in the runtime dir; tcp on 127.0.0.1 when asked, or, saying why, when
        the runtime dir's path is too long for a Unix socket or one cannot be made there."""
        reason = ""
        if not tcp:
            paths = (self.runtime / "request.sock", self.runtime / "events.sock")
            longest = max(len(os.fsencode(path)) for path in paths)
            if longest > _MAX_IPC_PATH_BYTES:
                reason = (
                    f"the path of {paths[0]} is {longest} bytes, over the "
                    f"{_MAX_IPC_PATH_BYTES} a Unix socket can have"
                )
            else:
                try:
                    return self._bind_ipc(paths)
                except (zmq.ZMQError, OSError) as err:
                    reason = f"no Unix socket could be made in {self.runtime} ({err})"
        request = f"tcp://127.0.0.1:{self.router.bind_to_random_port('tcp://127.0.0.1')}"
        events = f"tcp://127.0.0.1:{self.pub.bind_to_random_port('tcp://127.0.0.1')}"
        if reason:
            self._notice(f"serving clients on {request} instead of a Unix socket: {reason}")
        return request, events

    def _bind_ipc(self, paths: tuple[Path, Path]) -> tuple[str, str]:
        endpoints = (f"ipc://{paths[0]}", f"ipc://{paths[1]}")
        bound: list[tuple[zmq.Socket[Any], str]] = []
        try:
            for socket, path, endpoint in zip(
                (self.router, self.pub), paths, endpoints, strict=True
            ):
                path.unlink(missing_ok=True)  # left by a daemon that died (a link: only it goes)
                socket.bind(endpoint)
                bound.append((socket, endpoint))
                os.chmod(path, 0o600)  # in our own 0700 dir: nobody else can swap it meanwhile
        except (zmq.ZMQError, OSError):
            for socket, endpoint in bound:
                with contextlib.suppress(zmq.ZMQError):
                    socket.unbind(endpoint)
            raise
        return endpoints

    # -- lifetime ---------------------------------------------------------------------------
    def start(self) -> None:
        for target, name in ((self._serve, "pyplantd-server"), (self._stream, "pyplantd-events")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        with self._pub_lock:  # no event is being sent from another thread meanwhile
            self._stop.set()
        self._events.put(None)
        for thread in self._threads:
            thread.join(5)
        with self._pub_lock:
            for socket in (self.router, self.pub):
                socket.close(0)
        self.context.term()
        self.connection_file.unlink(missing_ok=True)
        for name in ("request.sock", "events.sock"):
            (self.runtime / name).unlink(missing_ok=True)

    # -- events (any thread) ----------------------------------------------------------------
    def publish(self, kind: str, fields: dict[str, Any]) -> None:
        """Sign the event here, in publishing order, and send it at once if every earlier
        event has left (never a printed line: see _ALWAYS_QUEUED), else queue it for the event
        thread. Never blocks the caller (the engine) for longer than a non-blocking send."""
        with self._pub_lock:
            if self._stop.is_set():
                return
            try:
                frames = protocol.encode_event(self._key_bytes, self._seq + 1, kind, fields)
            except (TypeError, ValueError):  # not JSON: a bug to report, never the run's end
                logger.exception("event %s", kind)
                return
            self._seq += 1  # a dropped event leaves a gap in `seq` that subscribers can see
            if self._sent_seq == self._queued and kind not in _ALWAYS_QUEUED and self._uncut():
                self._queued = self._sent_seq = self._seq
                self._send_event(frames)
                return
            if self._events.qsize() >= _MAX_QUEUED_EVENTS:
                self.events_dropped += 1
                return
            self._queued = self._seq
            self._events.put((self._seq, frames))

    def _uncut(self) -> bool:
        """Whether this thread can send a message with no signal handler raising half-way:
        any thread but the main one, and the main one while every Python handler installed
        is a quiet one (only the main thread can install one, so none comes meanwhile)."""
        return threading.get_ident() != self._main or self._quiet.issuperset(
            map(signal.getsignal, _SIGNALS)
        )

    def _send_event(self, frames: list[bytes]) -> None:
        """Send one event's frames (caller holds _pub_lock)."""
        try:
            send_frames(self.pub, frames, NOBLOCK)
        except zmq.ZMQError as err:  # PUB drops rather than blocks; this is unexpected
            logger.warning("event stream: %s", err)

    def wait_sent(self, timeout: float) -> bool:
        """Wait until every event published so far is handed to the PUB socket (or the
        server stops); False if `timeout` passed first. The engine calls it before work that
        holds the interpreter lock for long (a full garbage collection), which would
        otherwise keep a reactor's result from clients."""
        with self._sent:
            return self._sent.wait_for(
                lambda: self._sent_seq >= self._queued or self._stop.is_set(), timeout
            )

    def _mark(self, args: dict[str, Any]) -> dict[str, Any]:
        """Publish a `mark` event with the caller's token: a subscriber that sees it knows its
        subscription is live (queued behind every event published before this request)."""
        self.publish(Kind.mark.value, {"token": args["token"]})
        return {}

    def _stream(self) -> None:
        while (queued := self._events.get()) is not None:
            seq, frames = queued
            with self._sent:
                if not self._stop.is_set():
                    self._send_event(frames)
                self._sent_seq = seq
                if seq >= self._queued:  # all out: whoever waits for that (not per event)
                    self._sent.notify_all()
        with self._sent:  # stopped: nobody waits for the rest
            self._sent.notify_all()

    # -- the request thread -----------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                frames = recv_frames(self.router)
            except zmq.Again:  # no request within _STOP_CHECK_MS
                continue
            except zmq.ZMQError as err:
                if self._stop.is_set():
                    return
                logger.warning("control endpoint: %s", err)
                continue
            try:
                self._answer(frames)
            except Exception:  # a bug in a handler must not end the endpoint
                logger.exception("control endpoint")

    def _answer(self, frames: list[bytes]) -> None:
        identity = frames[0]
        try:
            request = protocol.decode_request(self._key_bytes, frames[1:], self.guard, self.limit)
        except protocol.UnauthenticatedError:
            self.unauthenticated += 1  # no reply: an unauthenticated peer learns nothing
            return
        except protocol.MalformedRequestError as err:
            self.malformed += 1
            reply = protocol.encode_error(self._key_bytes, err.request_id, err.kind, str(err))
            self._send(identity, reply)
            return
        self._send(identity, self._dispatch(request))

    def _dispatch(self, request: protocol.Request) -> list[bytes]:
        key = self._key_bytes
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
        try:
            return protocol.encode_reply(key, request.id, result) + extra
        except (TypeError, ValueError, OverflowError):
            # Every request gets its reply: one that cannot be encoded becomes an error that
            # says what, not silence that the client would blame on a stuck daemon.
            what = protocol.unencodable(result, "the result")
            logger.warning("reply to %s: %s", request.cmd, what)
            message = f"the reply to '{request.cmd}' cannot be sent as JSON: {what}"
            return protocol.encode_error(key, request.id, "Unencodable", message)

    def _send(self, identity: bytes, frames: list[bytes]) -> None:
        # Never waits: a slow or gone client's reply is dropped (ROUTER drops what it cannot
        # route or queue), so one client cannot stall the others.
        with contextlib.suppress(zmq.ZMQError):
            send_frames(self.router, [identity, *frames], NOBLOCK)
