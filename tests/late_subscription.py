"""A link to a daemon's event socket on which subscriptions arrive late: a forwarder on
127.0.0.1 that passes the ZeroMQ handshake at once (the subscriber sees it succeed) and holds
what the subscriber sends after it (its subscription) for `delay` seconds, as a loaded machine
can. Events published meanwhile are lost for that subscriber, which is the race to test.

`redirect_events(root, delay)` points the project's connection file at such a link.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pyplant_client import protocol

_GREETING_BYTES = 64  # ZMTP 3: signature, version, mechanism, as-server, filler
_CHUNK = 65536


class LateSubscriptionLink:
    """Listens on 127.0.0.1; each connection is forwarded to `target` (a daemon's events
    endpoint), the subscriber's bytes after its greeting and first command held `delay` s."""

    def __init__(self, target: str, delay: float) -> None:
        self.target, self.delay = target, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self._sockets: list[socket.socket] = [self.listener]
        self._threads: list[threading.Thread] = []
        self._start(self._accept)

    def _start(self, target: Callable[..., None], *args: socket.socket) -> None:
        thread = threading.Thread(target=target, args=args, name="late-link", daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        for sock in self._sockets:  # shutdown wakes a thread blocked in accept or recv
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in list(self._threads):
            thread.join(10)
        for sock in self._sockets:
            sock.close()

    def _connect_target(self) -> socket.socket:
        if self.target.startswith("ipc://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.target.removeprefix("ipc://"))
            return sock
        host, port = self.target.removeprefix("tcp://").rsplit(":", 1)
        return socket.create_connection((host, int(port)), timeout=10)

    def _accept(self) -> None:
        while True:
            try:
                subscriber, _ = self.listener.accept()
            except OSError:
                return  # closed
            daemon = self._connect_target()
            daemon.settimeout(None)
            self._sockets += [subscriber, daemon]
            self.connections += 1
            self._start(_copy, daemon, subscriber)
            self._start(self._hold, subscriber, daemon)

    def _hold(self, subscriber: socket.socket, daemon: socket.socket) -> None:
        """Forward the greeting and the first command (READY) at once, the rest late."""
        buffer, sent = b"", 0
        # The greeting goes out as it comes (each side sends part of it, then awaits the
        # other's): until the first command is whole, every byte belongs to the handshake.
        while (handshake := _handshake_length(buffer)) is None:
            daemon.sendall(buffer[sent:])
            sent = len(buffer)
            chunk = _recv(subscriber)
            if not chunk:
                return
            buffer += chunk
        daemon.sendall(buffer[sent:handshake])
        sent = handshake
        rest, until = buffer[sent:], time.monotonic() + self.delay
        subscriber.settimeout(0.01)
        while time.monotonic() < until:  # read on meanwhile, so that nothing blocks
            with contextlib.suppress(TimeoutError):
                chunk = _recv(subscriber)
                if not chunk:
                    return
                rest += chunk
        subscriber.settimeout(None)
        daemon.sendall(rest)
        _copy(subscriber, daemon)


def _handshake_length(buffer: bytes) -> int | None:
    """Bytes of the greeting and the first frame after it, once `buffer` holds them all."""
    at = _GREETING_BYTES
    if len(buffer) < at + 2:
        return None
    flags = buffer[at]
    if flags & 0x02:  # a long frame: 8 bytes of size
        if len(buffer) < at + 9:
            return None
        size, header = int.from_bytes(buffer[at + 1 : at + 9], "big"), 9
    else:
        size, header = buffer[at + 1], 2
    end = at + header + size
    return end if len(buffer) >= end else None


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(_CHUNK)
    except TimeoutError:
        raise
    except OSError:
        return b""


def _copy(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(_CHUNK):
            sink.sendall(chunk)
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def redirect_events(root: Path, delay: float) -> Iterator[LateSubscriptionLink]:
    """Point the connection file in `root` at a late-subscription link to its daemon's events
    (the file is rewritten as the daemon writes it: atomically, owner-only)."""
    runtime = root / protocol.RUNTIME_DIR
    info = protocol.ConnectionInfo.read(runtime / protocol.CONNECTION_FILE)
    link = LateSubscriptionLink(info.events, delay)
    try:
        dataclasses.replace(info, events=link.endpoint).write(runtime)
        yield link
    finally:
        link.close()
