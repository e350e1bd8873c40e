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

import contextlib
import functools
import hashlib
import hmac
import json
import math
import os
import secrets
import stat
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .trust import check_runtime_dir, check_secret_file, read_connection_file

PROTOCOL_VERSION = 1
RUNTIME_DIR = ".pyplantd"  # at the project root: see project_root()
CONNECTION_FILE = "connection.json"
PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")
MAX_MESSAGE_BYTES = 4 * 2**20  # the daemon's default limit for one request
REPLAY_WINDOW = 60.0  # seconds a request stays valid; its nonce is remembered as long

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# Each command's arguments: name -> (kind, required); kinds are checked by _ARG_KINDS.
COMMAND_ARGS: dict[str, dict[str, tuple[str, bool]]] = {
    "ping": {}, "status": {}, "run": {"targets": ("names", False)}, "cancel": {},
    "invalidate": {"reactor": ("name", True)}, "ingredients": {},
    "preview": {"name": ("name", True)}, "fetch": {"name": ("name", True)}, "shutdown": {},
    "graph": {}, "clean": {"names": ("names", False), "all": ("flag", False)},
    "mark": {"token": ("name", True)},
}  # fmt: skip
COMMANDS = tuple(COMMAND_ARGS)
REQUEST_FIELDS = frozenset({"v", "id", "nonce", "ts", "cmd", "args"})
MAX_ID_CHARS = 128  # a request id or nonce longer than this is not one a client made
MAX_DEPTH = 16  # containers inside a request; the deepest real one has 3
EVENT_TYPES = (
    "run_started", "reactor_started", "reactor_finished", "reactor_failed", "run_finished",
    "reload_failed", "log", "progress", "mark",
)  # fmt: skip
# `mark` asks the daemon to publish a `mark` event with the caller's token: once a subscriber
# sees its own token, its subscription is live and every event published later reaches it
# (ZeroMQ drops what a PUB socket sends before it has processed a subscription).


class ProtocolError(Exception):
    """A message that does not follow this protocol."""


class UnauthenticatedError(ProtocolError):
    """Bad signature, stale time or replayed nonce: such input gets no reply at all."""


class MalformedRequestError(ProtocolError):
    """A signed request that breaks the schema: answered once, with `kind` ("Malformed",
    "UnknownCommand" or "BadArguments") and the request's id when it has a usable one."""

    def __init__(self, kind: str, message: str, request_id: str = "") -> None:
        super().__init__(message)
        self.kind, self.request_id = kind, request_id


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
        """Atomically, owner-only: a reader sees the old file or the whole new one. Through a
        descriptor of `directory` opened without following links, and a new temporary file
        (O_EXCL), so nothing planted there is followed or written through."""
        folder = os.open(directory, _DIR_FLAGS)
        temp = f".connection-{secrets.token_hex(8)}.tmp"
        try:
            fd = os.open(temp, _NEW_FILE_FLAGS, 0o600, dir_fd=folder)
            with os.fdopen(fd, "w") as handle:
                os.fchmod(fd, 0o600)  # whatever the umask
                json.dump(asdict(self), handle)
            os.replace(temp, CONNECTION_FILE, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp, dir_fd=folder)
            raise
        finally:
            os.close(folder)
        return directory / CONNECTION_FILE

    @classmethod
    def read(cls, path: Path) -> ConnectionInfo:
        """The connection file at `path`; UntrustedFileError unless it and its folder are the
        current user's and private, ProtocolError if it cannot be read as one."""
        try:
            data = json.loads(read_connection_file(path))
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


def project_root(pipeline: Path) -> Path:
    """Where a daemon on `pipeline` keeps its runtime dir: the nearest folder above the script
    (its own included) holding one of PROJECT_MARKERS, else the script's folder. A client
    started there or anywhere below finds it by walking up; the daemon's loader treats files
    under it as the user's own. A marker in a folder every user may write to (/tmp) does not
    count: it says nothing about whose project that is."""
    folder = pipeline.absolute().parent
    for candidate in (folder, *folder.parents):
        marked = any(os.path.lexists(candidate / marker) for marker in PROJECT_MARKERS)
        if marked and not _writable_by_anyone(candidate):  # in /tmp anyone can plant one
            return candidate
    return folder


