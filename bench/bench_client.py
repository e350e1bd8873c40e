"""Measures the control endpoint: ping round trip, status of a 1000-reactor plant, ping while busy.

Three figures, each next to a baseline measured in the same run, against real
`python -m pyplantd.cli watch pipeline.py` subprocesses:

1. `ping` round trip, p50/p99, over ipc (a short project path) and tcp 127.0.0.1 (a project path
   too long for a Unix socket, so the daemon binds tcp), with the real `Client.ping()` and with a
   raw DEALER using `protocol.encode_request` / `decode_reply`. Baselines: a bare pyzmq REQ/REP
   and a bare DEALER/ROUTER echo server (its own process, same transport, same message sizes).
2. `status` of a daemon whose plant is a generated chain of 1000 reactors, run once, so every
   reactor has a state: p50/p95/p99, split into client decode and the daemon's encoding.
3. (informational) `ping` and `status` while a CPU-bound pure-Python reactor runs on the daemon's
   main thread; baseline: the same calls to an idle daemon.

Prints a Markdown section on stdout; progress on stderr.

    bench/.venv/bin/python bench/bench_client.py --pings 10000 --statuses 500 --spin-seconds 30
"""

from __future__ import annotations

import argparse
import contextlib
import math
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from _common import child_env, load_average, log, md_table, percentile, tail
from pyplant_client import Client, protocol

STARTUP_TIMEOUT = 180.0  # connection file, then the first run finished
STOP_TIMEOUT = 20.0
CALL_TIMEOUT = 10.0  # seconds a single request may take before it counts as lost
WARMUP_CALLS = 200
MAX_IPC_PATH = 100  # the daemon binds tcp when `.pyplantd/request.sock` is this long or longer
POLL = 0.05  # how often the benchmark looks for a state; it never times anything with it
TARGET_RATIO = 2.0
TARGET_STATUS_P50 = 0.020
TARGET_BUSY_P99 = 0.100


# --- pipelines -----------------------------------------------------------------------------------

TINY_SCRIPT = """\
from pathlib import Path

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def hello(pipe):
    pipe.send("greeting", "hello")


if __name__ == "__main__":
    with Plant(Path(__file__).parent / "plant") as plant:
        plant.run_reactor(hello)
"""

CHAIN_HEAD = """\
from pathlib import Path

import numpy as np

from pyplantd import Ingredient, Plant, ReactorFunc


@ReactorFunc
def r0(pipe):
    pipe.send("i0", np.zeros(4), Ingredient.Type.array)
"""

CHAIN_LINK = """

@ReactorFunc
def r{k}(pipe):
    value = yield pipe.receive("i{prev}")
    pipe.send("i{k}", value + 1.0, Ingredient.Type.array)
"""

CHAIN_TAIL = """

if __name__ == "__main__":
    with Plant(Path(__file__).parent / "plant") as plant:
        plant.run_reactor(r{last})
"""

SPIN_SCRIPT = """\
import os
import time
from pathlib import Path

from pyplantd import Plant, ReactorFunc


def mark(path, when):
    Path(path + ".tmp").write_text(repr(when))
    os.replace(path + ".tmp", path)  # a reader sees the whole time or no file


@ReactorFunc
def spin(pipe):
    # Pure Python on the main thread: it holds the GIL except at the interpreter's switches.
    start = time.monotonic()
    mark({start_mark!r}, start)
    total = 0
    while time.monotonic() - start < {seconds!r}:
        for i in range(10_000):
            total += i * i
    mark({end_mark!r}, time.monotonic())
    pipe.send("total", total)


if __name__ == "__main__":
    with Plant(Path(__file__).parent / "plant") as plant:
        plant.run_reactor(spin)
"""


def chain_script(reactors: int) -> str:
    links = "".join(CHAIN_LINK.format(k=k, prev=k - 1) for k in range(1, reactors))
    return CHAIN_HEAD + links + CHAIN_TAIL.format(last=reactors - 1)


# --- daemons and bare servers --------------------------------------------------------------------


def project(parent: Path, name: str, script: str, tcp: bool = False) -> Path:
    """A project dir holding `pipeline.py`; for tcp, one whose socket path is too long for ipc."""
    root = parent / name
    if tcp:
        short = len(str(root / ".pyplantd" / "request.sock")) + 1
        root = root / ("long_path_so_the_daemon_binds_tcp_" + "x" * max(0, MAX_IPC_PATH - short))
    root.mkdir(parents=True)
    (root / "pipeline.py").write_text(script)
    return root


