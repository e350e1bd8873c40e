"""The daemon's control endpoint under bad input, with a real daemon and raw ZeroMQ peers."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import zmq
from pyplant_client import protocol

REPO = Path(__file__).resolve().parents[1]

PIPELINE = """
import time
from pyplantd import Plant, ReactorFunc

@ReactorFunc
def load(pipe):
    pipe.send('data', list(range(10)))

@ReactorFunc
def busy(pipe, config):
    data = yield pipe.receive('data')
    end = time.time() + config.seconds
    while time.time() < end:  # pure-Python, CPU-bound
        pass
    pipe.send('total', sum(data))

with Plant('plant') as plant:
    plant.set_config({'seconds': SECONDS})
    plant.run_reactor(busy)
"""


class Daemon:
    def __init__(
        self, root: Path, seconds: float = 0.0, *options: str, script: str = PIPELINE
    ) -> None:
        self.root = root
        (root / "pipeline.py").write_text(script.replace("SECONDS", str(seconds)))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "client")]),
               "COLUMNS": "1000"}  # fmt: skip
        self.log = (root / "daemon.out").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pyplantd.cli", "watch", "pipeline.py", *options],
            cwd=root, env=env,
            stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.connection = root / ".pyplantd" / "connection.json"
        deadline = time.monotonic() + 30
        while not self.connection.exists():
            assert self.proc.poll() is None, (root / "daemon.out").read_text()
            assert time.monotonic() < deadline, "the daemon wrote no connection file"
            time.sleep(0.02)
        self.info = protocol.ConnectionInfo.read(self.connection)
        self.context = zmq.Context()

    def socket(self) -> zmq.Socket[bytes]:
        socket = self.context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(self.info.request)
        return socket

    def call(self, socket: zmq.Socket[bytes], cmd: str, args: dict | None = None) -> dict:
        socket.send_multipart(protocol.encode_request(self.info.key_bytes, cmd, args))
        return self.reply(socket)

    def reply(self, socket: zmq.Socket[bytes], timeout: float = 10) -> dict:
        assert socket.poll(int(timeout * 1000)), "no reply"
        return protocol.decode_reply(self.info.key_bytes, socket.recv_multipart()[:2])

    def stop(self) -> None:
        self.context.destroy(0)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def daemon(tmp_path):
    running = Daemon(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_runtime_dir_is_0700_and_connection_file_0600(daemon):
    assert stat.S_IMODE(daemon.connection.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(daemon.connection.stat().st_mode) == 0o600
    assert daemon.info.request.startswith(("ipc://", "tcp://127.0.0.1:"))
    assert daemon.info.pid == daemon.proc.pid


def test_tcp_endpoint_on_request_is_loopback_only(tmp_path):
    running = Daemon(tmp_path, 0.0, "--tcp")
    try:
        assert running.info.request.startswith("tcp://127.0.0.1:")
        assert running.info.events.startswith("tcp://127.0.0.1:")
        assert running.call(running.socket(), "ping")["ok"]
    finally:
        running.stop()


def test_a_long_non_ascii_project_path_falls_back_to_tcp_and_says_so():
    base = Path(tempfile.mkdtemp(prefix="pyplantd-", dir="/tmp"))
    try:
        # Under 100 characters, over 107 bytes: the old check counted characters.
        room = 99 - len(str(base / "x" / ".pyplantd" / "request.sock")) + 1
        root = base / ("\u00e9t\u00e9" * 20)[:room]  # 'été': 2-byte é
        socket_path = root / ".pyplantd" / "request.sock"
        assert len(str(socket_path)) < 100 < 108 < len(os.fsencode(socket_path))
        root.mkdir()
        running = Daemon(root)
        try:
            assert running.info.request.startswith("tcp://127.0.0.1:")
            assert running.info.events.startswith("tcp://127.0.0.1:")
            assert running.call(running.socket(), "ping")["ok"]
            output = (root / "daemon.out").read_text()
            notice = f"serving clients on {running.info.request} instead of a Unix socket: the path"
            assert notice in output, output
            assert "over the 103 a Unix socket can have" in " ".join(output.split()), output
        finally:
            running.stop()
    finally:
        shutil.rmtree(base)


def test_wrong_key_gets_no_reply_and_is_counted(daemon):
    socket = daemon.socket()
    socket.send_multipart(protocol.encode_request(b"not the key", "ping"))
    assert not socket.poll(500)
    status = daemon.call(socket, "status")["result"]
    assert status["endpoint"]["unauthenticated"] >= 1


def test_a_replayed_message_is_rejected(daemon):
    socket = daemon.socket()
    frames = protocol.encode_request(daemon.info.key_bytes, "ping")
    socket.send_multipart(frames)
    assert daemon.reply(socket)["ok"]
    socket.send_multipart(frames)  # the very same signed bytes again
    assert not socket.poll(500)


def deep(levels: int) -> object:
    value: object = "leaf"
    for _ in range(levels):
        value = [value]
    return value


def test_malformed_but_signed_input_gets_exactly_one_error_reply(daemon):
    socket = daemon.socket()
    key = daemon.info.key_bytes
    for payload in (b"{not json", b"[1, 2]", b"[" * 50_000 + b"]" * 50_000):
        socket.send_multipart([protocol.sign(key, [payload]), payload])
        reply = daemon.reply(socket)
        assert (reply["ok"], reply["id"], reply["error"]["type"]) == (False, "", "Malformed")
        assert not socket.poll(200)  # exactly one reply
    for args, kind in (
        ({"cmd": "fly"}, "UnknownCommand"),
        ({"cmd": "preview", "args": {"name": 3}}, "BadArguments"),
        ({"cmd": "run", "args": {"targets": ["nope"]}}, "BadArguments"),
        ({"cmd": "run", "args": {"targets": "load"}}, "BadArguments"),
        ({"cmd": "invalidate", "args": {}}, "BadArguments"),
        ({"cmd": "ping", "v": 99}, "Malformed"),
        ({"cmd": "ping", "args": []}, "Malformed"),
        ({"cmd": "ping", "args": {"a": deep(500)}}, "Malformed"),
        ({"cmd": "ping", "more": True}, "Malformed"),
        ({"cmd": "ping", "id": ["x"]}, "Malformed"),
    ):
        message = {"v": 1, "id": "x", "nonce": os.urandom(8).hex(), "ts": time.time(), **args}
        payload = json.dumps(message).encode()
        socket.send_multipart([protocol.sign(key, [payload]), payload])
        reply = daemon.reply(socket)
        assert reply["ok"] is False and reply["error"]["type"] == kind, (args, reply)
        assert not socket.poll(200)  # exactly one reply
    status = daemon.call(socket, "status")["result"]
    assert status["endpoint"]["malformed"] == 13
    assert status["endpoint"]["unauthenticated"] == 0


def test_a_request_with_a_non_finite_time_gets_no_reply_and_cannot_be_replayed(daemon):
    socket = daemon.socket()
    key = daemon.info.key_bytes
    for ts in ("NaN", "Infinity", "1e999", '"now"'):
        nonce = os.urandom(8).hex()
        payload = f'{{"v": 1, "id": "x", "nonce": "{nonce}", "ts": {ts}, "cmd": "ping"}}'
        frames = [protocol.sign(key, [payload.encode()]), payload.encode()]
        for _ in range(2):  # NaN passed the window: these bytes were accepted for ever
            socket.send_multipart(frames)
            assert not socket.poll(300), ts
    status = daemon.call(socket, "status")["result"]
    assert status["endpoint"]["unauthenticated"] == 8


def test_random_and_malformed_frames_leave_the_daemon_answering(daemon):
    socket = daemon.socket()
    rss_before = psutil.Process(daemon.proc.pid).memory_info().rss
    rng = random.Random(7)
    answered = 0
    for i in range(1000):
        kind = rng.randrange(5)
        if kind == 0:
            frames = [os.urandom(rng.randrange(0, 200)) for _ in range(rng.randrange(1, 4))]
        elif kind == 1:
            frames = [b"", b""]
        elif kind == 2:  # a real request with a flipped signature byte
            frames = protocol.encode_request(daemon.info.key_bytes, "ping")
            frames[0] = bytes([frames[0][0] ^ 1]) + frames[0][1:]
        elif kind == 3:
            frames = [b"x" * 64, os.urandom(1000)]
        else:
            frames = None
        if frames is not None:
            socket.send_multipart(frames)
        if i % 10 == 0 or frames is None:
            assert daemon.call(socket, "ping")["ok"]
            answered += 1
    assert answered >= 100
    while socket.poll(200):  # nothing but ping replies may have come back
        raise AssertionError(f"unexpected reply: {socket.recv_multipart()}")
    grown = psutil.Process(daemon.proc.pid).memory_info().rss - rss_before
    assert grown < 10 * 2**20, f"the daemon grew by {grown} bytes"


def test_a_client_killed_mid_request_does_not_disturb_others(daemon, tmp_path):
    script = tmp_path / "victim.py"
    script.write_text(
        "import sys, zmq\n"
        "from pathlib import Path\n"
        "from pyplant_client import protocol\n"
        "info = protocol.ConnectionInfo.read(Path(sys.argv[1]))\n"
        "s = zmq.Context().socket(zmq.DEALER)\n"
        "s.connect(info.request)\n"
        "for _ in range(200):\n"
        "    s.send_multipart(protocol.encode_request(info.key_bytes, 'status'))\n"
        "print('sent', flush=True)\n"
        "input()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "client")}
    victim = subprocess.Popen(
        [sys.executable, str(script), str(daemon.connection)], env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert victim.stdout is not None and victim.stdout.readline().strip() == "sent"
        victim.kill()
        victim.wait(10)
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    socket = daemon.socket()
    for _ in range(20):
        assert daemon.call(socket, "ping")["ok"]


def test_status_answers_while_a_cpu_bound_reactor_runs(tmp_path):
    running = Daemon(tmp_path, seconds=30)
    try:
        socket = running.socket()
        deadline = time.monotonic() + 30
        while True:
            status = running.call(socket, "status")["result"]
            if status["reactors"].get("busy", {}).get("state") == "running":
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.05)
        for _ in range(20):  # every one answered while the reactor computes
            status = running.call(socket, "status")["result"]
            assert status["state"] == "running"
            assert status["reactors"]["busy"]["state"] == "running"
    finally:
        running.stop()


SOCKET_PATHS = [REPO / "client" / "pyplant_client", REPO / "pyplantd" / "daemon"]


# The one module that loads a pickle: a payload file the user owns, checked against its recorded
# checksum, never bytes from the socket (test_client covers it).
FILE_PICKLES = REPO / "client" / "pyplant_client" / "pickles.py"


@pytest.mark.parametrize("pattern", ["pickle.loads", "recv_pyobj", "allow_pickle=True"])
def test_nothing_on_a_socket_path_unpickles(pattern):
    hits = [
        f"{path}:{number}"
        for folder in SOCKET_PATHS
        for path in folder.rglob("*.py")
        if path != FILE_PICKLES
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(re.escape(pattern), line)
    ]
    assert hits == []


CHAIN = """
import time
from pyplantd import Plant, ReactorFunc

