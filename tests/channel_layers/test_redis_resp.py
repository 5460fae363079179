"""The lean RESP client's parser, fed whole and a byte at a time (replies split anywhere)."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
import redis.exceptions

from channel_layers.redis.lean import lean_params
from channel_layers.redis.resp import _Connection, bulk_int, encode_command
from channel_layers.redis.resp_push import PushConnection

BIG = b"*500\r\n" + b"".join(b"$10\r\n0123456789\r\n" for _ in range(500))
REPLIES = (
    b"*3\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:5\r\n+OK\r\n"
    + b"$5\r\nhe\r\no\r\n"
    + b"-NOSCRIPT No matching script\r\n"
    + BIG
    + BIG
    + b"*-1\r\n"
)


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, len(REPLIES)])
async def test_replies_parse_however_they_are_split(chunk: int) -> None:
    loop = asyncio.get_running_loop()
    connection = _Connection()
    replies = [loop.create_future() for _ in range(4)]
    by_callback: list[object] = []  # the last two replies go to a callback instead
    connection.waiters.extend([*replies, by_callback.append, by_callback.append])
    connection.deadlines.extend([math.inf] * 6)
    for start in range(0, len(REPLIES), chunk):
        connection.data_received(REPLIES[start : start + chunk])
    assert replies[0].result() == [b"abc", None, [5, b"OK"]]
    assert replies[1].result() == b"he\r\no"
    assert isinstance(replies[2].exception(), redis.exceptions.NoScriptError)
    assert replies[3].result() == [b"0123456789"] * 500
    assert by_callback == [[b"0123456789"] * 500, None]
    assert connection.buffer == b""


def test_lean_client_serves_plain_servers_only() -> None:
    assert lean_params({"address": "redis://:pw@example:6380/2"}) == {
        "host": "example",
        "port": 6380,
        "path": None,
        "db": 2,
        "username": None,
        "password": "pw",
        "socket_timeout": 3.0,
        "socket_connect_timeout": 2.0,
    }
    assert lean_params({"address": "unix:///tmp/r.sock?db=3"})["path"] == "/tmp/r.sock"  # type: ignore[index]
    assert lean_params({"address": "rediss://example"}) is None  # TLS: redis-py
    assert lean_params({"address": "redis://example", "ssl_cert_reqs": "none"}) is None
    assert lean_params({"sentinels": [("h", 1)], "master_name": "m"}) is None


def test_commands_are_encoded_as_resp_arrays_of_bulk_strings() -> None:
    big = b"x" * 2000  # past the size where pieces are joined instead of formatted
    assert encode_command(("SET", "k\u00e9", b"v", 12, 1.5, big)) == (
        b"*6\r\n$3\r\nSET\r\n$3\r\nk\xc3\xa9\r\n$1\r\nv\r\n$2\r\n12\r\n$3\r\n1.5\r\n"
        + b"$2000\r\n"
        + big
        + b"\r\n"
    )
    with pytest.raises(redis.exceptions.DataError):
        encode_command(("SET", "k", True))


def test_a_command_encoded_from_its_head_is_the_whole_command() -> None:
    # The durable layer keeps each channel's SEND head and appends the arguments that change.
    head = encode_command(("EVALSHA", "f" * 40, 1, "asgi:{c}", "c"), total=9)
    tail = b"$5\r\nentry\r\n" + bulk_int(100) + bulk_int(-61000) + bulk_int(0)
    whole = ("EVALSHA", "f" * 40, 1, "asgi:{c}", "c", b"entry", 100, -61000, 0)
    assert head + tail == encode_command(whole)


def _push(kind: bytes, topic: bytes, data: bytes) -> bytes:
    return b"*3\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n%b" % (len(kind), kind, len(topic), topic, data)


PUSHES = (
    _push(b"subscribe", b"asgi:c:a", b":1\r\n")
    + _push(b"message", b"asgi:c:a", b"$5\r\nfirst\r\n")
    # a payload that looks like the start of another message, and one of 5,000 bytes
    + _push(b"message", b"asgi:c:a", b"$17\r\n*3\r\n$7\r\nmessage\r\n\r\n")
    + _push(b"message", b"asgi:g:room", b"$5000\r\n" + b"x" * 5000 + b"\r\n")
    + _push(b"unsubscribe", b"asgi:c:a", b":0\r\n")
    + _push(b"message", b"asgi:c:b", b"$0\r\n\r\n")
)


def _as_message(kind: str, reply: Any) -> tuple[str, Any]:
    """A message the general parser handed to on_push, as the subscriber passes it on."""
    if kind == "push" and reply[0] == b"message":
        return "message", (reply[1].decode(), reply[2])
    return kind, reply


@pytest.mark.parametrize("chunk", [1, 2, 7, 20, 64, 4000, len(PUSHES)])
async def test_published_messages_parse_however_they_are_split(chunk: int) -> None:
    """Messages that arrive whole take the subscriber's short cut (on_message), the rest the
    general parser (on_push): either way each arrives once, in order, whole."""
    seen: list[tuple[str, Any]] = []
    connection = PushConnection(
        lambda reply: seen.append(("push", reply)),
        lambda topic, payload: seen.append(("message", (topic, payload))),
    )
    for start in range(0, len(PUSHES), chunk):
        connection.data_received(PUSHES[start : start + chunk])
    assert [_as_message(kind, reply) for kind, reply in seen] == [
        ("push", [b"subscribe", b"asgi:c:a", 1]),
        ("message", ("asgi:c:a", b"first")),
        ("message", ("asgi:c:a", b"*3\r\n$7\r\nmessage\r\n")),
        ("message", ("asgi:g:room", b"x" * 5000)),
        ("push", [b"unsubscribe", b"asgi:c:a", 0]),
        ("message", ("asgi:c:b", b"")),
    ]
    if chunk == len(PUSHES):  # all whole: every message took the short cut
        assert [kind for kind, _ in seen].count("message") == 4
    assert connection.buffer == b""