def _writable_by_anyone(folder: Path) -> bool:
    try:
        return bool(os.stat(folder).st_mode & stat.S_IWOTH)
    except OSError:
        return True


def find_connection_file(start: Path) -> Path | None:
    """Walk up from `start` to the first `.pyplantd/connection.json`.

    A `.pyplantd` or connection file on the way that another user could have written (theirs,
    open to others, or a symbolic link) stops the walk with UntrustedFileError naming it: skipping
    it would let a file planted in a shared folder such as /tmp decide silently which daemon
    answers, or hide that it is there; an error shows the user what to remove.
    """
    start = start.absolute()
    for folder in (start, *start.parents):
        runtime = folder / RUNTIME_DIR
        try:
            runtime_info = os.lstat(runtime)
        except OSError:  # not there (or not reachable): nothing to trust or fear here
            continue
        check_runtime_dir(runtime, runtime_info)
        candidate = runtime / CONNECTION_FILE
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:  # a runtime dir without a running daemon: go on up
            continue
        check_secret_file(candidate, info)
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
    except RecursionError:
        raise ProtocolError("nested too deeply to parse") from None
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


def unencodable(value: Any, root: str) -> str:
    """Where and why `value` (named `root`) is not JSON this protocol can send, for an error
    message: `root['x'][2] is nan: JSON has no NaN or infinity`. Walks without recursion."""
    stack: list[tuple[str, Any, int]] = [(root, value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth > 200:
                return f"{path} is nested deeper than 200 levels (or contains itself)"
            if isinstance(item, dict):
                for key in item:
                    if key is not None and not isinstance(key, str | int | float):
                        return f"{path} has a key of type {type(key).__name__}"
                children = [(f"{path}[{_short(key)}]", child) for key, child in item.items()]
            else:
                children = [(f"{path}[{index}]", child) for index, child in enumerate(item)]
            stack.extend((where, child, depth + 1) for where, child in reversed(children))
            continue
        try:
            _ENCODER.encode(item)
        except (TypeError, ValueError, OverflowError):
            if isinstance(item, float):
                return f"{path} is {item!r}: JSON has no NaN or infinity"
            if isinstance(item, int):
                digits = int(item.bit_length() * 0.30103)  # log10(2)
                return f"{path} is an int of about {digits} digits, too long to write as text"
            return f"{path} is of type {type(item).__name__}, which is not JSON"
    return f"{root} is not JSON"


def _short(key: Any) -> str:
    if isinstance(key, int) and not isinstance(key, bool) and key.bit_length() > 64:
        return f"<int of {key.bit_length()} bits>"
    text = repr(key)
    return text if len(text) <= 40 else text[:37] + "..."


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
        """UnauthenticatedError unless `nonce` is a fresh string and `sent_at` a finite time
        within the window: a NaN or infinite time would compare as inside it for ever."""
        now = self._clock()
        if not isinstance(nonce, str) or not 0 < len(nonce) <= MAX_ID_CHARS:
            raise UnauthenticatedError("no usable nonce")
        if isinstance(sent_at, bool) or not isinstance(sent_at, int | float):
            raise UnauthenticatedError("no numeric time")
        try:
            sent_at = float(sent_at)
        except OverflowError:  # an int beyond float's range
            raise UnauthenticatedError("request time outside the replay window") from None
        if not math.isfinite(sent_at) or not abs(now - sent_at) <= self.window:
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
    """A Request; or UnauthenticatedError (answer nothing): bad signature, frames or size, a
    missing, stale or replayed nonce or time; or MalformedRequestError (answer it once): a
    signed message that is not a request of this schema.

    The signature comes first, then the replay guard, then the whole schema in one place
    (validate_request), so no handler ever sees a request of unchecked shape. A signed payload
    that is not a JSON object cannot be checked for replay; it is answered all the same, since
    only a holder of the key can have made it and the answer carries nothing.
    """
    for frame in frames:
        if len(frame) > limit:
            raise UnauthenticatedError("oversized frame before authentication")
    payload = _verified(key, frames)
    try:  # parsed once
        parsed = _parse(payload)
    except ValueError as err:  # UnicodeDecodeError is one
        raise MalformedRequestError("Malformed", f"not JSON: {err}") from None
    except RecursionError:
        raise MalformedRequestError("Malformed", "nested too deeply to parse") from None
    if not isinstance(parsed, dict):
        raise MalformedRequestError("Malformed", "a request is a JSON object")
    guard.check(parsed.get("nonce"), parsed.get("ts"))
    return validate_request(parsed)


def validate_request(message: dict[str, Any]) -> Request:
    """The Request a decoded message is, checked against the schema: fields and their types,
    the protocol version, nesting, the command and its arguments (COMMAND_ARGS)."""
    request_id = message.get("id", "")
    if not isinstance(request_id, str) or len(request_id) > MAX_ID_CHARS:
        raise MalformedRequestError(
            "Malformed", f"'id' must be a string of at most {MAX_ID_CHARS} characters"
        )

    def malformed(text: str, kind: str = "Malformed") -> MalformedRequestError:
        return MalformedRequestError(kind, text, request_id)

    if message.get("v") != PROTOCOL_VERSION:
        raise malformed(
            f"protocol version {message.get('v')!r}, this side speaks {PROTOCOL_VERSION}"
        )
    unknown = sorted(set(message) - REQUEST_FIELDS)
    if unknown:
        raise malformed(f"unknown request field {', '.join(map(repr, unknown))}")
    cmd, args = message.get("cmd"), message.get("args", {})
    if not isinstance(cmd, str) or not isinstance(args, dict):
        raise malformed("a request needs a string 'cmd' and an object 'args'")
    if _depth(args) > MAX_DEPTH:
        raise malformed(f"'args' is nested deeper than {MAX_DEPTH} levels")
    spec = COMMAND_ARGS.get(cmd)
    if spec is None:
        known = ", ".join(COMMANDS)
        raise malformed(f"unknown command {cmd[:40]!r} (known: {known})", "UnknownCommand")
    for name, value in args.items():
        if name not in spec:
            takes = ", ".join(map(repr, spec)) or "no arguments"
            raise malformed(f"'{cmd}' takes {takes}, not {name[:40]!r}", "BadArguments")
        kind, _required = spec[name]
        if not _ARG_KINDS[kind][0](value):
            raise malformed(f"'{cmd}': {name!r} must be {_ARG_KINDS[kind][1]}", "BadArguments")
    missing = [name for name, (_kind, required) in spec.items() if required and name not in args]
    if missing:
        raise malformed(f"'{cmd}' needs {', '.join(map(repr, missing))}", "BadArguments")
    return Request(request_id, cmd, args)


def _is_name(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 1000


_ARG_KINDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "name": (_is_name, "a non-empty string"),
    "names": (lambda v: isinstance(v, list) and all(map(_is_name, v)), "a list of names"),
    "flag": (lambda v: isinstance(v, bool), "true or false"),
}


def _depth(value: object) -> int:
    """How many containers deep `value` goes, without recursion (any depth is safe to ask)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:  # deeper is already too deep: no need to look further
                stack.extend(
                    (child, level + 1)
                    for child in (item.values() if isinstance(item, dict) else item)
                )
    return deepest


# -- replies ----------------------------------------------------------------------------------
def encode_reply(key: bytes, request_id: str, result: dict[str, Any]) -> list[bytes]:
    """A signed reply; TypeError or ValueError if `result` is not JSON (see `unencodable`)."""
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
