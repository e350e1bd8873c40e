"""The protocol module's signing and parsing, without sockets."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from typing import Any

import pytest
from pyplant_client import protocol


def reference_sign(key: bytes, frames: list[bytes]) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for frame in frames:
        mac.update(len(frame).to_bytes(8, "big"))
        mac.update(frame)
    return mac.hexdigest().encode()


@pytest.mark.parametrize("key_length", [0, 1, 32, 63, 64, 65, 200])
def test_sign_is_hmac_sha256_over_length_prefixed_frames(key_length: int) -> None:
    key = os.urandom(key_length)
    for frames in ([], [b""], [b"payload"], [os.urandom(1000), b"", os.urandom(70)]):
        assert protocol.sign(key, frames) == reference_sign(key, frames)
    assert protocol.sign(key, [b"ab", b"c"]) != protocol.sign(key, [b"a", b"bc"])


def test_a_request_round_trips_with_the_id_it_was_given() -> None:
    key = protocol.new_key().encode()
    frames = protocol.encode_request(key, "run", {"targets": ["a"]}, "7")
    request = protocol.decode_request(key, frames, protocol.ReplayGuard())
    assert request == protocol.Request("7", "run", {"targets": ["a"]})
    assert frames[0] == reference_sign(key, frames[1:])


def test_json_with_whitespace_around_it_is_accepted_and_trailing_data_is_not() -> None:
    key = b"key"
    message = {"v": 1, "id": "x", "nonce": "n1", "ts": 0.0, "cmd": "ping", "args": {}}
    guard = protocol.ReplayGuard(window=float("inf"))
    for payload in (
        json.dumps(message, indent=2).encode(),
        b" \n" + json.dumps({**message, "nonce": "n2"}).encode() + b"\r\n",
    ):
        assert protocol.decode_request(key, [protocol.sign(key, [payload]), payload], guard).id
    reply = {"v": 1, "id": "x", "ok": True, "result": {}}
    for payload in (json.dumps(reply).encode() + b" {}", b"\xff", b""):
        with pytest.raises(protocol.ProtocolError):
            protocol.decode_reply(key, [protocol.sign(key, [payload]), payload])


MESSAGES = [
    {"v": 1, "id": "x", "ok": True, "result": {"pong": True, "time": 1732000000.123456}},
    {"text": 'héllo \u2603 "quoted" \\ \n\t\x00', "big": 2**70, "neg": -0.0, "tiny": 5e-324},
    {"nested": [[], {}, [1, [2, [3]]], {"a": {"b": None}}], 1: "int key", "t": (1, 2)},
]


@pytest.mark.parametrize("c_encoder", [True, False])
def test_dump_is_compact_json_exactly(monkeypatch, c_encoder: bool) -> None:
    if not c_encoder:
        monkeypatch.setattr(protocol, "_C_ENCODE", None)
    for message in MESSAGES:
        expected = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
        assert protocol._dump(message) == expected
    circular: dict = {}
    circular["self"] = circular
    for bad, error in ((float("nan"), ValueError), (circular, ValueError), (object(), TypeError)):
        with pytest.raises(error):
            protocol._dump({"value": bad})


def test_a_nonce_is_refused_for_as_long_as_its_request_could_be_accepted() -> None:
    now = [1000.0]
    guard = protocol.ReplayGuard(window=60.0, clock=lambda: now[0])
    guard.check("ahead", 1050.0)  # dated 50 s ahead of the daemon's clock
    guard.check("on time", 1000.0)
    now[0] = 1100.0  # 100 s later: "ahead" is still within its window, so still refused
    with pytest.raises(protocol.UnauthenticatedError, match="replayed"):
        guard.check("ahead", 1050.0)
    with pytest.raises(protocol.UnauthenticatedError, match="outside"):
        guard.check("on time", 1000.0)
    now[0] = 1111.0  # past both windows: forgotten, as they are too old to be accepted
    guard.check("later", 1111.0)
    assert list(guard._seen) == ["later"]


# -- issue 9 B5: the replay guard and the request schema ---------------------------------------
def signed(key: bytes, payload: bytes) -> list[bytes]:
    return [protocol.sign(key, [payload]), payload]


@pytest.mark.parametrize(
    "ts", ["NaN", "Infinity", "-Infinity", "1e999", "10" + "0" * 400, '"1732000000"', "true",
           "null", "[]"],
)  # fmt: skip
def test_a_request_whose_time_is_not_a_finite_number_is_never_accepted(ts: str) -> None:
    key, guard = b"key", protocol.ReplayGuard()
    payload = (
        '{"v": 1, "id": "x", "nonce": "n", "cmd": "ping", "args": {}, "ts": ' + ts + "}"
    ).encode()
    for _ in range(2):  # NaN compared as inside the window: the same bytes worked for ever
        with pytest.raises(protocol.UnauthenticatedError):
            protocol.decode_request(key, signed(key, payload), guard)


@pytest.mark.parametrize("nonce", [None, 7, "", "n" * 129, ["n"]])
def test_a_request_without_a_usable_nonce_is_never_accepted(nonce: object) -> None:
    key = b"key"
    message = {"v": 1, "id": "x", "nonce": nonce, "ts": time.time(), "cmd": "ping", "args": {}}
    with pytest.raises(protocol.UnauthenticatedError):
        protocol.decode_request(
            key, signed(key, json.dumps(message).encode()), protocol.ReplayGuard()
        )


def deep(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = [value]
    return value


MALFORMED = [
    # (what the message has instead, kind, the id the error reply carries)
    ({"id": 7}, "Malformed", ""),
    ({"id": "i" * 129}, "Malformed", ""),
    ({"v": 2}, "Malformed", "r1"),
    ({"v": "1"}, "Malformed", "r1"),
    ({"extra": 1}, "Malformed", "r1"),
    ({"cmd": 3}, "Malformed", "r1"),
    ({"args": ["name"]}, "Malformed", "r1"),
    ({"args": {"targets": deep(40)}}, "Malformed", "r1"),
    ({"cmd": "fly"}, "UnknownCommand", "r1"),
    ({"cmd": "preview", "args": {"name": 3}}, "BadArguments", "r1"),
    ({"cmd": "preview", "args": {}}, "BadArguments", "r1"),
    ({"cmd": "preview", "args": {"name": "x", "depth": 2}}, "BadArguments", "r1"),
    ({"cmd": "run", "args": {"targets": "load"}}, "BadArguments", "r1"),
    ({"cmd": "run", "args": {"targets": [["load"]]}}, "BadArguments", "r1"),
    ({"cmd": "run", "args": {"targets": None}}, "BadArguments", "r1"),
    ({"cmd": "ping", "args": {"x": 1}}, "BadArguments", "r1"),
]


@pytest.mark.parametrize(("change", "kind", "reply_id"), MALFORMED)
def test_a_signed_request_off_the_schema_is_malformed_with_its_kind(
    change: dict[str, Any], kind: str, reply_id: str
) -> None:
    key = b"key"
    message = {"v": 1, "id": "r1", "nonce": os.urandom(8).hex(), "ts": time.time(),
               "cmd": "ping", "args": {}, **change}  # fmt: skip
    with pytest.raises(protocol.MalformedRequestError) as raised:
        protocol.decode_request(
            key, signed(key, json.dumps(message).encode()), protocol.ReplayGuard()
        )
    assert (raised.value.kind, raised.value.request_id) == (kind, reply_id), raised.value


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"[" * 100_000 + b"]" * 100_000],
)
def test_a_signed_payload_that_is_no_json_object_is_malformed(payload: bytes) -> None:
    key = b"key"
    with pytest.raises(protocol.MalformedRequestError) as raised:
        protocol.decode_request(key, signed(key, payload), protocol.ReplayGuard())
    assert raised.value.kind == "Malformed"


def test_every_command_the_client_sends_fits_the_schema() -> None:
    key, guard = b"key", protocol.ReplayGuard()
    for cmd, args in [
        ("ping", None), ("status", None), ("run", {"targets": ["a", "b"]}), ("run", None),
        ("cancel", None), ("invalidate", {"reactor": "a"}), ("ingredients", None),
        ("preview", {"name": "x"}), ("fetch", {"name": "x"}), ("shutdown", None),
        ("graph", None), ("clean", None), ("clean", {"names": ["x"]}), ("clean", {"all": True}),
        ("mark", {"token": "3f2a"}),
    ]:  # fmt: skip
        request = protocol.decode_request(key, protocol.encode_request(key, cmd, args), guard)
        assert (request.cmd, request.args) == (cmd, args or {})
    assert set(protocol.COMMANDS) == {
        "ping", "status", "run", "cancel", "invalidate", "ingredients", "preview", "fetch",
        "shutdown", "graph", "clean", "mark",
    }  # fmt: skip


def test_a_reply_nested_too_deeply_to_parse_is_a_protocol_error() -> None:
    payload = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(protocol.ProtocolError, match="nested too deeply"):
        protocol.decode_reply(b"key", signed(b"key", payload))


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"a": [1, float("nan")]}, "r['a'][1] is nan: JSON has no NaN or infinity"),
        ({"a": float("inf")}, "r['a'] is inf: JSON has no NaN or infinity"),
        ({"a": 10**5000}, "r['a'] is an int of about 5000 digits, too long to write as text"),
        ({"a": {(1, 2): 3}}, "r['a'] has a key of type tuple"),
        ({"a": [1, b"raw"]}, "r['a'][1] is of type bytes, which is not JSON"),
        ({"a": [1], "b": object()}, "r['b'] is of type object, which is not JSON"),
    ],
)
def test_unencodable_names_the_first_value_json_cannot_carry(value: Any, where: str) -> None:
    with pytest.raises((TypeError, ValueError)):
        protocol.encode_reply(b"key", "1", value)
    assert protocol.unencodable(value, "r") == where
