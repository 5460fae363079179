"""What the Redis layers need from a Redis client, and the adapter that gives it redis-py's.

Two clients serve the layers: the lean RESP client (``lean.LeanClient``: plain ``redis://`` and
``unix://`` servers, the hot path) and redis-py (TLS, Sentinel, Cluster, any client option the
lean one does not know), wrapped in :class:`RedisPyClient`. Both implement :class:`RedisClient`,
so mypy checks every call the layers make, and the contract suite runs on both.

The lean client also lends its connections for callback-driven commands (a reply handled right
where it is parsed, no task in between: see ``local.Poller``); redis-py cannot, so its adapter
returns None there and the layers fall back to awaiting the same commands.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

__all__ = ["CallbackConnection", "RedisClient", "RedisPyClient"]


class CallbackConnection(Protocol):
    """One open connection that hands replies to callbacks as they are parsed."""

    @property
    def closed(self) -> bool:
        """True once the connection failed or was closed."""

    def request(self, args: tuple[Any, ...], limit: float | None) -> Any:
        """Write one command; the returned future gets its reply (or its error)."""

    def request_callback(
        self, args: tuple[Any, ...], limit: float | None, callback: Callable[[Any], None]
    ) -> None:
        """Write one command; ``callback`` gets its reply or the error (an exception object)."""

    def request_encoded(self, data: bytes, limit: float | None) -> Any:
        """Write one command the caller encoded; the returned future gets its reply."""

    def request_encoded_then(
        self, data: bytes, limit: float | None, callback: Callable[[Any], None]
    ) -> Any:
        """Write two encoded commands at once: the returned future gets the first's reply,
        ``callback`` the second's."""

    def abort(self, exc: Exception) -> None:
        """Fail every pending command with ``exc`` and drop the socket."""


class RedisClient(Protocol):
    """The commands the Redis layers send, with redis-py's signatures.

    Errors are redis-py's exception classes whichever client raises them (``ConnectionError``,
    ``TimeoutError``, ``ResponseError``, ``NoScriptError``...), so callers handle both alike.
    """

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        """EVALSHA: run a loaded script."""

    async def script_load(self, script: str) -> Any:
        """SCRIPT LOAD: make ``script`` callable by its SHA1."""

    async def set(self, key: str, value: bytes, px: int | None = None) -> Any:
        """SET, with an expiry in milliseconds."""

    async def delete(self, *keys: str) -> Any:
        """DEL."""

    async def unlink(self, *keys: Any) -> Any:
        """UNLINK: delete in the background."""

    async def zrem(self, key: str, *members: str) -> Any:
        """ZREM."""

    async def publish(self, channel: str, message: bytes) -> Any:
        """PUBLISH."""

    def scan_iter(self, match: str, count: int = 1000) -> AsyncIterator[bytes]:
        """SCAN the keyspace for ``match`` (never KEYS)."""

    async def blpop(self, keys: list[str], timeout: float = 0) -> Any:
        """BLPOP on a connection that carries nothing else meanwhile."""

    def ready_connection(self) -> CallbackConnection | None:
        """The shared connection for callback commands when it is open, else None."""

    def idle_blocking_connection(self) -> CallbackConnection | None:
        """An idle connection for a callback-driven BLPOP, else None; give it back with
        :meth:`release_blocking_connection`."""

    def release_blocking_connection(self, conn: CallbackConnection) -> None:
        """Give back a connection ``idle_blocking_connection`` lent."""

    async def drop_connections(self) -> None:
        """Forget pooled connections after a failure (they may point at a dead server)."""

    async def aclose(self) -> None:
        """Close every connection."""


class RedisPyClient:
    """:class:`RedisClient` over redis-py's asyncio ``Redis`` or ``RedisCluster``."""

    def __init__(self, client: aioredis.Redis | RedisCluster) -> None:
        self.redis = client

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        """EVALSHA: run a loaded script."""
        return await self.redis.evalsha(sha, numkeys, *keys_and_args)

    async def script_load(self, script: str) -> Any:
        """SCRIPT LOAD (on every node of a Cluster)."""
        return await self.redis.script_load(script)

    async def set(self, key: str, value: bytes, px: int | None = None) -> Any:
        """SET, with an expiry in milliseconds."""
        return await self.redis.set(key, value, px=px)

    async def delete(self, *keys: str) -> Any:
        """DEL."""
        return await self.redis.delete(*keys)

    async def unlink(self, *keys: Any) -> Any:
        """UNLINK: delete in the background."""
        return await self.redis.unlink(*keys)

    async def zrem(self, key: str, *members: str) -> Any:
        """ZREM."""
        return await self.redis.zrem(key, *members)

    async def publish(self, channel: str, message: bytes) -> Any:
        """PUBLISH."""
        return await self.redis.publish(channel, message)

    async def scan_iter(self, match: str, count: int = 1000) -> AsyncIterator[bytes]:
        """SCAN the keyspace (every node of a Cluster) for ``match``."""
        async for key in self.redis.scan_iter(match=match, count=count):
            yield key

    async def blpop(self, keys: list[str], timeout: float = 0) -> Any:
        """BLPOP on a pooled connection of its own."""
        return await self.redis.blpop(keys, timeout=timeout)

    def ready_connection(self) -> CallbackConnection | None:
        """None: redis-py's connections take no callbacks."""
        return None

    def idle_blocking_connection(self) -> CallbackConnection | None:
        """None: redis-py's connections take no callbacks."""
        return None

    def release_blocking_connection(self, conn: CallbackConnection) -> None:
        """Nothing to give back (see :meth:`idle_blocking_connection`)."""

    async def drop_connections(self) -> None:
        """Disconnect the idle pooled connections (a Cluster reconnects per node by itself)."""
        if isinstance(self.redis, aioredis.Redis):
            with contextlib.suppress(Exception):  # best effort on a broken pool
                await self.redis.connection_pool.disconnect(inuse_connections=False)

    async def aclose(self) -> None:
        """Close the client and its connections."""
        await self.redis.aclose()
