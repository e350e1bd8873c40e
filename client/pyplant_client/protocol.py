"""The pyplantd control protocol: the ONE definition of messages, signing, limits and version,
used by the daemon's server and by every client. Standard library only.

Transport: ZeroMQ over loopback only (ipc:// in the daemon's runtime dir, or tcp://127.0.0.1).
Requests go client DEALER -> daemon ROUTER, events daemon PUB -> client SUB.

Every message is a list of frames `[signature, payload]` (events: `[topic, signature, payload]`):
`payload` is UTF-8 JSON, `signature` is HMAC-SHA256 over the frames after it, keyed with the
random key of the connection file (mode 0600), checked in constant time before anything is
parsed. A request carries a random nonce and its time; the daemon refuses one whose time is off
by more than REPLAY_WINDOW seconds or whose nonce it has seen (replay protection). The key is
the connection file's hex text, encoded: `info.key.encode()`, not `bytes.fromhex`.

A reply may carry raw data frames after its two (`fetch` of an in-memory array). They are not
signed: the signed payload describes them (`nbytes`, `sha256`), and the client checks them
against it before use. Decode such a reply with `decode_reply(key, frames[:2])`.

    request  {"v": 1, "id": "…", "nonce": "…", "ts": 1732..., "cmd": "status", "args": {...}}
    reply    {"v": 1, "id": "…", "ok": true, "result": {...}}
             {"v": 1, "id": "…", "ok": false, "error": {"type": "BadArguments", "message": "…"}}
    event    {"v": 1, "seq": 7, "type": "reactor_finished", "time": 1732..., ...fields}
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

PROTOCOL_VERSION = 1
RUNTIME_DIR = ".pyplantd"
CONNECTION_FILE = "connection.json"
MAX_MESSAGE_BYTES = 4 * 2**20  # the daemon's default limit for one request
REPLAY_WINDOW = 60.0  # seconds a request stays valid; its nonce is remembered as long

COMMANDS = (
    "ping", "status", "run", "cancel", "invalidate", "ingredients", "preview", "fetch",
    "shutdown", "graph",
)  # fmt: skip
EVENT_TYPES = (
    "run_started", "reactor_started", "reactor_finished", "reactor_failed", "run_finished",
    "reload_failed", "log",
)  # fmt: skip


class ProtocolError(Exception):
    """A message that does not follow this protocol."""


class UnauthenticatedError(ProtocolError):
    """Bad signature, stale time or replayed nonce: such input gets no reply at all."""


# -- connection file -------------------------------------------------------------------------
@dataclass
class ConnectionInfo:
    """What a client needs to reach and trust a daemon; written by the daemon, mode 0600."""

    request: str  # endpoint of the ROUTER socket
    events: str  # endpoint of the PUB socket
    key: str  # hex HMAC key
    pid: int
    process_start: str  # identifies the process beyond its pid (pids are reused)
    instance: str = field(default_factory=lambda: secrets.token_hex(8))
    version: int = PROTOCOL_VERSION
    pipeline: str = ""
    pyplantd_version: str = ""

    @property
    def key_bytes(self) -> bytes:
        """The HMAC key as both sides use it: the bytes of the hex string."""
        return self.key.encode()

    def write(self, directory: Path) -> Path:
        """Atomically, owner-only: a reader sees the old file or the whole new one."""
        path = directory / CONNECTION_FILE
        fd, temp = tempfile.mkstemp(dir=directory, prefix=".connection-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(asdict(self), handle)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def read(cls, path: Path) -> ConnectionInfo:
        try:
            data = json.loads(path.read_text())
            return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
        except (OSError, ValueError, TypeError) as err:
            raise ProtocolError(f"{path} is not a readable connection file: {err}") from err


def process_start_time(pid: int) -> str:
    """When the process started (Linux: /proc/<pid>/stat field 22); '' if unknown or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # fields after the command name


