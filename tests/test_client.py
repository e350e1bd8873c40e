"""The client (`pyplant_client`): against small misbehaving daemons in a thread (a ROUTER and an
XPUB socket speaking protocol.py), its `pyplant` CLI, the editor integrations' patterns, its
packaging boundaries, and a few end-to-end runs against a real `pyplantd watch`.
"""

from __future__ import annotations

import json
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from conftest import REPO
from foreign_user import OTHER_USER, as_other, shared_dir
from pyplant_client import (
    Client,
    ClientError,
    ClientTimeoutError,
    DaemonNotRunningError,
    ProtocolError,
    UntrustedFileError,
    protocol,
    trust,
)
from pyplant_client.cli import app, event_line
from typer.testing import CliRunner

CLIENT = REPO / "client"
EDITORS = CLIENT / "editors"
# An answer is a result, the frames of one reply, several replies, or None (no reply at all).
Answer = Callable[[protocol.Request], "dict[str, Any] | list[bytes] | list[list[bytes]] | None"]


# -- a fake daemon ----------------------------------------------------------------------------
class FakeDaemon:
    """A daemon peer in a thread: answers what `answers` says (a result, raw frames, or nothing),
    publishes queued events once a subscriber is there, records the requests it read."""

    def __init__(self, runtime: Path, **info: Any) -> None:
        self.key = protocol.new_key()
        self.context: zmq.Context[Any] = zmq.Context()
        self.router = self.context.socket(zmq.ROUTER)
        self.xpub = self.context.socket(zmq.XPUB)
        for socket in (self.router, self.xpub):
            socket.setsockopt(zmq.LINGER, 0)
        request = self.router.bind_to_random_port("tcp://127.0.0.1")
        events = self.xpub.bind_to_random_port("tcp://127.0.0.1")
        pid = os.getpid()
        self.info = protocol.ConnectionInfo(
            **{
                "request": f"tcp://127.0.0.1:{request}",
                "events": f"tcp://127.0.0.1:{events}",
                "key": self.key,
                "pid": pid,
                "process_start": protocol.process_start_time(pid),
                **info,
            }
        )
        runtime.mkdir(parents=True, exist_ok=True)
        self.path = self.info.write(runtime)
        self.answers: dict[str, Answer] = {"ping": lambda request: {"pong": True},
                                           "mark": self._mark}  # fmt: skip
        self.requests: list[protocol.Request] = []
        self.subscribed = threading.Event()
        self._events: queue.Queue[list[bytes]] = queue.Queue()
        self._seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-daemon")
        self._thread.start()

    @property
    def secret(self) -> bytes:
        return self.key.encode()

    def reply(self, request: protocol.Request, result: dict[str, Any]) -> list[bytes]:
        return protocol.encode_reply(self.secret, request.id, result)

    def publish(self, kind: str, **fields: Any) -> None:
        self._seq += 1
        self._events.put(protocol.encode_event(self.secret, self._seq, kind, fields))

    def _mark(self, request: protocol.Request) -> dict[str, Any]:
        self.publish("mark", token=request.args["token"])  # as the real daemon does
        return {}

    def publish_raw(self, frames: list[bytes]) -> None:
        self._events.put(frames)

    def _serve(self) -> None:
        guard = protocol.ReplayGuard()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.xpub, zmq.POLLIN)
        while not self._stop.is_set():
            ready = dict(poller.poll(20))
            if self.xpub in ready and self.xpub.recv()[:1] == b"\x01":
                self.subscribed.set()
            if self.router in ready:
                self._answer(guard)
            while self.subscribed.is_set() and not self._events.empty():
                self.xpub.send_multipart(self._events.get())

    def _answer(self, guard: protocol.ReplayGuard) -> None:
        identity, *frames = self.router.recv_multipart()
        try:
            request = protocol.decode_request(self.secret, frames, guard)
        except protocol.ProtocolError:
            return
        self.requests.append(request)
        if request.cmd not in self.answers:  # as a daemon that does not know the command
            message = f"unknown command '{request.cmd}'"
            error = protocol.encode_error(self.secret, request.id, "UnknownCommand", message)
            self.router.send_multipart([identity, *error])
            return
        answer = self.answers[request.cmd](request)
        if isinstance(answer, dict):
            answer = self.reply(request, answer)
        replies = answer if answer and isinstance(answer[0], list) else [answer]
        for reply in replies:
            if reply:
                self.router.send_multipart([identity, *reply])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.router.close(0)
        self.xpub.close(0)
        self.context.term()


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[Callable[..., FakeDaemon]]:
    started: list[FakeDaemon] = []

    def make(**info: Any) -> FakeDaemon:
        started.append(FakeDaemon(tmp_path / ".pyplantd", **info))
        return started[-1]

    yield make
    for daemon in started:
        daemon.close()


@pytest.fixture
def daemon(make_daemon: Callable[..., FakeDaemon]) -> FakeDaemon:
    return make_daemon()


@pytest.fixture
def client(daemon: FakeDaemon) -> Iterator[Client]:
    with Client(daemon.info, timeout=2.0) as connected:
        yield connected


# -- finding and trusting the daemon ----------------------------------------------------------
def test_find_walks_up_to_the_connection_file(daemon: FakeDaemon, tmp_path: Path) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    with Client.find(nested) as client:
        assert client.ping() == {"pong": True}
    assert [r.cmd for r in daemon.requests] == ["ping"]


def test_no_connection_file_means_no_daemon(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunningError, match="no pyplantd daemon found"):
        Client.find(tmp_path)


