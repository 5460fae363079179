"""The subscriber side of the lean RESP client (``lean``, ``resp``): a connection whose
replies are pushed to a callback as they are parsed, for RedisPubSubChannelLayer on plain
servers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import redis.exceptions as redis_errors

from channel_layers.redis.lean import connect_error_text
from channel_layers.redis.resp import _Connection, _encode


class PushConnection(_Connection):
    """A subscriber connection: every reply (subscribe confirmations, published messages) goes
    to ``on_push`` as it is parsed, with no task or future per message."""

    def __init__(self, on_push: Callable[[Any], None]) -> None:
        super().__init__()
        self.on_push = on_push
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

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
        self.transport.write(_encode(args))


async def open_push_connection(
    params: Mapping[str, Any], on_push: Callable[[Any], None]
) -> PushConnection:
    """Connect (and AUTH) a subscriber connection; ConnectionError when that fails."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(params["socket_connect_timeout"]):
            if params["path"]:
                _, conn = await loop.create_unix_connection(
                    lambda: PushConnection(on_push), params["path"]
                )
            else:
                _, conn = await loop.create_connection(
                    lambda: PushConnection(on_push), params["host"], params["port"]
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
