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
