"""Multipart messages in and out of a ZeroMQ socket, for the daemon and its clients.

pyzmq's `send_multipart` combines enum flags with a Python-level `|` per frame, and
`recv_multipart` looks an option up in an enum per frame (`getsockopt(RCVMORE)`): a few
microseconds of a ping round trip that bare pyzmq does in about fifty. These do the same with
plain ints and with the "more" bit that `recv(copy=False)` reads along with each frame.
"""

from __future__ import annotations

from typing import Any

import zmq

NOBLOCK = int(zmq.NOBLOCK)
_MORE = int(zmq.SNDMORE)


def send_frames(socket: zmq.Socket[Any], frames: list[bytes], flags: int = 0) -> None:
    """Send `frames` as one message (`flags`: 0 or NOBLOCK); ZMQError as `send` raises it."""
    send = socket.send
    for frame in frames[:-1]:
        send(frame, flags | _MORE)
    send(frames[-1], flags)


def recv_frames(socket: zmq.Socket[Any], flags: int = 0) -> list[bytes]:
    """Receive one whole message (ZeroMQ delivers its frames together); zmq.Again as `recv`."""
    frame = socket.recv(flags, copy=False)
    frames = [frame.bytes]
    while frame.more:
        frame = socket.recv(flags, copy=False)
        frames.append(frame.bytes)
    return frames