def test_dead_pid_is_a_stale_connection_file(make_daemon, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(10)
    make_daemon(pid=proc.pid)
    started = time.monotonic()
    with pytest.raises(DaemonNotRunningError, match=f"daemon pid {proc.pid} is gone"):
        Client.find(tmp_path)
    assert time.monotonic() - started < 0.5


def test_reused_pid_is_a_stale_connection_file(make_daemon, tmp_path: Path) -> None:
    make_daemon(pid=os.getpid(), process_start="1")  # alive, but started at another time
    started = time.monotonic()
    with pytest.raises(DaemonNotRunningError, match="is now another process"):
        Client.find(tmp_path)
    assert time.monotonic() - started < 0.5


def test_connection_file_of_another_protocol_version_is_refused(make_daemon, tmp_path) -> None:
    make_daemon(version=protocol.PROTOCOL_VERSION + 1)
    with pytest.raises(ProtocolError, match="protocol version"):
        Client.find(tmp_path)


def test_endpoint_off_loopback_is_refused(daemon: FakeDaemon) -> None:
    daemon.info.request = "tcp://192.0.2.1:5555"
    with pytest.raises(ProtocolError, match="loopback"):
        Client(daemon.info)


def test_unreadable_connection_file_is_a_protocol_error(tmp_path: Path) -> None:
    (tmp_path / ".pyplantd").mkdir()
    (tmp_path / ".pyplantd" / "connection.json").write_text("{not json")
    (tmp_path / ".pyplantd" / "connection.json").chmod(0o600)
    with pytest.raises(ProtocolError, match="not a readable connection file"):
        Client.find(tmp_path)


# -- issue 9 B4: only the user's own private connection file is believed ---------------------
def test_a_connection_file_another_user_left_in_a_shared_folder_is_refused(tmp_path) -> None:
    fake = FakeDaemon(tmp_path / "made-here")  # a listener the other user points clients at
    fake.answers["status"] = lambda request: {"state": "forged"}
    shared = shared_dir()
    try:
        runtime = shared / protocol.RUNTIME_DIR
        script = f"umask 077 && mkdir {runtime} && cat > {runtime / protocol.CONNECTION_FILE}"
        as_other("sh", "-c", script, stdin=fake.path.read_text())
        mine = shared / "mine"
        mine.mkdir()
        done = subprocess.run(
            [sys.executable, "-m", "pyplant_client.cli", "status", "--dir", str(mine)],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(CLIENT)},
        )  # fmt: skip
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.startswith(
            f"Error: Refusing {runtime}: it belongs to user {OTHER_USER} (uid "
        ), done.stderr
        assert fake.requests == []  # not a word to the other user's endpoint
        with pytest.raises(UntrustedFileError, match=f"Refusing {runtime}"):
            Client.find(mine)
    finally:
        fake.close()
        shutil.rmtree(shared)


def test_another_users_runtime_dir_stops_the_walk_even_without_a_connection_file() -> None:
    shared = shared_dir()
    try:
        as_other("mkdir", "-m", "0755", str(shared / protocol.RUNTIME_DIR))
        (shared / "mine").mkdir()
        with pytest.raises(UntrustedFileError, match=f"belongs to user {OTHER_USER}"):
            Client.find(shared / "mine")
    finally:
        shutil.rmtree(shared)


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda path: path.chmod(0o644), "its mode 0644 lets other users read"),
        (lambda path: path.parent.chmod(0o777), "its mode 0777 lets other users replace"),
        (lambda path: path.parent.chmod(0o775), "its mode 0775 lets other users replace"),
    ],
)
def test_a_connection_file_others_could_read_or_replace_is_refused(
    daemon: FakeDaemon, tmp_path: Path, spoil: Callable[[Path], None], reason: str
) -> None:
    spoil(daemon.path)
    with pytest.raises(UntrustedFileError, match=reason):
        Client.find(tmp_path)
    result = pyplant("status", directory=tmp_path)
    assert result.exit_code == 2 and result.stderr.startswith("Error: Refusing "), result.stderr
    assert daemon.requests == []


def test_a_connection_file_reached_through_a_symlink_is_refused(daemon, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / protocol.RUNTIME_DIR).mkdir(parents=True)
    link = project / protocol.RUNTIME_DIR / protocol.CONNECTION_FILE
    link.symlink_to(daemon.path)
    with pytest.raises(UntrustedFileError, match=f"Refusing {link}: it is a symbolic link"):
        Client.find(project)
    with pytest.raises(trust.UntrustedFileError, match="symbolic link"):
        protocol.ConnectionInfo.read(link)
    (project / protocol.RUNTIME_DIR / protocol.CONNECTION_FILE).unlink()
    (project / protocol.RUNTIME_DIR).rmdir()
    (project / protocol.RUNTIME_DIR).symlink_to(daemon.path.parent)
    with pytest.raises(UntrustedFileError, match="is a symbolic link"):
        Client.find(project)
    assert daemon.requests == []


# -- requests and replies ---------------------------------------------------------------------
def test_commands_send_signed_requests_with_their_arguments(daemon, client) -> None:
    daemon.answers["run"] = lambda request: {"run_id": 7}
    daemon.answers["invalidate"] = lambda request: {"run_id": 8}
    daemon.answers["preview"] = lambda request: {"text": "ndarray shape=(3,)"}
    assert client.run(["load", "plot"]) == 7
    assert client.invalidate("load") == 8
    assert client.preview("data") == "ndarray shape=(3,)"
    assert [(r.cmd, r.args) for r in daemon.requests] == [
        ("run", {"targets": ["load", "plot"]}),
        ("invalidate", {"reactor": "load"}),
        ("preview", {"name": "data"}),
    ]


