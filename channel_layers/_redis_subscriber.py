"""One subscriber connection of RedisPubSubChannelLayer: SUBSCRIBE, read, reconnect, hooks.

The reader owns the connection. When Redis goes away it fires ``on_disconnect`` once, retries
with a short backoff (0.1 s doubling to 2 s) on a fresh connection, subscribes every topic again,
and fires ``on_reconnect`` once it is back. Its connection never retries by itself (redis-py
would silently reconnect and resubscribe, so the hooks could not tell that messages were lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from channel_layers._redis_connection import REDIS_DOWN_ERRORS, Shard, make_client
from channel_layers.base import LayerUnavailable

logger = logging.getLogger("channel_layers.redis_pubsub")

#: How long a SUBSCRIBE may wait for its confirmation before the caller gives up.
SUBSCRIBE_TIMEOUT = 4.0
_BACKOFF_FIRST, _BACKOFF_MAX = 0.1, 2.0
_SUBSCRIBE_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, *REDIS_DOWN_ERRORS)


class Subscriber:
    """A subscriber connection to one shard, with a reader task that dispatches messages."""

    def __init__(
        self,
        shard: Shard,
        on_message: Callable[[str, bytes], None],
        fire_hook: Callable[[str], Awaitable[None]],
    ) -> None:
        self.shard = shard
        self.on_message = on_message
        self.fire_hook = fire_hook
        self.topics: set[str] = set()
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._client: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._ever_connected = False

    async def subscribe(self, topic: str) -> None:
        """Subscribe to ``topic`` and wait for Redis to confirm (LayerUnavailable if down)."""
        if topic in self.topics:
            return
        self.topics.add(topic)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read())
        ack = self._acks.get(topic)
        if ack is None:
            ack = self._acks[topic] = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._connected.wait(), SUBSCRIBE_TIMEOUT)
            pubsub = self._pubsub
            if pubsub is None:
                raise ConnectionError("the subscriber connection was lost")
            if not ack.done():
                await pubsub.subscribe(topic)
            await asyncio.wait_for(asyncio.shield(ack), SUBSCRIBE_TIMEOUT)
        except _SUBSCRIBE_ERRORS as exc:
            # The topic stays in self.topics: the reader subscribes it once Redis is back.
            raise LayerUnavailable(
                f"cannot subscribe at Redis {self.shard.name} ({type(exc).__name__}); check "
                "that it is running (the layer reconnects and resubscribes by itself)"
            ) from exc

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic`` (best effort while disconnected: it is not resubscribed)."""
        self.topics.discard(topic)
        ack = self._acks.pop(topic, None)
        if ack is not None and not ack.done():
            ack.cancel()
        if self._pubsub is not None and self._connected.is_set():
            with contextlib.suppress(*REDIS_DOWN_ERRORS):
                await self._pubsub.unsubscribe(topic)

    async def _connect(self) -> None:
        # No retries on this connection: every loss must reach the hooks (see module doc).
        self._client = make_client({**self.shard.host, "retry": Retry(NoBackoff(), 0)})
        self._pubsub = self._client.pubsub()
        topics = sorted(self.topics)
        if topics:
            await self._pubsub.subscribe(*topics)
        else:
            await self._pubsub.ping()  # connect now, so that a down server shows at once
        self._connected.set()

    async def _disconnect(self) -> None:
        self._connected.clear()
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        with contextlib.suppress(Exception):  # the connection is already broken
            if pubsub is not None:
                await pubsub.aclose()
            if client is not None:
                await client.aclose()

    async def _read(self) -> None:
        """Read forever: dispatch messages, confirm subscriptions, reconnect after failures."""
        backoff = _BACKOFF_FIRST
        while True:
            try:
                if self._pubsub is None:
                    await self._connect()
                    if self._ever_connected:
                        logger.warning("reconnected to Redis %s", self.shard.name)
                        await self.fire_hook("reconnect")
                    self._ever_connected = True
                    backoff = _BACKOFF_FIRST
                message = await self._pubsub.get_message(timeout=1.0)
            except REDIS_DOWN_ERRORS as exc:
                was_connected = self._connected.is_set()
                await self._disconnect()
                if was_connected:
                    logger.warning(
                        "lost Redis %s (%s); messages published until it is back are lost",
                        self.shard.name,
                        exc,
                    )
                    await self.fire_hook("disconnect")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        topic = message["channel"]
        topic = topic.decode() if isinstance(topic, bytes) else str(topic)
        if kind == "message":
            self.on_message(topic, message["data"])
        elif kind == "subscribe":
            ack = self._acks.get(topic)
            if ack is not None and not ack.done():
                ack.set_result(None)

    async def close(self) -> None:
        """Stop the reader and close the connection."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._reader = None
        for ack in self._acks.values():
            ack.cancel()
        self._acks.clear()
        await self._disconnect()
