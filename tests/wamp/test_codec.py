"""The subprotocols' codecs: negotiation order, the JSON fast path, binary values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consumers.wamp.codec import SUBPROTOCOLS, ProtocolError, choose_subprotocol, messages

m: Any = messages
JSON = SUBPROTOCOLS["wamp.2.json"]

FRAMES = [
    b'[48, 1, {"timeout": 300}, "com.proc", [1, 2.5, "x", null, true], {"k": {"n": [1]}}]',
    b'[16, 2, {}, "com.t\\u00e9", ["caf\\u00e9 \\u2615"]]',
    b'[16, 3, {}, "com.topic", ["\\u0000AQID"]]',  # a binary value: autobahn's path
    b'[70, 4, {"progress": true}, [12345678901234567890]]',
]


@pytest.mark.parametrize("frame", FRAMES, ids=range(len(FRAMES)))
def test_json_fast_path_agrees_with_autobahn(frame: bytes) -> None:
    [(message, raw)] = JSON.decode(frame)
    [expected] = JSON.object_serializer.unserialize(frame)
    assert raw == expected
    assert message.marshal() == type(message).parse(expected).marshal()


def test_binary_values_survive_json() -> None:
    [(message, _)] = JSON.decode(b'[16, 3, {}, "com.topic", ["\\u0000AQID"]]')
    assert message.args == [b"\x01\x02\x03"]
    event = m.Event(1, 2, args=[b"\x01\x02\x03"])
    assert json.loads(JSON.encode(event))[4] == ["\x00AQID"]


@pytest.mark.parametrize("name", ["wamp.2.json", "wamp.2.msgpack", "wamp.2.cbor"])
def test_round_trip_and_garbage(name: str) -> None:
    codec = SUBPROTOCOLS[name]
    call = m.Call(7, "com.proc", args=[1, b"\xff"], kwargs={"a": "b"}, timeout=300)
    [(message, raw)] = codec.decode(codec.encode(call))
    assert raw[:4] == [48, 7, {"timeout": 300}, "com.proc"]
    assert message.args == [1, b"\xff"] and message.kwargs == {"a": "b"}
    for garbage in (b"\xc1\xc1", b"[48, 1", b'"just a string"', b"[]"):
        with pytest.raises(ProtocolError):
            codec.decode(garbage)


def test_choose_subprotocol_takes_the_clients_first_known() -> None:
    chosen = choose_subprotocol(["mqtt", "wamp.2.msgpack", "wamp.2.json"])
    assert chosen is not None and chosen.subprotocol == "wamp.2.msgpack"
    batched = choose_subprotocol(["wamp.2.json.batched", "chat"])
    assert batched is not None and batched.subprotocol == "wamp.2.json.batched"
    assert choose_subprotocol(["wamp.2.ubjson", "chat"]) is None
    assert choose_subprotocol([]) is None


@pytest.mark.parametrize("name", ["json", "msgpack", "cbor"])
def test_batched_frames_carry_several_messages(name: str) -> None:
    codec, plain = SUBPROTOCOLS[f"wamp.2.{name}.batched"], SUBPROTOCOLS[f"wamp.2.{name}"]
    publish = m.Publish(1, "com.topic", args=[1])
    call = m.Call(2, "com.proc", kwargs={"a": b"\x00"})
    frame = codec.encode(publish) + codec.encode(call)
    decoded = codec.decode(frame)
    assert [message.marshal() for message, _ in decoded] == [publish.marshal(), call.marshal()]
    assert codec.binary == plain.binary
    assert codec.encode(publish) != plain.encode(publish)  # framed the batched way
    with pytest.raises(ProtocolError):
        codec.decode(plain.encode(publish)[:-1] if name == "json" else b"\x00\x00\x00\x09ab")
