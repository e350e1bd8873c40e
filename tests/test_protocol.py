"""The protocol module's signing and parsing, without sockets."""

from __future__ import annotations

import hashlib
import hmac
import json
import os

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