def test_silent_daemon_times_out(daemon: FakeDaemon) -> None:
    daemon.answers["status"] = lambda request: None
    with Client(daemon.info, timeout=0.2) as client:
        started = time.monotonic()
        with pytest.raises(ClientTimeoutError, match=r"did not answer 'status' within 0\.2 s"):
            client.status()
        assert time.monotonic() - started < 1.0
        assert client.ping() == {"pong": True}  # the socket stays usable


def test_timeout_is_a_builtin_timeout_error() -> None:
    assert issubclass(ClientTimeoutError, TimeoutError)
    assert issubclass(ClientTimeoutError, ClientError)


def test_reply_with_a_bad_signature_is_ignored(daemon: FakeDaemon) -> None:
    def forged(request: protocol.Request) -> list[bytes]:
        return protocol.encode_reply(b"not the key", request.id, {"state": "forged"})

    daemon.answers["status"] = forged
    with Client(daemon.info, timeout=0.3) as client, pytest.raises(ClientTimeoutError):
        client.status()


def test_reply_to_an_earlier_request_is_discarded(daemon: FakeDaemon, client) -> None:
    def stale_then_right(request: protocol.Request) -> list[list[bytes]]:
        earlier = protocol.Request("an-earlier-id", "status", {})
        return [daemon.reply(earlier, {"state": "stale"}), daemon.reply(request, {"state": "idle"})]

    daemon.answers["status"] = stale_then_right
    assert client.status() == {"state": "idle"}


def test_reply_in_another_protocol_version_is_a_protocol_error(daemon, client) -> None:
    def future(request: protocol.Request) -> list[bytes]:
        payload = json.dumps({"v": 99, "id": request.id, "ok": True, "result": {}}).encode()
        return [protocol.sign(daemon.secret, [payload]), payload]

    daemon.answers["status"] = future
    with pytest.raises(ProtocolError, match="protocol version 99"):
        client.status()


def test_error_reply_carries_its_type_and_message(daemon, client) -> None:
    daemon.answers["invalidate"] = lambda request: protocol.encode_error(
        daemon.secret, request.id, "BadArguments", "unknown reactor nope (known: load, plot)"
    )
    with pytest.raises(ProtocolError, match="unknown reactor nope") as raised:
        client.invalidate("nope")
    assert raised.value.type == "BadArguments"
    assert isinstance(raised.value, protocol.ProtocolError)


def test_reply_without_the_expected_field_is_a_protocol_error(daemon, client) -> None:
    daemon.answers["run"] = lambda request: {"queued": True}
    with pytest.raises(ProtocolError, match="no int 'run_id'"):
        client.run()


def test_a_daemon_that_died_is_reported_as_gone_not_as_a_timeout(daemon: FakeDaemon) -> None:
    daemon.answers["status"] = lambda request: None
    with Client(daemon.info, timeout=0.2) as client:
        client.info.process_start = "1"  # as if the pid now belonged to another process
        with pytest.raises(DaemonNotRunningError):
            client.status()


# -- fetch ------------------------------------------------------------------------------------
def _buffer(daemon: FakeDaemon, array: np.ndarray, **override: Any) -> Answer:
    import hashlib

    data = array.tobytes()
    meta = {
        "kind": "buffer", "dtype": array.dtype.str, "shape": list(array.shape),
        "nbytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), **override,
    }  # fmt: skip
    return lambda request: [*daemon.reply(request, meta), data]


def test_fetch_an_array_sent_in_memory(daemon, client) -> None:
    array = np.arange(12, dtype="<f4").reshape(3, 4)
    daemon.answers["fetch"] = _buffer(daemon, array)
    fetched = client.fetch("data")
    np.testing.assert_array_equal(fetched, array)
    assert fetched.dtype == array.dtype and not fetched.flags.writeable


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"dtype": "O"}, "unusable dtype"),
        ({"dtype": "not-a-dtype"}, "unusable dtype"),
        ({"shape": [3, -4]}, "unusable shape"),
        ({"nbytes": 12}, "the reply says 12"),
        ({"shape": [4, 4]}, "carries 48"),
        ({"sha256": "0" * 64}, "do not match the digest"),
    ],
)
def test_fetch_refuses_a_buffer_that_does_not_match_its_description(
    daemon, client, override: dict[str, Any], error: str
) -> None:
    daemon.answers["fetch"] = _buffer(daemon, np.zeros((3, 4), "<f4"), **override)
    with pytest.raises(ProtocolError, match=error):
        client.fetch("data")


def test_fetch_a_plain_value(daemon, client) -> None:
    daemon.answers["fetch"] = lambda request: {"kind": "value", "json": {"total": 45.0}}
    assert client.fetch("summary") == {"total": 45.0}


def content_checksum(array: np.ndarray) -> dict[str, str]:
    """The checksum the store records for an array, computed here independently (xxhash)."""
    import xxhash

    hasher = xxhash.xxh3_128(f"{array.dtype.str}|{tuple(array.shape)}|".encode())
    hasher.update(np.ascontiguousarray(array).tobytes())
    return {"algorithm": "xxh3_128-array", "digest": hasher.hexdigest()}


def hdf5_payload(path: Path, array: np.ndarray) -> dict[str, Any]:
    """Write `array` as a payload file; the daemon's 'file' reply for it."""
    import h5py

    with h5py.File(path, "w") as handle:
        handle.create_dataset("data", data=array)
    return {
        "kind": "file", "path": str(path), "format": "hdf5", "shape": list(array.shape),
        "dtype": str(array.dtype), "size": path.stat().st_size,
        "checksum": content_checksum(array),
    }  # fmt: skip


