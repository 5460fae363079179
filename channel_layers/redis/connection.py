"""Connections for the Redis layers: host settings, one client per event loop, sharding, errors.

``hosts`` takes what channels_redis takes, unchanged: URLs (``redis://``, ``rediss://``,
``unix://``), ``(host, port)`` pairs, or dicts: ``{"address": url, **client_kwargs}``,
``{"host": ..., "port": ..., **client_kwargs}``, or Sentinel as
``{"sentinels": [(host, port)], "master_name": name, "sentinel_kwargs": {...}, **client_kwargs}``.
One addition: ``{"address": url, "cluster": True}`` names a Redis Cluster (any node).

Every wait is bounded: connecting gives up after ``socket_connect_timeout`` (2 s unless set), a
command without an answer after ``socket_timeout`` (3 s unless set), a broken connection is
retried once on a fresh connection (not ten times with backoff, redis-py 8's
default, which hangs a caller for a minute), and after a failure the shard cools down for a
second so that callers retrying in a loop do not spin. Failures surface as LayerUnavailable.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import hashlib
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from channel_layers.base import LayerUnavailable
from channel_layers.redis.client import RedisClient, RedisPyClient
from channel_layers.redis.lean import LeanClient, lean_params

T = TypeVar("T")

#: Errors that mean "this Redis cannot be used right now" (down, restarting, failing over).
REDIS_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    redis_errors.ConnectionError,  # includes BusyLoadingError and MasterNotFoundError
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,  # a demoted master during a failover
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    OSError,
    asyncio.TimeoutError,
)

#: Seconds a shard refuses new work after a failure (callers wait it out: no busy loop).
COOLDOWN = 1.0
DEFAULT_CONNECT_TIMEOUT = 2.0
#: A command that has no answer after this long fails (our blocking pops block for less).
DEFAULT_SOCKET_TIMEOUT = 3.0


def decode_hosts(hosts: Sequence[Any] | None) -> list[dict[str, Any]]:
    """Normalise channels_redis-style ``hosts`` into one settings dict per shard."""
    if not hosts:
        return [{"address": "redis://localhost:6379"}]
    if isinstance(hosts, str | bytes) or not isinstance(hosts, list | tuple):
        raise ValueError(
            f"hosts must be a list of Redis servers, e.g. ['redis://localhost:6379'], got {hosts!r}"
        )
    decoded: list[dict[str, Any]] = []
    for host in hosts:
        if isinstance(host, Mapping):
            decoded.append(dict(host))
        elif isinstance(host, list | tuple):
            decoded.append({"host": host[0], "port": host[1]})
        elif isinstance(host, str):
            decoded.append({"address": host})
        else:
            raise ValueError(
                f"cannot use {host!r} as a Redis host: give a URL, (host, port) or dict"
            )
    return decoded


def describe_host(host: Mapping[str, Any]) -> str:
    """A short, password-free name for a host setting, for error messages and the hash ring."""
    if "master_name" in host:
        return f"sentinel master {host['master_name']!r}"
    if "address" in host:
        address = str(host["address"])
        scheme, _, rest = address.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"
    return f"redis://{host.get('host', 'localhost')}:{host.get('port', 6379)}"


def _client_kwargs(host: Mapping[str, Any], drop: Sequence[str]) -> dict[str, Any]:
    kwargs = {key: value for key, value in host.items() if key not in drop}
    kwargs.setdefault("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    kwargs.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    # One retry on a fresh connection covers a pooled connection the server closed; more
    # retries (or retrying a timeout) only make a down server look like a hang.
    kwargs.setdefault(
        "retry", Retry(NoBackoff(), 1, supported_errors=(redis_errors.ConnectionError,))
    )
    return kwargs


def make_client(host: Mapping[str, Any]) -> RedisClient:
    """A client for one host setting: our LeanClient for plain servers, else redis-py's
    (TLS, Sentinel-managed, Cluster, or client options only redis-py understands)."""
    params = lean_params(host)
    if params is not None:
        return LeanClient(params)
    return RedisPyClient(redis_py_client(host))


def redis_py_client(host: Mapping[str, Any]) -> aioredis.Redis | RedisCluster:
    """redis-py's client for one host setting (the pub/sub layer's subscriber uses it bare)."""
    if "master_name" in host:
        kwargs = _client_kwargs(host, ("master_name", "sentinels", "sentinel_kwargs"))
        sentinel_kwargs = dict(host.get("sentinel_kwargs") or {})
        sentinel_kwargs.setdefault("socket_connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        sentinel_kwargs.setdefault("socket_timeout", DEFAULT_CONNECT_TIMEOUT)
        sentinel = Sentinel(host["sentinels"], sentinel_kwargs=sentinel_kwargs)
        client: aioredis.Redis = sentinel.master_for(host["master_name"], **kwargs)
        return client
    if host.get("cluster"):
        kwargs = _client_kwargs(host, ("address", "cluster"))
        if "address" in host:
            return RedisCluster.from_url(host["address"], **kwargs)
        return RedisCluster(**kwargs)
    if "address" in host:
        return aioredis.Redis.from_url(host["address"], **_client_kwargs(host, ("address",)))
    return aioredis.Redis(**_client_kwargs(host, ()))


def socket_timeout(host: Mapping[str, Any]) -> float | None:
    """The socket timeout a host's client will use."""
    value = host.get("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    return None if value is None else float(value)


class Shard:
    """One Redis deployment of a layer: its clients (one per event loop) and its health."""

    def __init__(self, host: Mapping[str, Any]) -> None:
        self.host = dict(host)
        self.timeout = socket_timeout(self.host)  # its clients' socket timeout (per command)
        self.name = describe_host(host)
        self.is_cluster = bool(host.get("cluster"))
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RedisClient] = (
            weakref.WeakKeyDictionary()
        )
        self._down_until = 0.0
        self._scripts: dict[str, str] = {}

    def client(self) -> RedisClient:
        """The client for the running event loop (redis.asyncio clients are bound to one)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = make_client(self.host)
        return client

    def available(self) -> bool:
        """False while the shard cools down after a failure."""
        return self._down_until <= time.monotonic()

    async def run(self, operation: Callable[[RedisClient], Awaitable[T]]) -> T:
        """Run ``operation`` with this shard's client; Redis failures become LayerUnavailable."""
        wait = self._down_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        try:
            result = await operation(self.client())
        except REDIS_DOWN_ERRORS as exc:
            unavailable = self.failed(exc)
            await self._drop_connections()
            raise unavailable from exc
        self._down_until = 0.0
        return result

    def failed(self, exc: BaseException) -> LayerUnavailable:
        """Start the cooldown after ``exc`` and return the error to give callers."""
        self._down_until = time.monotonic() + COOLDOWN
        if isinstance(exc, redis_errors.AuthenticationError):
            hint = "check the username and password in the layer's hosts setting"
        else:
            hint = (
                "check that it is running and reachable from this host (the layer reconnects "
                "by itself)"
            )
        unavailable = LayerUnavailable(
            f"Redis at {self.name} is unavailable ({type(exc).__name__}: {exc}); {hint}"
        )
        unavailable.__cause__ = exc
        return unavailable

    async def _drop_connections(self) -> None:
        # After a failure, pooled connections may point at a dead or demoted server.
        client = self._clients.get(asyncio.get_running_loop())
        if client is not None:
            await client.drop_connections()

    async def close(self) -> None:
        """Close the running loop's client; other loops' clients die with their loops."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            with contextlib.suppress(Exception):  # closing a broken connection is no error
                await client.aclose()


def script_sha(script: str) -> str:
    """The SHA1 that EVALSHA names ``script`` by."""
    sha = _SHAS.get(script)
    if sha is None:
        sha = _SHAS[script] = hashlib.sha1(script.encode()).hexdigest()
    return sha


async def evalsha(
    client: RedisClient, script: str, keys: Sequence[str], args: Sequence[Any]
) -> Any:
    """EVALSHA ``script`` (loading it once on NOSCRIPT): one round trip in the steady state."""
    sha = script_sha(script)
    try:
        return await client.evalsha(sha, len(keys), *keys, *args)
    except redis_errors.NoScriptError:
        await client.script_load(script)
        return await client.evalsha(sha, len(keys), *keys, *args)


_SHAS: dict[str, str] = {}


class HashRing:
    """Consistent hashing: adding a shard moves only about 1/N of the names to it."""

    POINTS_PER_SHARD = 64

    def __init__(self, identities: Sequence[str]) -> None:
        self.size = len(identities)
        points: list[tuple[int, int]] = []
        for index, identity in enumerate(identities):
            for replica in range(self.POINTS_PER_SHARD):
                points.append((_hash(f"{identity}#{replica}"), index))
        points.sort()
        self._hashes = [point for point, _ in points]
        self._owners = [owner for _, owner in points]

    def index(self, name: str) -> int:
        """The shard index that owns ``name``."""
        if self.size == 1:
            return 0
        position = bisect.bisect(self._hashes, _hash(name)) % len(self._hashes)
        return self._owners[position]


def _hash(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")