def log(name):
    with open('ran.log', 'a') as handle:
        handle.write(name + '\\n')

@ReactorFunc
def load(pipe):
    log('load')
    pipe.send('data', [1.0, 2.0, 3.0])

@ReactorFunc
def scale(pipe):
    log('scale')
    data = yield pipe.receive('data')
    pipe.send('scaled', [x * 10 for x in data])

@ReactorFunc
def report(pipe, config):
    log('report')
    scaled = yield pipe.receive('scaled')
    end = time.time() + config.seconds
    while time.time() < end:
        pass
    print('total', sum(scaled))

with Plant('plant') as plant:
    plant.set_config({'seconds': 0})
    plant.run_reactor(report)
"""


def _save_after_the_first_run(running: Daemon, text: str) -> None:
    """Write pipeline.py once the start-up run is over: a save that lands before that run loads
    the script is no change to it, and one during it cancels it."""
    socket, deadline = running.socket(), time.monotonic() + 30
    while not ((status := running.call(socket, "status")["result"])["last_run"]):
        assert time.monotonic() < deadline, status
        time.sleep(0.05)
    socket.close(0)
    (running.root / "pipeline.py").write_text(text)


def _reloaded_and_done(status: dict) -> bool:
    last = status.get("last_run") or {}
    return status["state"] == "idle" and str(last.get("trigger", "")).startswith("saved")


def _wait_finished(client, stream, run_id):
    events = list(client.follow(stream, run_id, timeout=60))
    assert events[-1]["type"] == "run_finished", events
    return events


def test_client_commands_against_a_real_daemon(tmp_path):
    from pyplant_client import Client

    running = Daemon(tmp_path)
    log = tmp_path / "ran.log"
    try:
        _save_after_the_first_run(running, CHAIN)  # the daemon reloads it on this save
        with Client.find(tmp_path) as client:
            deadline = time.monotonic() + 30
            while not _reloaded_and_done(client.status()):  # the run after the save is over
                assert time.monotonic() < deadline, client.status()
                time.sleep(0.05)
            rows = {row["name"]: row for row in client.ingredients()}
            assert rows["data"]["producer"] == "load" and rows["scaled"]["type"] == "list"
            assert rows["data"]["tier"] in ("warm", "both")
            assert client.preview("scaled") == "[10.0, 20.0, 30.0]"
            assert client.fetch("scaled") == [10.0, 20.0, 30.0]
            log.unlink(missing_ok=True)
            with client.subscribe() as stream:
                run_id = client.invalidate("scale")
                events = _wait_finished(client, stream, run_id)
            ran = {e["reactor"] for e in events if e["type"] == "reactor_started"}
            assert ran == {"scale", "report"}  # the invalidated one and what depends on it
            assert sorted(log.read_text().split()) == ["report", "scale"]
            assert not client.cancel()  # nothing is running
    finally:
        running.stop()


def test_cancel_from_the_client_stops_a_busy_reactor(tmp_path):
    from pyplant_client import Client

    running = Daemon(tmp_path)
    try:
        _save_after_the_first_run(running, CHAIN.replace("'seconds': 0", "'seconds': 60"))
        with Client.find(tmp_path) as client:
            deadline = time.monotonic() + 30
            while client.status()["reactors"].get("report", {}).get("state") != "running":
                assert time.monotonic() < deadline, client.status()
                time.sleep(0.05)
            with client.subscribe() as stream:
                assert client.cancel()
                event = stream.next(20)
                while event is not None and event["type"] != "run_finished":
                    event = stream.next(20)
            assert event is not None and event["status"] == "cancelled"
            assert client.status()["state"] == "idle"
    finally:
        running.stop()


@pytest.mark.slow
def test_ten_thousand_random_frames_leave_the_daemon_answering(daemon):
    socket = daemon.socket()
    rss_before = psutil.Process(daemon.proc.pid).memory_info().rss
    rng = random.Random(11)
    for i in range(10_000):
        socket.send_multipart(
            [os.urandom(rng.randrange(0, 300)) for _ in range(rng.randrange(1, 4))]
        )
        if i % 100 == 0:
            assert daemon.call(socket, "ping")["ok"]
    grown = psutil.Process(daemon.proc.pid).memory_info().rss - rss_before
    assert grown < 10 * 2**20, f"the daemon grew by {grown} bytes"


UNENCODABLE = """
from pyplantd import Plant, ReactorFunc