def test_fetch_an_array_from_its_hdf5_payload(daemon, client, tmp_path: Path) -> None:
    reply = hdf5_payload(tmp_path / "payload.h5", np.arange(5, dtype="int64"))
    daemon.answers["fetch"] = lambda request: reply
    np.testing.assert_array_equal(client.fetch("data"), np.arange(5))


def test_fetch_never_unpickles_an_hdf5_payload(daemon, client, tmp_path: Path) -> None:
    import h5py

    path = tmp_path / "pickled.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["pickled"] = np.void(b"\x80\x05N.")
    daemon.answers["fetch"] = lambda request: {
        "kind": "file", "path": str(path), "format": "hdf5", "checksum": None,
    }  # fmt: skip
    with pytest.raises(ProtocolError, match="no 'data' dataset"):
        client.fetch("objects")


def test_fetch_an_array_from_its_npy_payload(daemon, client, tmp_path: Path) -> None:
    path = tmp_path / "payload.npy"
    np.save(path, np.ones((2, 2)))
    daemon.answers["fetch"] = lambda request: {
        "kind": "file", "path": str(path), "format": "npy",
        "checksum": content_checksum(np.ones((2, 2))),
    }  # fmt: skip
    np.testing.assert_array_equal(client.fetch("data"), np.ones((2, 2)))


# -- issue 9 A7: a payload file is believed only if it is the user's own and unchanged ---------
def test_fetch_refuses_a_payload_whose_content_changed_on_disk(daemon, client, tmp_path) -> None:
    original = np.arange(1000, dtype="<f8")
    reply = hdf5_payload(tmp_path / "payload.h5", original)
    altered = original.copy()
    altered[500] = -1.0
    hdf5_payload(tmp_path / "payload.h5", altered)  # the same size, other content
    assert (tmp_path / "payload.h5").stat().st_size == reply["size"]
    daemon.answers["fetch"] = lambda request: reply
    with pytest.raises(UntrustedFileError, match="its content is not what was stored"):
        client.fetch("data")


def test_fetch_refuses_a_payload_of_another_size(daemon, client, tmp_path: Path) -> None:
    reply = hdf5_payload(tmp_path / "payload.h5", np.arange(10.0))
    daemon.answers["fetch"] = lambda request: {**reply, "size": reply["size"] + 1}
    with pytest.raises(UntrustedFileError, match=r"bytes, not \d+, so the file was changed"):
        client.fetch("data")


def test_fetch_refuses_a_reply_without_a_checksum(daemon, client, tmp_path: Path) -> None:
    reply = hdf5_payload(tmp_path / "payload.h5", np.arange(10.0))
    del reply["checksum"]
    daemon.answers["fetch"] = lambda request: reply
    with pytest.raises(ProtocolError, match="no checksum"):
        client.fetch("data")


def test_fetch_refuses_a_payload_reached_through_a_symlink(daemon, client, tmp_path) -> None:
    reply = hdf5_payload(tmp_path / "payload.h5", np.arange(10.0))
    (tmp_path / "link.h5").symlink_to(tmp_path / "payload.h5")
    daemon.answers["fetch"] = lambda request: {**reply, "path": str(tmp_path / "link.h5")}
    with pytest.raises(UntrustedFileError, match="is a symbolic link"):
        client.fetch("data")


def test_fetch_refuses_a_payload_file_another_user_made(daemon, client, tmp_path) -> None:
    reply = hdf5_payload(tmp_path / "made-by-me.h5", np.arange(10.0))
    shared = shared_dir()
    try:  # the same bytes, but written by another user: nothing says they stay so
        theirs = shared / "payload.h5"
        script = f"umask 022 && cat > {theirs}"
        subprocess.run(
            ["runuser", "-u", OTHER_USER, "--", "sh", "-c", script],
            stdin=(tmp_path / "made-by-me.h5").open("rb"), check=True, timeout=60,
        )  # fmt: skip
        daemon.answers["fetch"] = lambda request: {**reply, "path": str(theirs)}
        with pytest.raises(UntrustedFileError, match=f"belongs to user {OTHER_USER}"):
            client.fetch("data")
    finally:
        shutil.rmtree(shared)


# -- events -----------------------------------------------------------------------------------
def test_events_skip_forged_and_mislabelled_ones(daemon: FakeDaemon, client: Client) -> None:
    with client.subscribe() as stream:
        assert daemon.subscribed.wait(5)
        payload = json.dumps({"v": 1, "seq": 1, "type": "run_started", "run_id": 1}).encode()
        daemon.publish_raw([b"run_started", protocol.sign(b"wrong key", [payload]), payload])
        daemon.publish_raw([b"log", protocol.sign(daemon.secret, [payload]), payload])
        daemon.publish("run_finished", run_id=1, status="ok")
        event = stream.next(5)
        assert event is not None
        assert (event["type"], event["run_id"], event["status"]) == ("run_finished", 1, "ok")
        assert stream.skipped == 2
        assert stream.next(0.05) is None


def test_events_iterator_ends_after_its_idle_timeout(daemon: FakeDaemon, client) -> None:
    daemon.publish("log", reactor="load", message="hello")
    seen = [event["type"] for event in client.events(timeout=0.5)]
    assert seen == ["log"]


def test_follow_keeps_to_its_run_and_ends_with_run_finished(daemon, client) -> None:
    daemon.answers["status"] = lambda request: {"current_run": None, "last_run": None}
    with client.subscribe() as stream:
        daemon.publish("reactor_started", run_id=6, reactor="other")
        daemon.publish("run_started", run_id=7, trigger="run requested")
        daemon.publish("reactor_finished", run_id=7, reactor="load", result="ran", duration=0.1)
        daemon.publish("run_finished", run_id=7, status="ok")
        daemon.publish("run_started", run_id=8)
        kinds = [(e["type"], e["run_id"]) for e in client.follow(stream, 7, timeout=5)]
    assert kinds == [("run_started", 7), ("reactor_finished", 7), ("run_finished", 7)]