def find_connection_file(start: Path) -> Path | None:
    """Walk up from `start` to the first `.pyplantd/connection.json`."""
    start = start.absolute()
    for folder in (start, *start.parents):
        candidate = folder / RUNTIME_DIR / CONNECTION_FILE
        if candidate.is_file():
            return candidate
    return None


def new_key() -> str:
    return secrets.token_hex(32)


# -- signing ----------------------------------------------------------------------------------
_BLOCK = 64  # SHA-256's block size in bytes
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


@functools.lru_cache(maxsize=16)
def _pads(key: bytes) -> tuple[Any, Any]:
    """SHA-256 states that have absorbed HMAC's inner and outer padded key (RFC 2104).

    HMAC-SHA256 exactly as `hmac.new(key, msg, "sha256")`, but copying these two states per
    message takes a few C calls, where keying an `hmac.HMAC` per message looks the digest up
    in OpenSSL and goes through several Python-level methods (microseconds per round trip).
    Cached per key: a process talks to one daemon or a few.
    """
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_IPAD)), hashlib.sha256(key.translate(_OPAD))


def sign(key: bytes, frames: list[bytes]) -> bytes:
    """Hex HMAC-SHA256 of the frames, each prefixed with its length (frame boundaries are part
    of what is signed)."""
    inner_pad, outer_pad = _pads(key)
    inner = inner_pad.copy()
    for frame in frames:
        inner.update(len(frame).to_bytes(8, "big"))
        inner.update(frame)
    outer = outer_pad.copy()
    outer.update(inner.digest())
    return outer.hexdigest().encode()


def _verified(key: bytes, frames: list[bytes]) -> bytes:
    if len(frames) != 2:
        raise UnauthenticatedError(f"expected 2 frames, got {len(frames)}")
    signature, payload = frames
    if not hmac.compare_digest(signature, sign(key, [payload])):
        raise UnauthenticatedError("bad signature")
    return payload


# Built once: json.dumps with options and json.loads build an encoder or go through checks
# on every call, which shows in a round trip of a few tens of microseconds.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_DECODER = json.JSONDecoder()
# CPython's C encoder with _ENCODER's options, built once where `encode` builds one per call.
# Without the circular-reference check: its state would be shared between threads.
_make_c_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE: Any = _make_c_encoder and _make_c_encoder(
    None, _ENCODER.default, json.encoder.encode_basestring_ascii, None, ":", ",",
    False, False, False,
)  # fmt: skip


def _parse(payload: bytes) -> Any:
    """The JSON value of a payload; ValueError (UnicodeDecodeError is one) if it is none."""
    text = payload.decode("utf-8")
    try:  # the common case, without decode()'s two whitespace scans
        value, end = _DECODER.raw_decode(text)
        if end == len(text):
            return value
    except ValueError:
        pass
    return _DECODER.decode(text)  # whitespace around the value, or the error to report


def _load(payload: bytes, limit: int) -> dict[str, Any]:
    if len(payload) > limit:
        raise ProtocolError(f"message of {len(payload)} bytes is over the {limit}-byte limit")
    try:
        message = _parse(payload)
    except ValueError as err:
        raise ProtocolError(f"not JSON: {err}") from err
    if not isinstance(message, dict):
        raise ProtocolError("a message is a JSON object")
    return _check_version(message)


def _check_version(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {message.get('v')!r}, this side speaks {PROTOCOL_VERSION}"
        )
    return message


def _dump(message: dict[str, Any]) -> bytes:
    """Compact JSON, exactly as `_ENCODER.encode`, with its TypeError and ValueError."""
    if _C_ENCODE is None:
        return _ENCODER.encode(message).encode()
    try:
        return "".join(_C_ENCODE(message, 0)).encode()
    except RecursionError as err:  # what _ENCODER's circular-reference check reports
        raise ValueError("circular reference in a message") from err


# -- requests ---------------------------------------------------------------------------------
class Request(NamedTuple):
    id: str
    cmd: str
    args: dict[str, Any]


def new_id() -> str:
    return os.urandom(8).hex()


