"""The endpoint's Server in this process: its request thread, its event thread, its stop."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from pyplant_client import protocol

from pyplantd.daemon.server import Server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, {"ping": lambda args: {"pong": True}}, tmp_path / "pipeline.py")
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.destroy(0)


def subscriber(context: zmq.Context[Any], server: Server) -> zmq.Socket[bytes]:
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.SUBSCRIBE, b"")
    socket.connect(server.info.events)
    # PUB/SUB connect in the background: publish until the first event arrives.
    deadline = time.monotonic() + 10
    while not socket.poll(20):
        assert time.monotonic() < deadline, "the subscriber never connected"
        server.publish("log", {"reactor": "probe", "text": ""})
    while socket.poll(100):
        socket.recv_multipart()
    return socket


def events(socket: zmq.Socket[bytes], key: bytes, count: int) -> list[dict[str, Any]]:
    received = []
    for _ in range(count):
        assert socket.poll(5000), f"{len(received)} of {count} events arrived"
        received.append(protocol.decode_event(key, socket.recv_multipart()))
    return received


def published_from_threads(
    publish: Callable[[str], None], socket: zmq.Socket[bytes], server: Server, count: int
) -> list[dict[str, Any]]:
    """`publish(name)` run by four threads at once (t0..t3); the `count` events received."""
    threads = [threading.Thread(target=publish, args=(f"t{k}",)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return events(socket, server.key.encode(), count)


def test_events_from_many_threads_arrive_signed_and_in_seq_order(server, context):
    socket = subscriber(context, server)

    def publish(name: str) -> None:
        for i in range(200):
            server.publish("log", {"reactor": name, "text": str(i)})

    received = published_from_threads(publish, socket, server, 800)
    seqs = [event["seq"] for event in received]
    assert seqs == sorted(seqs) and len(set(seqs)) == 800
    for k in range(4):  # each thread's events in the order it published them
        texts = [e["text"] for e in received if e["reactor"] == f"t{k}"]
        assert texts == [str(i) for i in range(200)]


def test_an_event_that_is_not_json_is_dropped_and_the_next_one_goes(server, context, caplog):
    socket = subscriber(context, server)
    server.publish("run_finished", {"run_id": 1, "duration": math.nan})  # no exception
    server.publish("run_finished", {"run_id": 2, "duration": 1.0})
    (event,) = events(socket, server.key.encode(), 1)
    assert event["run_id"] == 2
    assert "event run_finished" in caplog.text
    assert not socket.poll(100)


def test_requests_are_answered_by_the_request_thread(server, context):
    socket = context.socket(zmq.DEALER)
    socket.connect(server.info.request)
    key = server.key.encode()
    for _ in range(50):
        socket.send_multipart(protocol.encode_request(key, "ping"))
        assert socket.poll(5000)
        assert protocol.decode_reply(key, socket.recv_multipart())["result"] == {"pong": True}
    socket.send_multipart(protocol.encode_request(b"another key", "ping"))
    assert not socket.poll(300)
    assert server.unauthenticated == 1


def test_stop_is_prompt_and_removes_the_connection_file_and_sockets(tmp_path):
    server = Server(tmp_path, {}, tmp_path / "pipeline.py")
    server.start()
    server.publish("log", {"reactor": "r", "text": "before stop"})
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("pyplantd-"))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    server.publish("log", {"reactor": "r", "text": "after stop"})  # ignored, no error


def test_mark_is_published_after_every_event_published_before_the_request(server, context):
    socket = subscriber(context, server)
    requests = context.socket(zmq.DEALER)
    requests.connect(server.info.request)
    key = server.key.encode()
    for i in range(100):
        server.publish("log", {"reactor": "load", "text": str(i)})
    requests.send_multipart(protocol.encode_request(key, "mark", {"token": "ab12"}))
    assert requests.poll(5000)
    assert protocol.decode_reply(key, requests.recv_multipart())["result"] == {}
    received = events(socket, key, 101)  # signed like every event, in seq order
    assert [e["type"] for e in received] == ["log"] * 100 + ["mark"]
    assert received[-1]["token"] == "ab12"
    assert [e["seq"] for e in received] == list(range(received[0]["seq"], received[0]["seq"] + 101))


def test_events_sent_at_once_never_overtake_queued_ones(server, context):
    """A result event is sent by its publisher when nothing waits before it; printed lines
    always queue: published together from many threads, they still arrive complete and in
    `seq` order, each thread's in its own order."""
    socket = subscriber(context, server)

    def publish(name: str) -> None:
        for i in range(100):
            server.publish("log", {"reactor": name, "text": str(i)})
            server.publish("reactor_finished", {"reactor": name, "result": str(i)})

    received = published_from_threads(publish, socket, server, 800)
    seqs = [event["seq"] for event in received]
    assert seqs == list(range(seqs[0], seqs[0] + 800))
    for k in range(4):
        theirs = [e for e in received if e["reactor"] == f"t{k}"]
        mine = [(e["type"], e.get("text", e.get("result"))) for e in theirs]
        assert mine == [(kind, str(i)) for i in range(100) for kind in ("log", "reactor_finished")]


class AlarmError(Exception):
    pass


def test_a_signal_handler_raising_while_events_are_sent_never_cuts_a_message(server, context):
    """The main thread sends result events itself: a Python signal handler that raises (the
    user's alarm, say) can stop it between any two instructions, never between the frames
    of a message, whose remainder would then be glued to the next one."""
    socket = subscriber(context, server)
    key = server.key.encode()

    # The handler raises only while a publish is under way (armed), and disarms itself, so an
    # alarm landing on the loop's own bookkeeping can never escape the test's try.
    armed = [False]

    def interrupt(signum: int, frame: Any) -> None:
        if armed[0]:
            armed[0] = False
            raise AlarmError

    previous = signal.signal(signal.SIGALRM, interrupt)
    published = interruptions = 0
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
        # At least 400 messages and 5 interruptions, within what the sockets' queues hold
        # (1000 each side) so nothing is dropped before the subscriber reads.
        while (published < 400 or interruptions < 5) and published < 1500:
            try:
                armed[0] = True
                server.publish("reactor_finished", {"reactor": "r", "result": "ran"})
                armed[0] = False
                published += 1
            except AlarmError:
                interruptions += 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, previous)
    assert interruptions > 0  # the handler did run in the middle of publishing
    messages = []
    while socket.poll(500):
        messages.append(socket.recv_multipart())
    assert len(messages) >= published
    for frames in messages:  # each one whole: three frames, signed, decodable
        assert protocol.decode_event(key, frames)["type"] == "reactor_finished"


def test_wait_sent_returns_once_every_event_published_has_left(server, context):
    socket = subscriber(context, server)
    for i in range(600):  # printed lines: all queued for the event thread (fewer than HWM)
        server.publish("log", {"reactor": "r", "text": str(i)})
    assert server.wait_sent(30)
    received = events(socket, server.key.encode(), 600)
    assert [e["text"] for e in received] == [str(i) for i in range(600)]