def test_follow_asks_status_when_events_were_lost(daemon, client) -> None:
    last = {"run_id": 7, "status": "failed", "ran": 1, "warm": 0, "failed": ["plot"]}
    daemon.answers["status"] = lambda request: {"current_run": None, "last_run": last}
    with client.subscribe() as stream:
        events = list(client.follow(stream, 7, timeout=5, poll=0.05))
    assert events[-1]["synthesized"] is True
    assert (events[-1]["type"], events[-1]["status"]) == ("run_finished", "failed")


def test_follow_without_a_run_waits_for_the_next_one(daemon, client) -> None:
    daemon.answers["status"] = lambda request: {"current_run": None, "last_run": {"run_id": 3}}
    with client.subscribe() as stream:
        daemon.publish("run_finished", run_id=3, status="failed")  # an old run: not awaited
        daemon.publish("reactor_started", run_id=4, reactor="load")  # run_started was missed
        daemon.publish("run_finished", run_id=4, status="ok")
        events = list(client.follow(stream, timeout=5))
    assert [(e["type"], e["run_id"]) for e in events] == [
        ("reactor_started", 4), ("run_finished", 4),
    ]  # fmt: skip


def test_follow_gives_up_after_its_timeout(daemon, client) -> None:
    daemon.answers["status"] = lambda request: {"current_run": {"run_id": 2}, "last_run": None}
    with client.subscribe() as stream, pytest.raises(ClientTimeoutError, match="did not finish"):
        list(client.follow(stream, timeout=0.2, poll=0.05))


def test_subscribe_waits_for_its_mark_and_keeps_the_events_before_it(daemon, client) -> None:
    daemon.publish("log", run_id=1, reactor="load", text="before the mark")
    daemon.publish("mark", token="someone else's")
    with client.subscribe() as stream:
        marks = [r for r in daemon.requests if r.cmd == "mark"]
        assert marks and {r.args["token"] for r in marks} == {marks[0].args["token"]}
        daemon.publish("mark", token=marks[0].args["token"])  # a late answer to a retry
        daemon.publish("run_started", run_id=2)
        events = [stream.next(5), stream.next(5)]
        assert [e and e["type"] for e in events] == ["log", "run_started"]  # marks: never
        assert stream.next(0.05) is None
        assert (stream.skipped, stream.missed) == (0, 0)


def test_subscribe_to_a_daemon_without_mark_falls_back_to_the_handshake(daemon, client) -> None:
    del daemon.answers["mark"]  # a daemon from before `mark` answers UnknownCommand
    with client.subscribe() as stream:
        assert daemon.subscribed.wait(5)
        daemon.publish("run_started", run_id=1)
        event = stream.next(5)
        assert event is not None and event["type"] == "run_started"
    with client.subscribe():
        pass
    assert [r.cmd for r in daemon.requests] == ["mark"]  # asked once per client


def test_follow_shows_the_events_still_on_their_way_when_status_says_the_run_is_over(
    daemon, client
) -> None:
    # The run ends while the client asks `status`: its last events are published after the
    # reply (here: sent after it), so they are still on their way when the reply says "over".
    last = {"run_id": 7, "status": "ok", "ran": 1, "warm": 0}

    def status(request: protocol.Request) -> dict[str, Any]:
        if any(r.cmd == "status" for r in daemon.requests[:-1]):
            return {"current_run": None, "last_run": last}
        daemon.publish("log", run_id=7, reactor="load", text="done")
        daemon.publish("run_finished", **last)
        return {"current_run": None, "last_run": last}

    daemon.answers["status"] = status
    with client.subscribe() as stream:
        events = list(client.follow(stream, 7, timeout=10, poll=0.05))
    assert [(e["type"], e.get("synthesized")) for e in events] == [
        ("log", None), ("run_finished", None),
    ]  # fmt: skip


def test_follow_still_ends_with_status_when_the_run_finished_was_lost(daemon, client) -> None:
    last = {"run_id": 7, "status": "failed", "ran": 1, "warm": 0, "failed": ["plot"]}
    daemon.answers["status"] = lambda request: {"current_run": None, "last_run": last}
    with client.subscribe() as stream:
        events = list(client.follow(stream, 7, timeout=10, poll=0.05))
    assert [(e["type"], e["status"], e.get("synthesized")) for e in events] == [
        ("run_finished", "failed", True),
    ]  # fmt: skip


