"""The lean RESP client's parser, fed whole and a byte at a time (replies split anywhere)."""

from __future__ import annotations

import asyncio
import math

import pytest
import redis.exceptions

from channel_layers.redis.lean import lean_params
from channel_layers.redis.resp import _Connection, _encode

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
    assert _encode(("SET", "k\u00e9", b"v", 12, 1.5, big)) == (
        b"*6\r\n$3\r\nSET\r\n$3\r\nk\xc3\xa9\r\n$1\r\nv\r\n$2\r\n12\r\n$3\r\n1.5\r\n"
        + b"$2000\r\n"
        + big
        + b"\r\n"
    )
    with pytest.raises(redis.exceptions.DataError):
        _encode(("SET", "k", True))