def encode_request(
    key: bytes, cmd: str, args: dict[str, Any] | None = None, request_id: str | None = None
) -> list[bytes]:
    """A signed request; pass `request_id` to know it without parsing the request back."""
    message = {
        "v": PROTOCOL_VERSION, "id": request_id or new_id(), "nonce": os.urandom(16).hex(),
        "ts": time.time(), "cmd": cmd, "args": args or {},
    }  # fmt: skip
    payload = _dump(message)
    return [sign(key, [payload]), payload]


class ReplayGuard:
    """Remembers each nonce for as long as its request could still be accepted."""

    def __init__(
        self, window: float = REPLAY_WINDOW, capacity: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.window, self.capacity, self._clock = window, capacity, clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # nonce -> when it was sent or seen

    def check(self, nonce: object, sent_at: object) -> None:
        now = self._clock()
        if not isinstance(nonce, str) or not isinstance(sent_at, (int, float)):
            raise UnauthenticatedError("no nonce or time")
        if abs(now - sent_at) > self.window:
            raise UnauthenticatedError("request time outside the replay window")
        seen, horizon = self._seen, now - self.window
        while seen and (next(iter(seen.values())) < horizon or len(seen) > self.capacity):
            seen.popitem(last=False)
        if nonce in seen:
            raise UnauthenticatedError("replayed request")
        # A request dated ahead of our clock stays acceptable until its own time + window.
        seen[nonce] = max(now, sent_at)


def decode_request(
    key: bytes, frames: list[bytes], guard: ReplayGuard, limit: int = MAX_MESSAGE_BYTES
) -> Request:
    """UnauthenticatedError (no reply) or ProtocolError (one error reply) or a Request."""
    for frame in frames:
        if len(frame) > limit:
            raise UnauthenticatedError("oversized frame before authentication")
    payload = _verified(key, frames)
    try:  # parsed once; a message without a readable nonce cannot be checked for replay
        parsed = _parse(payload)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UnauthenticatedError("no readable nonce")
    guard.check(parsed.get("nonce"), parsed.get("ts"))
    message = _check_version(parsed)
    cmd, args = message.get("cmd"), message.get("args", {})
    if not isinstance(cmd, str) or not isinstance(args, dict):
        raise ProtocolError("a request needs a string 'cmd' and an object 'args'")
    return Request(str(message.get("id", "")), cmd, args)


# -- replies ----------------------------------------------------------------------------------
def encode_reply(key: bytes, request_id: str, result: dict[str, Any]) -> list[bytes]:
    payload = _dump({"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result})
    return [sign(key, [payload]), payload]


def encode_error(key: bytes, request_id: str, kind: str, message: str) -> list[bytes]:
    error = {"type": kind, "message": message}
    payload = _dump({"v": PROTOCOL_VERSION, "id": request_id, "ok": False, "error": error})
    return [sign(key, [payload]), payload]


def decode_reply(key: bytes, frames: list[bytes]) -> dict[str, Any]:
    """The reply message (check `ok`); raises ProtocolError for anything else."""
    message = _load(_verified(key, frames), 2**31)
    if "ok" not in message or "id" not in message:
        raise ProtocolError("a reply needs 'id' and 'ok'")
    return message


# -- events -----------------------------------------------------------------------------------
def encode_event(key: bytes, seq: int, kind: str, fields: dict[str, Any]) -> list[bytes]:
    message = {"v": PROTOCOL_VERSION, "seq": seq, "type": kind, "time": time.time(), **fields}
    payload = _dump(message)
    return [kind.encode(), sign(key, [payload]), payload]


def decode_event(key: bytes, frames: list[bytes]) -> dict[str, Any]:
    if len(frames) != 3:
        raise ProtocolError(f"an event has 3 frames, got {len(frames)}")
    message = _load(_verified(key, frames[1:]), 2**31)
    if frames[0] != str(message.get("type")).encode():  # the topic is not signed: it must agree
        raise ProtocolError(f"event topic {frames[0]!r} is not its type {message.get('type')!r}")
    return message