def test_events_lost_on_the_way_are_counted_and_pyplant_run_says_so(daemon, tmp_path) -> None:
    def run(request: protocol.Request) -> dict[str, Any]:
        daemon.publish("run_started", run_id=7, trigger="run requested")
        daemon._seq += 2  # two events the subscriber never got (a PUB queue overflowed)
        daemon.publish("run_finished", run_id=7, status="ok", ran=1, warm=0)
        return {"run_id": 7}

    daemon.answers["run"] = run
    result = pyplant("run", directory=tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "run started: run 7 (run requested)"
    assert "(2 events did not arrive; the output above may lack some lines)" in result.stderr


# -- the CLI ----------------------------------------------------------------------------------
FAILED_RUN = [
    ("run_started", {"run_id": 7, "trigger": "run requested"}),
    ("reactor_started", {"run_id": 7, "reactor": "load"}),
    ("reactor_finished", {"run_id": 7, "reactor": "load", "result": "warm", "duration": 0.0}),
    ("reactor_started", {"run_id": 6, "reactor": "someone else's run"}),
    ("reactor_failed", {
        "run_id": 7, "reactor": "plot", "exception": "ValueError",
        "message": "no data\nat all", "path": "/project/pipeline.py", "line": 12,
        "traceback": '  File "/project/pipeline.py", line 12, in plot\nValueError: no data\n',
    }),
    ("run_finished", {"run_id": 7, "status": "failed", "ran": 0, "warm": 1, "failed": ["plot"],
                      "duration": 0.0123}),
]  # fmt: skip


def pyplant(*args: str, directory: Path) -> Any:
    return CliRunner().invoke(app, [*args, "--dir", str(directory)])


def script_run(daemon: FakeDaemon, events: list[tuple[str, dict[str, Any]]]) -> None:
    def run(request: protocol.Request) -> dict[str, Any]:
        for kind, fields in events:
            daemon.publish(kind, **fields)
        return {"run_id": 7}

    daemon.answers["run"] = run
    daemon.answers["status"] = lambda request: {"current_run": {"run_id": 7}}


def test_cli_run_prints_failures_for_editors_and_exits_1(daemon, tmp_path: Path) -> None:
    script_run(daemon, FAILED_RUN)
    result = pyplant("run", "plot", directory=tmp_path)
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines() == [
        "run started: run 7 (run requested)",
        "  warm load",
        "/project/pipeline.py:12:1: error: plot: ValueError: no data at all",
        "run finished: run 7 failed: 0 ran, 1 warm, 1 failed (plot), 12.3 ms",
    ]
    assert [r.args for r in daemon.requests if r.cmd == "run"] == [{"targets": ["plot"]}]


def test_cli_run_with_traceback_indents_it_under_the_error(daemon, tmp_path: Path) -> None:
    script_run(daemon, FAILED_RUN)
    result = pyplant("run", "--traceback", directory=tmp_path)
    assert '      File "/project/pipeline.py", line 12, in plot' in result.stdout.splitlines()


def test_cli_run_success_exits_0(daemon, tmp_path: Path) -> None:
    script_run(daemon, [
        ("run_started", {"run_id": 7, "trigger": "run requested"}),
        ("reactor_finished", {"run_id": 7, "reactor": "load", "result": "ran", "duration": 1.5}),
        ("run_finished", {"run_id": 7, "status": "ok", "ran": 1, "warm": 0, "failed": []}),
    ])  # fmt: skip
    result = pyplant("run", directory=tmp_path)
    assert result.exit_code == 0, result.output
    assert "  ran  load (1.50 s)" in result.stdout.splitlines()


def test_cli_run_of_a_script_that_does_not_load_exits_1(daemon, tmp_path: Path) -> None:
    script_run(daemon, [
        ("run_started", {"run_id": 7, "trigger": "run requested"}),
        ("reload_failed", {"run_id": 7, "path": "/p/pipeline.py", "line": 3, "column": 9,
                           "message": "invalid syntax"}),
        ("run_finished", {"run_id": 7, "status": "reload_failed", "ran": 0}),
    ])  # fmt: skip
    result = pyplant("run", directory=tmp_path)
    assert result.exit_code == 1
    assert "/p/pipeline.py:3:9: error: invalid syntax" in result.stdout.splitlines()


def test_cli_wait_follows_the_current_run(daemon, tmp_path: Path) -> None:
    daemon.answers["status"] = lambda request: {"current_run": {"run_id": 7}, "last_run": None}
    for kind, fields in FAILED_RUN:
        daemon.publish(kind, **fields)
    result = pyplant("wait", "--timeout", "10", directory=tmp_path)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1].startswith("run finished: run 7 failed")


@pytest.mark.parametrize("command", ["status", "run", "wait", "events", "stop", "ingredients"])
def test_cli_without_a_daemon_exits_2(command: str, tmp_path: Path) -> None:
    result = pyplant(command, directory=tmp_path)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: no pyplantd daemon found")


def test_cli_daemon_refusal_is_an_error_exit_2(daemon, tmp_path: Path) -> None:
    daemon.answers["invalidate"] = lambda request: protocol.encode_error(
        daemon.secret, request.id, "BadArguments", "unknown reactor nope (known: load)"
    )
    result = pyplant("invalidate", "nope", directory=tmp_path)
    assert (result.exit_code, result.stderr) == (2, "Error: unknown reactor nope (known: load)\n")


def test_cli_status_json_is_the_daemon_status(daemon, tmp_path: Path) -> None:
    status: dict[str, Any] = {"state": "idle", "current_run": None, "reactors": {}}
    daemon.answers["status"] = lambda request: status
    result = pyplant("status", "--json", directory=tmp_path)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == status


def test_cli_status_is_readable(daemon, tmp_path: Path) -> None:
    daemon.answers["status"] = lambda request: {
        "state": "running", "current_run": {"run_id": 4, "trigger": "saved pipeline.py"},
        "last_run": {"run_id": 3, "status": "ok", "ran": 1, "warm": 2, "duration": 0.5},
        "reactors": {"load": {"state": "warm", "duration": 0.0, "why": "cached"}},
        "memory": {"warm_bytes": 3 * 2**20, "budget": 2**32, "spilled_bytes": 0},
        "pipeline": "/p/pipeline.py",
    }  # fmt: skip
    result = pyplant("status", directory=tmp_path)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1:] == [
        "state: running, run 4 (saved pipeline.py)",
        "last run 3 ok: 1 ran, 2 warm, 500.0 ms",
        "  warm     load (0.0 ms): cached",
        "memory: 3.0 MiB warm of 4.0 GiB, 0 B spilled to disk",
    ]


