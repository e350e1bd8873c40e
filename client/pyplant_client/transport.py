"""Multipart messages in and out of a ZeroMQ socket, for the daemon and its clients.

pyzmq's `send_multipart` combines enum flags with a Python-level `|` per frame and goes through
`Socket.send`, a Python wrapper (for draft sockets' routing_id and group) around the backend's
send; `recv_multipart` looks an option up in an enum per frame (`getsockopt(RCVMORE)`). Each is
a fraction of a microsecond, but a ping round trip that bare pyzmq does in about fifty pays
them a dozen times, on caches other threads have just used. These do the same with plain ints,
the backend's send, and the "more" bit that `recv(copy=False)` reads along with each frame.
"""

from __future__ import annotations

from typing import Any

import zmq

NOBLOCK = int(zmq.NOBLOCK)
_MORE = int(zmq.SNDMORE)
_send = zmq.backend.Socket.send


def send_frames(socket: zmq.Socket[Any], frames: list[bytes], flags: int = 0) -> None:
    """Send `frames` as one message (`flags`: 0 or NOBLOCK); ZMQError as `send` raises it."""
    for frame in frames[:-1]:
        _send(socket, frame, flags | _MORE)
    _send(socket, frames[-1], flags)


def recv_frames(socket: zmq.Socket[Any], flags: int = 0) -> list[bytes]:
    """Receive one whole message (ZeroMQ delivers its frames together); zmq.Again as `recv`."""
    frame = socket.recv(flags, copy=False)
    frames = [frame.bytes]
    while frame.more:
        frame = socket.recv(flags, copy=False)
        frames.append(frame.bytes)
    return frames
