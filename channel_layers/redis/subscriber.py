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

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from channel_layers.base import LayerUnavailable
from channel_layers.redis.connection import REDIS_DOWN_ERRORS, Shard, redis_py_client
from channel_layers.redis.lean import lean_params
from channel_layers.redis.resp_push import PushConnection, open_push_connection

logger = logging.getLogger(__name__)

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
        # UNSUBSCRIBEs sent and not yet confirmed (settled() waits for them: flush()).
        self._unacks: dict[str, asyncio.Future[None]] = {}
        self._client: aioredis.Redis | RedisCluster | None = None
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        # Plain servers get the lean connection (resp_push); the rest go through redis-py's PubSub.
        self._lean = lean_params(shard.host)
        self._push: PushConnection | None = None
        self._drained: asyncio.Future[None] | None = None  # close(): all unsubscribed
        self._ever_connected = False
        # The reader's last failed attempt to connect (None once connected): subscribe() raises
        # it at once instead of waiting for a connection that is being refused.
        self._connect_error: BaseException | None = None
        self._attempt_failed = asyncio.Event()

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
            await self._wait_connected()
            if not ack.done():
                await self._command("SUBSCRIBE", topic)
            await asyncio.wait_for(asyncio.shield(ack), SUBSCRIBE_TIMEOUT)
        except _SUBSCRIBE_ERRORS as exc:
            # The topic stays in self.topics: the reader subscribes it once Redis is back.
            cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise LayerUnavailable(
                f"cannot subscribe at Redis {self.shard.name} ({cause}); check that it is "
                "running (the layer reconnects and resubscribes by itself)"
            ) from exc

    async def _wait_connected(self) -> None:
        """Return once the reader is connected; raise its error at once when its last attempt
        to connect failed (a refused connection is not worth a 4 s timeout), TimeoutError
        when it neither connects nor fails within SUBSCRIBE_TIMEOUT."""
        if self._connected.is_set():
            return
        if self._connect_error is not None:
            raise self._connect_error
        waits = [asyncio.ensure_future(self._connected.wait())]
        waits.append(asyncio.ensure_future(self._attempt_failed.wait()))
        try:
            await asyncio.wait(waits, timeout=SUBSCRIBE_TIMEOUT, return_when="FIRST_COMPLETED")
        finally:
            for wait in waits:
                wait.cancel()
        if self._connected.is_set():
            return
        if self._connect_error is not None:
            raise self._connect_error
        raise TimeoutError(f"no connection within {SUBSCRIBE_TIMEOUT:g} s")

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic`` (best effort while disconnected: it is not resubscribed)."""
        self.topics.discard(topic)
        ack = self._acks.pop(topic, None)
        if ack is not None and not ack.done():
            ack.cancel()
        if self._connected.is_set():
            if topic not in self._unacks:
                self._unacks[topic] = asyncio.get_running_loop().create_future()
            with contextlib.suppress(*REDIS_DOWN_ERRORS):
                await self._command("UNSUBSCRIBE", topic)

    async def settled(self, timeout: float = SUBSCRIBE_TIMEOUT) -> None:
        """Wait (at most ``timeout``) until Redis confirmed every UNSUBSCRIBE sent so far."""
        waiting = [unack for unack in self._unacks.values() if not unack.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)

    async def _command(self, command: str, topic: str) -> None:
        if self._push is not None:
            self._push.write(command, topic)
        elif self._pubsub is not None:
            method = self._pubsub.subscribe if command == "SUBSCRIBE" else self._pubsub.unsubscribe
            await method(topic)
        else:
            raise redis_errors.ConnectionError("the subscriber connection was lost")

    async def _connect(self) -> None:
        topics = sorted(self.topics)
        if self._lean is not None:
            self._push = await open_push_connection(self._lean, self._on_push, self.on_message)
            if topics:
                self._push.write("SUBSCRIBE", *topics)
            else:
                self._push.write("PING")  # a reply (or none) that nobody waits for: harmless
            self._connected.set()
            return
        # No retries on this connection: every loss must reach the hooks (see module doc).
        self._client = redis_py_client({**self.shard.host, "retry": Retry(NoBackoff(), 0)})
        self._pubsub = self._client.pubsub()
        if topics:
            await self._pubsub.subscribe(*topics)
        else:
            await self._pubsub.ping()  # connect now, so that a down server shows at once
        self._connected.set()

    async def _disconnect(self) -> None:
        self._connected.clear()
        for unack in self._unacks.values():  # a lost connection unsubscribed everything
            if not unack.done():
                unack.set_result(None)
        self._unacks.clear()
        pubsub, client, push = self._pubsub, self._client, self._push
        self._pubsub = self._client = self._push = None
        if push is not None and push.transport is not None:
            push.transport.abort()
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
                if self._pubsub is None and self._push is None:
                    await self._connect()
                    self._connect_error = None
                    self._attempt_failed.clear()
                    if self._ever_connected:
                        logger.warning("reconnected to Redis %s", self.shard.name)
                        await self.fire_hook("reconnect")
                    self._ever_connected = True
                    backoff = _BACKOFF_FIRST
                if self._push is not None:
                    # Messages are handled as they are parsed (_on_push): just wait for a loss.
                    await self._push.lost
                    raise redis_errors.ConnectionError("the subscriber connection was closed")
                if self._pubsub is None:  # a hook closed it meanwhile: reconnect
                    raise redis_errors.ConnectionError("the subscriber connection was closed")
                message = await self._pubsub.get_message(timeout=1.0)
            except REDIS_DOWN_ERRORS as exc:
                was_connected = self._connected.is_set()
                if not was_connected:
                    self._connect_error = exc
                    self._attempt_failed.set()
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

    def _on_push(self, reply: Any) -> None:
        """A reply on the lean subscriber connection: a message, a confirmation or an error."""
        if type(reply) is list and len(reply) == 3 and reply[0] == b"message":
            self.on_message(reply[1].decode(), reply[2])  # the hot path: no dict, no _handle
        elif isinstance(reply, list) and len(reply) == 3:
            kind = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            self._handle({"type": kind, "channel": reply[1], "data": reply[2]})
        elif isinstance(reply, Exception):
            logger.error("Redis %s refused a subscriber command: %s", self.shard.name, reply)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        topic = message["channel"]
        topic = topic.decode() if isinstance(topic, bytes) else str(topic)
        if kind == "message":
            self.on_message(topic, message["data"])
        elif kind == "unsubscribe":
            unack = self._unacks.pop(topic, None)
            if unack is not None and not unack.done():
                unack.set_result(None)
            if message["data"] == 0 and self._drained is not None and not self._drained.done():
                self._drained.set_result(None)
        elif kind == "subscribe":
            ack = self._acks.get(topic)
            if ack is not None and not ack.done():
                ack.set_result(None)

    async def close(self) -> None:
        """Unsubscribe (so that Redis forgets us at once), stop the reader, close."""
        if self._push is not None and self._connected.is_set() and self.topics:
            self._drained = asyncio.get_running_loop().create_future()
            with contextlib.suppress(Exception):
                self._push.write("UNSUBSCRIBE")
                await asyncio.wait_for(self._drained, 1.0)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._reader = None
        for ack in self._acks.values():
            ack.cancel()
        self._acks.clear()
        await self._disconnect()