def test_cli_fetch_writes_npy(daemon, tmp_path: Path) -> None:
    daemon.answers["fetch"] = _buffer(daemon, np.arange(6.0))
    out = tmp_path / "data.npy"
    result = pyplant("fetch", "data", "-o", str(out), directory=tmp_path)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(out), np.arange(6.0))


@pytest.mark.parametrize(
    ("event", "line"),
    [
        ({"type": "log", "reactor": "plot", "text": "total 45.0"}, "[plot] total 45.0"),
        ({"type": "log", "reactor": "plot", "text": "a\nb"}, "[plot] a\n[plot] b"),
        ({"type": "reactor_started", "reactor": "plot"}, None),
        ({"type": "reactor_finished", "reactor": "load", "result": "warm", "why": "restored"},
         "  warm load (restored)"),
        ({"type": "reactor_failed", "reactor": "plot", "exception": "KeyError", "message": "'x'",
          "path": "", "line": 0}, "error: plot: KeyError: 'x'"),
        ({"type": "progress", "reactor": "fit", "done": 3, "total": 4, "rate": 2.0, "eta": 0.5,
          "note": "epoch 3"},
         "  ⋯ fit ███████████████░░░░░  75% 3/4 · 2/s · ETA 0.5 s · epoch 3"),
        ({"type": "something_new", "seq": 3, "n": 1}, 'something_new {"n": 1}'),
    ],
)  # fmt: skip
def test_event_lines(event: dict[str, Any], line: str | None) -> None:
    assert event_line(event) == line


def test_cli_ctrl_c_exits_130(monkeypatch, tmp_path: Path) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> Client:
        raise KeyboardInterrupt

    monkeypatch.setattr(Client, "find", interrupted)
    assert pyplant("status", directory=tmp_path).exit_code == 130


# -- editor integrations ----------------------------------------------------------------------
def vscode_matcher() -> dict[str, Any]:
    tasks = json.loads((EDITORS / "vscode" / "tasks.json").read_text())["tasks"]
    matchers = [task["problemMatcher"] for task in tasks]
    assert all(matcher == matchers[0] for matcher in matchers)
    return matchers[0]


def errorformat_regex() -> tuple[re.Pattern[str], list[str]]:
    """The Neovim plugin's errorformat as a regex, translated as Vim does for these items."""
    lua = (EDITORS / "neovim" / "pyplant.lua").read_text()
    efm = re.search(r'M\.errorformat = "([^"]*)"', lua)
    assert efm is not None
    first, *rest = efm.group(1).split(",")
    assert rest == ["%-G%.%#"]  # everything else is dropped
    items = {"%f": "(?P<f>.+?)", "%l": r"(?P<l>\d+)", "%c": r"(?P<c>\d+)", "%m": "(?P<m>.+)"}
    pattern = "".join(items.get(part, re.escape(part)) for part in re.split(r"(%[flcm])", first))
    return re.compile(f"^{pattern}$"), ["f", "l", "c", "m"]


def problems(lines: list[str]) -> list[tuple[str, int, int, str]]:
    """What VS Code and Neovim make of these lines; both must agree."""
    matcher = vscode_matcher()
    pattern = matcher["pattern"]
    vscode_re = re.compile(pattern["regexp"])
    efm_re, groups = errorformat_regex()
    seen_vscode, seen_vim = [], []
    for line in lines:
        if found := vscode_re.match(line):
            keys = ("file", "line", "column", "message")
            seen_vscode.append(tuple(found.group(pattern[key]) for key in keys))
        if found := efm_re.match(line):
            seen_vim.append(tuple(found.group(k) for k in groups))
    assert seen_vscode == seen_vim
    return [(f, int(line), int(column), m) for f, line, column, m in seen_vscode]


def test_editor_patterns_read_failures_and_only_failures(daemon, tmp_path: Path) -> None:
    script_run(daemon, FAILED_RUN)
    output = pyplant("run", directory=tmp_path).stdout.splitlines()
    assert problems(output) == [("/project/pipeline.py", 12, 1, "plot: ValueError: no data at all")]
    background = vscode_matcher()["background"]
    assert re.match(background["beginsPattern"], output[0])
    assert re.match(background["endsPattern"], output[-1])
    assert not any(re.match(background["endsPattern"], line) for line in output[:-1])


RECORDED_SAMPLE = """\
run started: run 3 (run requested)
  warm load_data
C:\\work\\pipe line.py:45:1: error: plot_data: ValueError: boom: with: colons
run finished: run 3 failed: 0 ran, 1 warm, 1 failed (plot_data), 5.2 ms
"""


def test_editor_patterns_keep_colons_and_spaces_in_paths_and_messages() -> None:
    assert problems(RECORDED_SAMPLE.splitlines()) == [
        ("C:\\work\\pipe line.py", 45, 1, "plot_data: ValueError: boom: with: colons"),
    ]


# -- boundaries -------------------------------------------------------------------------------
def test_client_never_imports_pyplantd_and_pickle_only_to_load_checked_files() -> None:
    forbidden = re.compile(
        r"^\s*(import|from)\s+(pyplantd|pickle|cPickle|dill|cloudpickle)\b", re.M
    )
    # pickles.py loads a payload file that is the user's own and has its recorded checksum
    # (Client.fetch(..., allow_pickle=True)); nothing from the socket.
    exempt = CLIENT / "pyplant_client" / "pickles.py"
    for path in (CLIENT / "pyplant_client").rglob("*.py"):
        assert path == exempt or not forbidden.search(path.read_text()), path
    assert not re.search(r"^\s*(import|from)\s+pyplantd\b", exempt.read_text(), re.M)