@ReactorFunc
def make(pipe):
    pipe.send('nan', float('nan'))
    pipe.send('inf', float('-inf'))
    pipe.send('huge', 10 ** 5000)
    pipe.send('listed', [1.0, 2.0, float('nan')])
    pipe.send('fine', [1.0, 2.0])

with Plant('plant') as plant:
    plant.run_reactor(make)
"""


def test_a_reply_that_cannot_be_encoded_is_an_error_reply_naming_what(tmp_path):
    from pyplant_client import Client, ProtocolError

    running = Daemon(tmp_path, script=UNENCODABLE)
    try:
        with Client.find(tmp_path, timeout=20) as client:
            deadline = time.monotonic() + 60
            while not client.status().get("last_run"):
                assert time.monotonic() < deadline, client.status()
                time.sleep(0.05)
            for name, what in (
                ("nan", "the result['json'] is nan: JSON has no NaN or infinity"),
                ("inf", "the result['json'] is -inf: JSON has no NaN or infinity"),
                ("huge", "the result['json'] is an int of about 5000 digits"),
                ("listed", "the result['json'][2] is nan"),
            ):
                started = time.monotonic()
                with pytest.raises(ProtocolError) as raised:
                    client.fetch(name)
                assert time.monotonic() - started < 10  # an answer, not the client's timeout
                assert raised.value.type == "Unencodable", raised.value
                assert str(raised.value).startswith(
                    f"the reply to 'fetch' cannot be sent as JSON: {what}"
                ), raised.value
            assert client.fetch("fine") == [1.0, 2.0]  # and the daemon goes on answering
    finally:
        running.stop()
