"""The subscriber side of the lean RESP client (``lean``, ``resp``): a connection whose
replies are pushed to a callback as they are parsed, for RedisPubSubChannelLayer on plain
servers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import redis.exceptions as redis_errors

from channel_layers.redis.lean import connect_error_text
from channel_layers.redis.resp import _Connection, _Incomplete, _parse, encode_command

#: How every published message starts on the wire (``["message", topic, payload]``).
_MESSAGE = b"*3\r\n$7\r\nmessage\r\n"


class PushConnection(_Connection):
    """A subscriber connection: every reply (subscribe confirmations, published messages) goes
    to ``on_push`` as it is parsed, with no task or future per message."""

    def __init__(
        self, on_push: Callable[[Any], None], on_message: Callable[[str, bytes], None]
    ) -> None:
        super().__init__()
        self.on_push = on_push
        self.on_message = on_message
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        """Published messages go straight to ``on_message`` (topic and payload cut out of the
        read: no list per message), other replies to ``on_push``; a reply split across reads
        goes through the general parser (which hands messages to ``on_push`` too)."""
        if self.buffer:
            super().data_received(data)
            return
        pos, size = 0, len(data)
        while pos < size:
            if data.startswith(_MESSAGE, pos):
                topic_end, topic = _bulk(data, pos + len(_MESSAGE))
                end, payload = _bulk(data, topic_end) if topic is not None else (pos, None)
                if topic is not None and payload is not None:
                    self.on_message(topic.decode(), payload)
                    pos = end
                    continue
            try:
                reply, pos = _parse(data, pos)
            except _Incomplete:
                super().data_received(data[pos:])  # keeps the rest until it is whole
                return
            self.on_push(reply)

    def reply_received(self, reply: Any) -> bool:
        """Every reply is a push: hand it on as parsed."""
        self.on_push(reply)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.lost.done():
            self.lost.set_result(None)

    def write(self, *args: Any) -> None:
        """Send one command (SUBSCRIBE, UNSUBSCRIBE, PING) without waiting for its reply."""
        if self.closed or self.transport is None:
            raise redis_errors.ConnectionError("the subscriber connection is closed")
        self.transport.write(encode_command(args))


def _bulk(data: bytes, pos: int) -> tuple[int, bytes | None]:
    """The bulk string at ``pos`` and where it ends, or None when it is not whole in ``data``
    (or not a bulk string: the general parser then decides)."""
    length_end = data.find(b"\r\n", pos)
    if length_end < 0 or data[pos : pos + 1] != b"$":
        return pos, None
    start = length_end + 2
    end = start + int(data[pos + 1 : length_end])
    if end + 2 > len(data) or end < start:
        return pos, None
    return end + 2, data[start:end]


async def open_push_connection(
    params: Mapping[str, Any],
    on_push: Callable[[Any], None],
    on_message: Callable[[str, bytes], None],
) -> PushConnection:
    """Connect (and AUTH) a subscriber connection; ConnectionError when that fails.
    ``on_message`` gets each published message (topic, payload), ``on_push`` every other
    reply."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(params["socket_connect_timeout"]):
            if params["path"]:
                _, conn = await loop.create_unix_connection(
                    lambda: PushConnection(on_push, on_message), params["path"]
                )
            else:
                _, conn = await loop.create_connection(
                    lambda: PushConnection(on_push, on_message), params["host"], params["port"]
                )
    except (OSError, TimeoutError) as exc:
        where = params["path"] or f"{params['host']}:{params['port']}"
        raise redis_errors.ConnectionError(
            f"cannot connect to Redis at {where}: {connect_error_text(exc)}"
        ) from exc
    if params["password"] is not None:
        user = (params["username"],) if params["username"] else ()
        conn.write("AUTH", *user, params["password"])  # a failure shows as an error reply
    return conn