def test_client_imports_without_pyplantd_or_numpy() -> None:
    code = (
        "import sys, pyplant_client, pyplant_client.cli\n"
        "loaded = {'pyplantd', 'numpy', 'h5py'} & set(sys.modules)\n"
        "assert not loaded, loaded"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=CLIENT,
        env={**os.environ, "PYTHONPATH": str(CLIENT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_public_api_is_pinned() -> None:
    import pyplant_client

    assert sorted(pyplant_client.__all__) == sorted([
        "PROTOCOL_VERSION", "Client", "ClientError", "ClientTimeout", "ClientTimeoutError",
        "ConnectionInfo", "DaemonNotRunning", "DaemonNotRunningError", "EventStream",
        "ProtocolError", "UntrustedFileError", "__version__",
    ])  # fmt: skip


# -- end to end: a real `pyplantd watch` ------------------------------------------------------
PIPELINE = """
import os

import numpy as np

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def load(pipe):
    pipe.send('data', np.arange(10.0))


@ReactorFunc
def report(pipe):
    data = yield pipe.receive('data')
    if os.path.exists('fail.flag'):
        raise ValueError('report failed on purpose')
    pipe.send('total', float(data.sum()))


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(report)
"""


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[Path]:
    """A project served by a real daemon, stopped (killed if need be) afterwards."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "pipeline.py").write_text(textwrap.dedent(PIPELINE).lstrip())
    connection = project / protocol.RUNTIME_DIR / protocol.CONNECTION_FILE
    with open(tmp_path / "daemon.log", "w") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "pyplantd.cli", "watch", "pipeline.py"], cwd=project,
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{CLIENT}"},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not connection.exists():
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()
            assert time.monotonic() < deadline, "the daemon wrote no connection file"
            time.sleep(0.05)
        yield project.resolve()
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(5)


def cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyplant_client.cli", *args, "--dir", str(project)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(CLIENT)},
    )  # fmt: skip


def test_e2e_ping_status_run_fetch_and_stop(watched: Path) -> None:
    with Client.find(watched) as client:
        assert client.ping()["pong"] is True
        assert Path(client.status()["pipeline"]).resolve() == watched / "pipeline.py"
    ran = cli(watched, "run")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].startswith("run started: run ")
    assert "  warm load" in lines
    assert lines[-1].startswith("run finished: ") and " ok: " in lines[-1]
    with Client.find(watched) as client:
        assert client.fetch("total") == 45.0
        np.testing.assert_array_equal(client.fetch("data"), np.arange(10.0))
    stopped = cli(watched, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.splitlines()[-1].endswith("stopped")
    assert cli(watched, "status").returncode == 2


def wait_first_run(project: Path, timeout: float = 60) -> None:
    """Until the daemon's start-up run is over: its last events must not reach a follower."""
    deadline = time.monotonic() + timeout
    with Client.find(project) as client:
        while not ((status := client.status()).get("last_run") and status["state"] == "idle"):
            assert time.monotonic() < deadline, status
            time.sleep(0.05)


def test_e2e_events_follow_runs_until_ctrl_c_exits_130(watched: Path) -> None:
    wait_first_run(watched)
    follower = subprocess.Popen(
        [sys.executable, "-m", "pyplant_client.cli", "events", "--dir", str(watched)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(CLIENT)},
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        deadline = time.monotonic() + 30
        with Client.find(watched) as client:
            # Until it is subscribed, runs go unseen: ask for runs until one shows.
            while not select.select([follower.stdout], [], [], 0.5)[0]:
                assert time.monotonic() < deadline, "pyplant events saw no run"
                client.invalidate("report")
        assert follower.stdout.readline().startswith("run started: run ")
        follower.send_signal(signal.SIGINT)
        assert follower.wait(10) == 130
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(5)
        if follower.stdout is not None:
            follower.stdout.close()


def test_e2e_failing_reactor_exits_1_with_an_editor_line(watched: Path) -> None:
    (watched / "fail.flag").touch()
    result = cli(watched, "run", "report")
    assert result.returncode == 1, result.stdout + result.stderr
    raise_line = (
        PIPELINE.lstrip().splitlines().index("        raise ValueError('report failed on purpose')")
    )
    path = str(watched / "pipeline.py")
    column = 9 if sys.version_info >= (3, 11) else 1  # the `raise`, where Python tells columns
    assert problems(result.stdout.splitlines()) == [
        (path, raise_line + 1, column, "report: ValueError: report failed on purpose")
    ]
    assert cli(watched, "status").returncode == 0


def test_e2e_fetch_checks_the_payload_file_and_refuses_it_once_altered(
    watched: Path, tmp_path: Path
) -> None:
    import h5py

    wait_first_run(watched)
    with Client.find(watched) as client:
        deadline = time.monotonic() + 60
        while (reply := client.call("fetch", {"name": "data"}))["kind"] != "file":
            assert time.monotonic() < deadline, reply  # until its payload is durable
            time.sleep(0.05)
        assert reply["checksum"]["algorithm"] == "xxh3_128-array"
        np.testing.assert_array_equal(client.fetch("data"), np.arange(10.0))  # checks out

        path = Path(reply["path"])
        size = path.stat().st_size
        with h5py.File(path, "r") as handle:
            offset = handle["data"].id.get_offset()
        with open(path, "r+b") as handle:  # one value changed in place, as an editor might
            handle.seek(offset + 8 * 3)
            handle.write(np.float64(-1.0).tobytes())
        assert path.stat().st_size == size
        with pytest.raises(UntrustedFileError, match="changed on disk after 'data' was stored"):
            client.fetch("data")
        assert "min=0 " in client.preview("data")  # the daemon still holds the right value
    done = cli(watched, "fetch", "data", "-o", str(tmp_path / "data.npy"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "its content is not what was stored" in done.stderr
    assert not (tmp_path / "data.npy").exists()