class Daemon:
    """`python -m pyplantd.cli watch pipeline.py` run in `root`; its output goes to files there."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.connection = root / protocol.RUNTIME_DIR / protocol.CONNECTION_FILE

    def start(self) -> None:
        cmd = [sys.executable, "-m", "pyplantd.cli", "watch", "pipeline.py"]
        out, err = (self.root / "daemon.out").open("w"), (self.root / "daemon.err").open("w")
        with out, err:
            self.proc = subprocess.Popen(
                cmd, cwd=self.root, env=child_env(), stdout=out, stderr=err
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def failure(self, what: str) -> str:
        code = self.proc.returncode if self.proc is not None else None
        state = "still running" if self.alive() else f"exited with code {code}"
        out, err = (_read(self.root / name) for name in ("daemon.out", "daemon.err"))
        return f"{what} (the daemon {state}); stderr: {tail(err)}; stdout: {tail(out)}"

    def client(self) -> Client:
        """Once the connection file is there: a Client (else RuntimeError saying why)."""
        if not wait_for(lambda: self.connection.is_file() or not self.alive(), STARTUP_TIMEOUT):
            raise RuntimeError(self.failure(f"no {self.connection} after {STARTUP_TIMEOUT:.0f} s"))
        if not self.alive():
            raise RuntimeError(self.failure("no connection file"))
        return Client.find(self.root, timeout=CALL_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log(f"daemon pid {self.proc.pid} ignored SIGTERM for {STOP_TIMEOUT:.0f} s: killing it")
            self.proc.kill()
            self.proc.wait()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True


def wait_first_run(daemon: Daemon, client: Client, timeout: float = STARTUP_TIMEOUT) -> dict:
    """The status once the daemon's first run finished and it is idle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.status()
        if status.get("last_run") and status.get("state") == "idle":
            return status
        if not daemon.alive():
            break
        time.sleep(POLL)
    raise RuntimeError(daemon.failure(f"the first run did not finish within {timeout:.0f} s"))


# A bare echo server: no signing, no JSON, no poller; replies with frames as large as the daemon's.
BARE_SERVER = """\
import sys
import zmq

kind, endpoint, sizes = sys.argv[1], sys.argv[2], [int(n) for n in sys.argv[3].split(",")]
socket = zmq.Context().socket(zmq.REP if kind == "rep" else zmq.ROUTER)
if endpoint == "tcp":
    endpoint = f"tcp://127.0.0.1:{socket.bind_to_random_port('tcp://127.0.0.1')}"
else:
    socket.bind(endpoint)
print(endpoint, flush=True)
reply = [b"s" * size for size in sizes]
while True:
    frames = socket.recv_multipart()
    socket.send_multipart(reply if kind == "rep" else [frames[0], *reply])
"""


class BareServer:
    """BARE_SERVER in its own process (SIGTERM ends it)."""

    def __init__(self, work: Path, kind: str, transport: str, reply_sizes: Sequence[int]) -> None:
        script = work / "bare_server.py"
        script.write_text(BARE_SERVER)
        where = "tcp" if transport == "tcp" else f"ipc://{work}/bare-{kind}.sock"
        sizes = ",".join(str(n) for n in reply_sizes)
        self.proc = subprocess.Popen(
            [sys.executable, str(script), kind, where, sizes],
            stdout=subprocess.PIPE, env=child_env(), text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.endpoint = self.proc.stdout.readline().strip()
        if not self.endpoint:
            raise RuntimeError(f"the bare {kind} server did not start (code {self.proc.poll()})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- callers -------------------------------------------------------------------------------------

Call = Callable[[], Any]


def socket_to(context: zmq.Context, kind: int, endpoint: str) -> zmq.Socket:
    socket = context.socket(kind)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVTIMEO, int(CALL_TIMEOUT * 1000))
    socket.setsockopt(zmq.SNDTIMEO, int(CALL_TIMEOUT * 1000))
    socket.connect(endpoint)
    return socket


def bare_call(socket: zmq.Socket, request: list[bytes]) -> Call:
    def call() -> None:
        socket.send_multipart(request)
        socket.recv_multipart()

    return call


def raw_call(socket: zmq.Socket, key: bytes, cmd: str) -> Call:
    """The protocol, without the Client: sign, send, blocking receive, verify, parse."""

    def call() -> dict[str, Any]:
        socket.send_multipart(protocol.encode_request(key, cmd))
        message = protocol.decode_reply(key, socket.recv_multipart())
        if not message.get("ok"):
            raise RuntimeError(f"the daemon refused {cmd}: {message.get('error')}")
        return message

    return call


def latencies(call: Call, count: int) -> list[float]:
    """Seconds per call, `count` calls back to back."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


@dataclass
class Series:
    """Round trips of one way of calling one endpoint."""

    label: str
    transport: str
    call: Call | None = None
    samples: list[float] = field(default_factory=list)
    round_p50s: list[float] = field(default_factory=list)
    failure: str = ""

    def p(self, q: float) -> float:
        return percentile(self.samples, q) if self.samples else math.nan

    @property
    def min(self) -> float:
        return min(self.samples, default=math.nan)

    def measure(self, count: int) -> None:
        if self.call is None or self.failure:
            return
        try:
            self.samples.extend(latencies(self.call, count))
        except Exception as err:
            self.failure = f"{type(err).__name__}: {err}"
            log(f"  FAILED {self.label} over {self.transport}: {self.failure}")


def in_rounds(series: Sequence[Series], total: int, rounds: int) -> None:
    """Warm each up, then `total` calls each, in rounds with a rotating order, so that other
    work on the machine lands on every series alike."""
    for one in series:
        one.measure(WARMUP_CALLS)
        one.samples.clear()
    per_round = math.ceil(total / rounds)
    for r in range(rounds):
        log(f"  round {r + 1}/{rounds}: {per_round} calls of each of {len(series)}")
        shift = r % len(series)
        for one in [*series[shift:], *series[:shift]]:
            before = len(one.samples)
            one.measure(min(per_round, total - before))
            if len(one.samples) > before:
                one.round_p50s.append(percentile(one.samples[before:], 50))


# --- 1. ping -------------------------------------------------------------------------------------


@dataclass
class PingPart:
    series: list[Series] = field(default_factory=list)
    endpoints: dict[str, str] = field(default_factory=dict)
    protocol_cost: list[float] = field(default_factory=list)  # a caller's encode + decode
    daemon_cost: list[float] = field(default_factory=list)  # the daemon's decode + encode
    request_sizes: list[int] = field(default_factory=list)
    reply_sizes: list[int] = field(default_factory=list)
    idle_status: list[float] = field(default_factory=list)  # for part 3's baseline
    failures: list[str] = field(default_factory=list)

    def get(self, label: str, transport: str) -> Series:
        return next(s for s in self.series if s.label == label and s.transport == transport)


LABELS = ("bare REQ/REP", "bare DEALER/ROUTER", "raw DEALER → daemon", "Client.ping() → daemon")


def measure_ping(args: argparse.Namespace, work: Path, stack: contextlib.ExitStack) -> PingPart:
    part = PingPart()
    context = zmq.Context()
    stack.callback(context.destroy, 0)
    for transport in ("ipc", "tcp"):
        log(f"ping: starting the {transport} daemon and the bare servers")
        part.series.extend(Series(label, transport) for label in LABELS)
        try:
            _connect_ping(part, transport, work, context, stack)
        except Exception as err:
            part.failures.append(f"{transport}: {type(err).__name__}: {err}")
            log(f"  FAILED {part.failures[-1]}\n{traceback.format_exc()}")
    log(f"ping: {args.pings} calls of each of {len(part.series)} ways, {args.rounds} rounds")
    in_rounds([s for s in part.series if s.call is not None], args.pings, args.rounds)
    return part


def _connect_ping(
    part: PingPart, transport: str, work: Path, context: zmq.Context, stack: contextlib.ExitStack
) -> None:
    root = project(work, f"ping_{transport}", TINY_SCRIPT, tcp=transport == "tcp")
    daemon = Daemon(root)
    daemon.start()
    stack.callback(daemon.stop)
    client = daemon.client()
    stack.callback(client.close)
    wait_first_run(daemon, client)
    endpoint = client.info.request
    part.endpoints[transport] = endpoint
    if not endpoint.startswith(f"{transport}://"):
        part.failures.append(f"the {transport} daemon bound {endpoint}, not {transport}")
    key = client.info.key_bytes
    dealer = socket_to(context, zmq.DEALER, endpoint)
    request = protocol.encode_request(key, "ping")
    raw = raw_call(dealer, key, "ping")
    sock_reply = _sized_reply(dealer, key)  # sizes the bare servers' replies
    part.request_sizes, part.reply_sizes = [len(f) for f in request], [len(f) for f in sock_reply]
    if transport == "ipc":
        part.protocol_cost = _protocol_cost(key, sock_reply)
        part.daemon_cost = _daemon_cost(key)
        part.idle_status = latencies(client.status, 1000)
    servers = {
        kind: BareServer(work, kind, transport, part.reply_sizes) for kind in ("rep", "router")
    }
    for server in servers.values():
        stack.callback(server.stop)
    bare_req = socket_to(context, zmq.REQ, servers["rep"].endpoint)
    bare_dealer = socket_to(context, zmq.DEALER, servers["router"].endpoint)
    calls = (
        bare_call(bare_req, request), bare_call(bare_dealer, request), raw, client.ping,
    )  # fmt: skip
    for label, call in zip(LABELS, calls, strict=True):
        part.get(label, transport).call = call


def _sized_reply(dealer: zmq.Socket, key: bytes) -> list[bytes]:
    dealer.send_multipart(protocol.encode_request(key, "ping"))
    return dealer.recv_multipart()


def _protocol_cost(key: bytes, reply: list[bytes], count: int = 10_000) -> list[float]:
    """What the protocol itself costs a client per ping: sign a request, verify and parse a reply
    (no socket, no daemon)."""

    def call() -> None:
        protocol.encode_request(key, "ping")
        protocol.decode_reply(key, reply)

    latencies(call, 1000)
    return latencies(call, count)


def _daemon_cost(key: bytes, count: int = 10_000) -> list[float]:
    """What the protocol costs the daemon per ping: verify, replay-check and parse a request,
    sign a reply (timed in this process on fresh requests; no socket, no poller)."""
    guard = protocol.ReplayGuard()
    samples = []
    for _ in range(count + 1000):
        frames = protocol.encode_request(key, "ping")
        start = time.perf_counter()
        request = protocol.decode_request(key, frames, guard)
        protocol.encode_reply(key, request.id, {"pong": True, "time": time.time()})
        samples.append(time.perf_counter() - start)
    return samples[1000:]


# --- 2. status of a 1000-reactor plant -----------------------------------------------------------


@dataclass
class StatusPart:
    reactors: int = 0
    with_state: int = 0
    states: dict[str, int] = field(default_factory=dict)
    first_run: str = ""
    client: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    decode: list[float] = field(default_factory=list)  # the client's verify + parse
    encode: list[float] = field(default_factory=list)  # the daemon's JSON + signature
    reply_bytes: int = 0
    failure: str = ""


def measure_status(args: argparse.Namespace, work: Path, stack: contextlib.ExitStack) -> StatusPart:
    part = StatusPart(reactors=args.reactors)
    log(f"status: starting a daemon on a chain of {args.reactors} reactors (its first run)")
    try:
        _measure_status(args, part, work, stack)
    except Exception as err:
        part.failure = f"{type(err).__name__}: {err}"
        log(f"  FAILED status: {part.failure}\n{traceback.format_exc()}")
    return part


def _measure_status(
    args: argparse.Namespace, part: StatusPart, work: Path, stack: contextlib.ExitStack
) -> None:
    daemon = Daemon(project(work, "status_chain", chain_script(args.reactors)))
    daemon.start()
    stack.callback(daemon.stop)
    client = daemon.client()
    stack.callback(client.close)
    started = time.perf_counter()
    status = wait_first_run(daemon, client)
    last = status.get("last_run") or {}
    part.first_run = (
        f"status {last.get('status')}, {last.get('ran')} ran, {last.get('warm')} warm, "
        f"{_ms(last.get('duration', math.nan))}; seen idle "
        f"{time.perf_counter() - started:.1f} s after the connection file appeared"
    )
    reactors = status.get("reactors") or {}
    part.with_state = len(reactors)
    for info in reactors.values():
        part.states[info.get("state", "?")] = part.states.get(info.get("state", "?"), 0) + 1
    key = client.info.key_bytes
    dealer = socket_to(stack.enter_context(zmq.Context()), zmq.DEALER, client.info.request)
    stack.callback(dealer.close, 0)
    raw = raw_call(dealer, key, "status")
    log(f"status: {args.statuses} calls each of Client.status() and a raw DEALER, interleaved")
    latencies(client.status, 20)
    latencies(raw, 20)
    for _ in range(args.statuses):
        part.client.extend(latencies(client.status, 1))
        part.raw.extend(latencies(raw, 1))
    dealer.send_multipart(protocol.encode_request(key, "status"))
    frames = dealer.recv_multipart()
    part.reply_bytes = sum(len(f) for f in frames)
    result = protocol.decode_reply(key, frames)["result"]
    part.decode = latencies(lambda: protocol.decode_reply(key, frames), 200)
    part.encode = latencies(lambda: protocol.encode_reply(key, "0" * 16, result), 200)


# --- 3. ping and status while a CPU-bound reactor runs -------------------------------------------


@dataclass
class BusyPart:
    seconds: float = 0.0
    ping: list[float] = field(default_factory=list)
    status: list[float] = field(default_factory=list)
    running_seen: int = 0  # status replies during the window saying the reactor is running
    lost: int = 0  # calls that got no reply within CALL_TIMEOUT
    slow: list[tuple[str, float, float]] = field(default_factory=list)  # (cmd, at, seconds)
    spin_elapsed: float = math.nan
    failure: str = ""


def measure_busy(args: argparse.Namespace, work: Path, stack: contextlib.ExitStack) -> BusyPart:
    part = BusyPart(seconds=args.spin_seconds)
    log(f"busy: a daemon running a {args.spin_seconds:.0f} s CPU-bound reactor")
    try:
        _measure_busy(args, part, work, stack)
    except Exception as err:
        part.failure = f"{type(err).__name__}: {err}"
        log(f"  FAILED busy: {part.failure}\n{traceback.format_exc()}")
    return part


def _measure_busy(
    args: argparse.Namespace, part: BusyPart, work: Path, stack: contextlib.ExitStack
) -> None:
    root = work / "busy"
    start_mark, end_mark = root / "spin.start", root / "spin.end"
    script = SPIN_SCRIPT.format(
        start_mark=str(start_mark), end_mark=str(end_mark), seconds=args.spin_seconds
    )
    daemon = Daemon(project(work, "busy", script))
    daemon.start()
    stack.callback(daemon.stop)
    client = daemon.client()
    stack.callback(client.close)
    if not wait_for(lambda: start_mark.exists() or not daemon.alive(), STARTUP_TIMEOUT):
        raise RuntimeError(daemon.failure("the CPU-bound reactor did not start"))
    calls: list[tuple[str, float, float, dict]] = []  # (cmd, sent, answered, result)
    deadline = time.monotonic() + args.spin_seconds + STARTUP_TIMEOUT
    while not end_mark.exists() and daemon.alive() and time.monotonic() < deadline:
        for cmd, call in (("ping", client.ping), ("status", client.status)):
            sent = time.monotonic()
            try:
                result = call()
            except Exception as err:  # a lost reply is a finding, not a crash
                part.lost += 1
                log(f"  {cmd} got no reply: {type(err).__name__}: {err}")
                continue
            calls.append((cmd, sent, time.monotonic(), result))
    if not wait_for(lambda: end_mark.exists() or not daemon.alive(), CALL_TIMEOUT):
        raise RuntimeError(daemon.failure("the CPU-bound reactor did not finish"))
    begin, end = float(start_mark.read_text()), float(end_mark.read_text())
    part.spin_elapsed = end - begin
    for cmd, sent, answered, result in calls:
        if sent < begin or answered > end:
            continue  # only calls wholly inside the reactor's run count
        (part.ping if cmd == "ping" else part.status).append(answered - sent)
        if answered - sent > TARGET_BUSY_P99:
            part.slow.append((cmd, sent - begin, answered - sent))
        if cmd == "status" and (result.get("reactors") or {}).get("spin", {}).get("state") == (
            "running"
        ):
            part.running_seen += 1


# --- the report ----------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    """Milliseconds with three significant figures (µs below 1 ms)."""
    if seconds is None or math.isnan(seconds):
        return "—"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 0.01:
        return f"{seconds * 1000:.2f} ms"
    return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds * 1000:.0f} ms"


def _ratio(numerator: float, denominator: float) -> str:
    if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
        return "—"
    return f"{numerator / denominator:.2f}x"


def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("**met**" if ok else "**not met**")


def ping_rows(part: PingPart) -> list[list[str]]:
    rows = []
    for one in part.series:
        bare = part.get(LABELS[0], one.transport)
        shown = [_ms(one.p(q)) for q in (50, 99)] if one.samples else ["—", "—"]
        rows.append(
            [
                one.label, one.transport, *shown, _ms(min(one.samples, default=math.nan)),
                _ratio(one.p(50), bare.p(50)), _ratio(one.p(99), bare.p(99)),
                f"{len(one.samples)}" + (f", failed: {one.failure}" if one.failure else ""),
            ]
        )  # fmt: skip
    return rows


def ping_target(part: PingPart, transport: str) -> bool | None:
    client, bare = part.get(LABELS[3], transport), part.get(LABELS[0], transport)
    if not client.samples or not bare.samples:
        return None
    return max(client.p(50) / bare.p(50), client.p(99) / bare.p(99)) <= TARGET_RATIO


def split_rows(part: PingPart) -> list[list[str]]:
    """Where a Client.ping's time goes: transport, the protocol on both sides, the daemon's
    loop, the Client class. Differences of percentiles, so approximate."""
    signing, daemon = percentile(part.protocol_cost, 50), percentile(part.daemon_cost, 50)
    rows = []
    for transport in ("ipc", "tcp"):
        rep, router, raw, client = (part.get(label, transport) for label in LABELS)
        if not all(s.samples for s in (rep, router, raw, client)):
            continue
        loop_p50 = raw.p(50) - router.p(50) - signing - daemon
        loop_min = raw.min - router.min - signing - daemon
        rows.append(
            [
                transport, _pair(client.p(50), client.min), _pair(rep.p(50), rep.min),
                _pair(router.p(50), router.min), _ms(signing), _ms(daemon),
                _pair(loop_p50, loop_min), _pair(client.p(50) - raw.p(50), client.min - raw.min),
            ]
        )  # fmt: skip
    return rows


def _pair(p50: float, low: float) -> str:
    return f"{_ms(p50)} ({_ms(low)})"


def _floor(client: Series, bare: Series) -> str:
    if not client.min / bare.min > TARGET_RATIO:
        return ""
    return (
        ": **at the uncontended floor the daemon path is over "
        f"{TARGET_RATIO:g}x**, so a p50 verdict near {TARGET_RATIO:g}x reflects how much other "
        "work on the machine stretched the bare round trip"
    )


def ratio_spread(part: PingPart, transport: str) -> str:
    """The per-round p50 ratio Client.ping() / bare REQ/REP: lowest and highest round."""
    client, bare = part.get(LABELS[3], transport), part.get(LABELS[0], transport)
    ratios = [c / b for c, b in zip(client.round_p50s, bare.round_p50s, strict=False) if b > 0]
    if not ratios:
        return "—"
    return f"{min(ratios):.2f}x to {max(ratios):.2f}x over {len(ratios)} rounds"


def status_rows(part: StatusPart) -> list[list[str]]:
    rows = []
    for label, samples in (
        ("`Client.status()`", part.client),
        ("raw DEALER `status`", part.raw),
        ("client side only: `decode_reply` of the reply (no socket)", part.decode),
        ("daemon side, part: `encode_reply` of the result (no socket)", part.encode),
    ):
        cells = [_ms(percentile(samples, q)) for q in (50, 95, 99)]
        rows.append([label, *cells, _ms(max(samples, default=math.nan)), str(len(samples))])
    return rows


def busy_rows(ping: PingPart, busy: BusyPart) -> list[list[str]]:
    idle_ping = ping.get(LABELS[3], "ipc").samples
    rows = []
    for label, idle, loaded in (
        ("`Client.ping()`", idle_ping, busy.ping),
        ("`Client.status()` (1 reactor)", ping.idle_status, busy.status),
    ):
        for name, samples in (("idle daemon", idle), ("CPU-bound reactor running", loaded)):
            cells = [_ms(percentile(samples, q)) for q in (50, 90, 99)]
            rows.append([label, name, *cells, _ms(max(samples, default=math.nan)), len(samples)])
    return rows


def findings(
    ping: PingPart, status: StatusPart, busy: BusyPart, loads: tuple[str, str]
) -> list[str]:
    notes = []
    for transport in ("ipc", "tcp"):
        client, bare = ping.get(LABELS[3], transport), ping.get(LABELS[0], transport)
        ok = ping_target(ping, transport)
        if ok is not None:
            notes.append(
                f"Ping over {transport}: `Client.ping()` p50 {_ms(client.p(50))} vs bare REQ/REP "
                f"{_ms(bare.p(50))} ({_ratio(client.p(50), bare.p(50))}), p99 {_ms(client.p(99))} "
                f"vs {_ms(bare.p(99))} ({_ratio(client.p(99), bare.p(99))}): target (within "
                f"{TARGET_RATIO:g}x at p50 and p99) {_met(ok)}. The p50 ratio per round: "
                f"{ratio_spread(ping, transport)}; the mins: {_ms(client.min)} vs "
                f"{_ms(bare.min)} ({_ratio(client.min, bare.min)}){_floor(client, bare)}."
            )
    notes.extend(f"**Failure**: {failure}" for failure in ping.failures)
    if status.failure:
        notes.append(f"**Status failed**: {status.failure}")
    elif status.client:
        p50 = percentile(status.client, 50)
        notes.append(
            f"Status of {status.with_state} reactors with a state (of {status.reactors}; "
            f"{_states(status.states)}), {status.reply_bytes / 1024:.0f} KiB per reply: p50 "
            f"{_ms(p50)}, p95 {_ms(percentile(status.client, 95))}, p99 "
            f"{_ms(percentile(status.client, 99))}: target (p50 < "
            f"{TARGET_STATUS_P50 * 1000:.0f} ms) {_met(p50 < TARGET_STATUS_P50)}."
        )
        if status.with_state != status.reactors:
            notes.append(
                f"**Only {status.with_state} of {status.reactors} reactors have a state** in "
                "`status` after the first run."
            )
    if busy.failure:
        notes.append(f"**Busy daemon failed**: {busy.failure}")
    elif busy.ping:
        worst = max(percentile(busy.ping, 99), percentile(busy.status, 99))
        notes.append(
            f"While the {busy.spin_elapsed:.1f} s CPU-bound reactor ran: ping p99 "
            f"{_ms(percentile(busy.ping, 99))}, status p99 {_ms(percentile(busy.status, 99))} "
            f"({len(busy.ping)} + {len(busy.status)} calls back to back, {busy.lost} lost; "
            f"{busy.running_seen} of {len(busy.status)} status replies showed `spin` running): "
            f"the issue's expectation (within {TARGET_BUSY_P99 * 1000:.0f} ms p99) "
            f"{_met(worst < TARGET_BUSY_P99)} (informational). {_slow(busy)}"
        )
    notes.append(f"Load average {loads[0]} before, {loads[1]} after (2 cores, shared machine).")
    return notes


def _slow(busy: BusyPart) -> str:
    if not busy.slow:
        return f"No call took over {TARGET_BUSY_P99 * 1000:.0f} ms."
    shown = ", ".join(f"{cmd} {_ms(took)} at {at:.1f} s" for cmd, at, took in busy.slow[:6])
    more = f" and {len(busy.slow) - 6} more" if len(busy.slow) > 6 else ""
    calls = f"{len(busy.slow)} call{'s' if len(busy.slow) > 1 else ''}"
    return (
        f"**{calls} took over {TARGET_BUSY_P99 * 1000:.0f} ms** (time since the reactor "
        f"started): {shown}{more}."
    )


def _states(states: dict[str, int]) -> str:
    return ", ".join(f"{count} {state}" for state, count in sorted(states.items())) or "none"


def render(
    args: argparse.Namespace,
    ping: PingPart,
    status: StatusPart,
    busy: BusyPart,
    loads: tuple[str, str],
) -> str:
    ping_table = md_table(
        ["caller → server", "transport", "p50", "p99", "min", "p50 / bare REQ/REP",
         "p99 / bare REQ/REP", "calls"],
        ping_rows(ping),
    )  # fmt: skip
    split_table = md_table(
        ["transport", "`Client.ping()`", "bare REQ/REP", "bare DEALER/ROUTER echo",
         "caller: sign + verify + parse (no socket)",
         "daemon: `decode_request` + `encode_reply` (no socket)",
         "daemon: the rest (receive, dispatch, send, thread)", "`Client` over a raw DEALER"],
        split_rows(ping),
    )  # fmt: skip
    status_table = md_table(["what", "p50", "p95", "p99", "max", "calls"], status_rows(status))
    busy_table = md_table(
        ["call", "daemon", "p50", "p90", "p99", "max", "calls"], busy_rows(ping, busy)
    )
    return SECTION.format(
        pings=args.pings,
        rounds=args.rounds,
        warmup=WARMUP_CALLS,
        ipc=ping.endpoints.get("ipc", "—"),
        tcp=ping.endpoints.get("tcp", "—"),
        request_sizes=" + ".join(str(n) for n in ping.request_sizes) or "—",
        reply_sizes=" + ".join(str(n) for n in ping.reply_sizes) or "—",
        ping_table=ping_table,
        split=split_table,
        reactors=args.reactors,
        last=args.reactors - 1,
        statuses=args.statuses,
        first_run=status.first_run or "—",
        status_table=status_table,
        spin=args.spin_seconds,
        busy_table=busy_table,
        findings="\n".join(f"- {note}" for note in findings(ping, status, busy, loads)),
        command=command_line(args),
    )


SECTION = """\
## Client: ping round trip, status of {reactors} reactors, a busy daemon

**What is measured.** Round trips to real `python -m pyplantd.cli watch pipeline.py`
subprocesses, timed in this process with `time.perf_counter` around each call, calls back to
back. Each daemon has finished its first run and sits idle unless said otherwise.

**1. `ping`**, {pings} calls of each way of calling, after {warmup} warm-up calls each, in
{rounds} rounds with a rotating order (other work on the machine lands on every way alike).
Two daemons on a one-reactor pipeline: one in a short project path, which binds
`{ipc}`, one in a path too long for a Unix socket, which binds `{tcp}`. Next to each, two bare
pyzmq echo servers in their own processes on the same transport (ipc in the same temp dir, or
tcp 127.0.0.1): a REP socket (the issue's baseline) and a ROUTER socket (the daemon's socket
type), each a blocking `recv_multipart` / `send_multipart` loop with no signing and no JSON,
receiving the same {request_sizes} request bytes and replying with as many bytes as the
daemon's ping reply ({reply_sizes}). "raw DEALER" is a DEALER socket with
`protocol.encode_request` / `decode_reply`, pyzmq's `send_multipart` and a blocking
`recv_multipart`: the protocol without the `Client` class, which sends and receives through
`pyplant_client.transport` instead. The ratios divide by bare REQ/REP over the same transport.

{ping_table}

Where a `Client.ping()` goes, p50 (min): the bare DEALER/ROUTER echo, plus the protocol work
of each side timed in this process without a socket (p50 of 10000; the daemon's on fresh
requests, replay guard included), plus the rest of the daemon's loop (raw DEALER minus the bare
echo minus both protocol costs), plus what the `Client` class adds over a raw DEALER (a receive
with a deadline, id matching; negative where its leaner send and receive save more than that
costs). Differences of percentiles, so approximate; the mins are the uncontended floor.

{split}

**2. `status` of a chain of {reactors} reactors** (`r0` sends a 4-element array, each `r<k>`
receives the previous one, adds 1, sends; target `r{last}`), on an ipc daemon after its first
run ({first_run}). {statuses} calls of `Client.status()` interleaved with {statuses} raw DEALER
calls, after 20 warm-up calls each; then, in this process on one real reply, the client's
`decode_reply` and the `encode_reply` the daemon does for each reply (the daemon also copies
its state snapshot and reads memory counters, not isolated here).

{status_table}

**3. A busy daemon (informational).** A daemon whose only reactor loops in pure Python for
{spin:g} s on its main thread (GIL held but for the interpreter's switch interval), while this
process calls `ping` and `status` alternately, back to back. Only calls sent after the reactor
wrote its start time and answered before it wrote its end time count (`time.monotonic`, the
same clock in both processes). The idle rows are part 1's ipc `Client.ping()` and 1000
`Client.status()` calls to part 1's idle ipc daemon.

{busy_table}

**Findings.**
{findings}

**Command:** `bash bench/run.sh bench_client`, which runs

    {command}
"""


def command_line(args: argparse.Namespace) -> str:
    return (
        f"bench/.venv/bin/python bench/bench_client.py --pings {args.pings} --rounds "
        f"{args.rounds} --reactors {args.reactors} --statuses {args.statuses} --spin-seconds "
        f"{args.spin_seconds:g}"
    )


# --- entry point ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pings", type=int, default=10_000, help="calls per way of pinging")
    parser.add_argument("--rounds", type=int, default=10, help="rounds the pings are split into")
    parser.add_argument("--reactors", type=int, default=1000, help="chain length for status")
    parser.add_argument("--statuses", type=int, default=500, help="status calls")
    parser.add_argument("--spin-seconds", type=float, default=30.0, help="CPU-bound reactor")
    args = parser.parse_args(argv)
    if min(args.pings, args.rounds, args.statuses) < 1 or args.reactors < 2:
        parser.error("need --pings, --rounds, --statuses >= 1 and --reactors >= 2")
    return args


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    # Short, so that the ipc socket paths fit (the tcp daemon's project path is made long).
    with tempfile.TemporaryDirectory(prefix="bcl_", dir="/tmp") as tmp:
        yield Path(tmp)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    load_before = load_average()
    with temp_dir() as work:
        with contextlib.ExitStack() as stack:
            ping = measure_ping(args, work, stack)
        with contextlib.ExitStack() as stack:
            status = measure_status(args, work, stack)
        with contextlib.ExitStack() as stack:
            busy = measure_busy(args, work, stack)
    print(render(args, ping, status, busy, (load_before, load_average())))


if __name__ == "__main__":
    main()
