"""A lean RESP2 client for the Redis layers' hot path: the few commands they send, pipelined.

Why not redis-py for everything: its asyncio client spends ~200 us of CPU per command (pool
checkout, per-call timeouts, response callbacks), ten times the cost of the round trip itself,
and a channel layer sends one or two commands per message. This client keeps ONE connection
for every non-blocking command of an event loop (concurrent callers pipeline on it: replies come
back in order, each resolves the next waiting future) and one connection per blocking pop
(the wire format and the connection are in ``resp.py``).

It serves plain ``redis://`` and ``unix://`` servers (with db, username, password and the two
timeouts); anything else (TLS, Sentinel, Cluster, other client options) goes through redis-py.
Errors are redis-py's exception classes, so callers handle both clients alike.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import unquote, urlparse

import redis.exceptions as redis_errors

from channel_layers.redis.client import CallbackConnection
from channel_layers.redis.resp import _Connection

#: Host settings this client understands; any other key sends the host to redis-py.
LEAN_KEYS = frozenset(
    {"address", "host", "port", "db", "username", "password", "socket_timeout"}
    | {"socket_connect_timeout"}
)


def lean_params(host: Mapping[str, Any]) -> dict[str, Any] | None:
    """Connection parameters when this client can serve ``host``, else None (use redis-py)."""
    if not set(host) <= LEAN_KEYS:
        return None
    params: dict[str, Any] = {
        "host": host.get("host", "localhost"),
        "port": int(host.get("port", 6379)),
        "path": None,
        "db": int(host.get("db", 0)),
        "username": host.get("username"),
        "password": host.get("password"),
        "socket_timeout": host.get("socket_timeout", 3.0),
        "socket_connect_timeout": host.get("socket_connect_timeout", 2.0),
    }
    if "address" in host:
        url = urlparse(str(host["address"]))
        if url.scheme == "unix":
            params["path"] = url.path
        elif url.scheme == "redis":
            params["host"], params["port"] = url.hostname or "localhost", url.port or 6379
            if url.path.strip("/"):
                params["db"] = int(url.path.strip("/"))
        else:
            return None
        query = dict(pair.split("=", 1) for pair in url.query.split("&") if "=" in pair)
        if set(query) - {"db"}:
            return None
        params["db"] = int(query.get("db", params["db"]))
        params["username"] = unquote(url.username) if url.username else params["username"]
        params["password"] = unquote(url.password) if url.password else params["password"]
    return params


def connect_error_text(exc: BaseException) -> str:
    """Why a connection could not be made, in words a user searches for."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    if isinstance(exc, TimeoutError):
        return "no answer within socket_connect_timeout"
    return str(exc) or type(exc).__name__


def _setup_refused(command: str, where: str, exc: Exception) -> redis_errors.ConnectionError:
    """The error for an AUTH or SELECT that Redis refused: a ConnectionError (the connection is
    unusable, and the layers report those as LayerUnavailable), AuthenticationError for AUTH."""
    if command == "AUTH":
        return redis_errors.AuthenticationError(f"Redis at {where} refused the credentials: {exc}")
    return redis_errors.ConnectionError(f"Redis at {where} refused {command}: {exc}")


class LeanClient:
    """The commands the Redis layers use, with redis-py's signatures, on lean connections."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params)
        self._shared: _Connection | None = None
        self._connecting: asyncio.Lock | None = None
        self._idle: list[_Connection] = []  # connections for blocking pops

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        params = self.params
        where = params["path"] or f"{params['host']}:{params['port']}"
        try:
            async with asyncio.timeout(params["socket_connect_timeout"]):
                if params["path"]:
                    _, conn = await loop.create_unix_connection(_Connection, params["path"])
                else:
                    _, conn = await loop.create_connection(
                        _Connection, params["host"], params["port"]
                    )
        except (OSError, TimeoutError) as exc:
            raise redis_errors.ConnectionError(
                f"cannot connect to Redis at {where}: {connect_error_text(exc)}"
            ) from exc
        setup: list[tuple[Any, ...]] = []
        if params["password"] is not None:
            auth = (params["username"], params["password"]) if params["username"] else ()
            setup.append(("AUTH", *auth) if auth else ("AUTH", params["password"]))
        if params["db"]:
            setup.append(("SELECT", params["db"]))
        limit = params["socket_timeout"]
        replies = [conn.request(args, limit) for args in setup]  # one write, one round trip
        try:
            for args, reply in zip(setup, replies, strict=True):
                try:
                    await reply
                except redis_errors.ResponseError as exc:
                    raise _setup_refused(args[0], where, exc) from exc
        except BaseException:
            # Else every later attempt (one per send) would leave one more socket open on the
            # server: the connection is never handed out, so nothing else would close it.
            conn.abort(redis_errors.ConnectionError("the connection setup failed"))
            for reply in replies:
                if reply.done() and not reply.cancelled():
                    reply.exception()  # retrieved: no "exception never retrieved" noise
            raise
        return conn

    def ready_connection(self) -> _Connection | None:
        """The shared connection when it is open (callers may then skip awaiting a connect)."""
        conn = self._shared
        return None if conn is None or conn.closed else conn

    def idle_blocking_connection(self) -> _Connection | None:
        """An open connection for a blocking pop, taken from the idle ones; None when none is
        (``release_blocking_connection`` gives it back)."""
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
        return None

    def release_blocking_connection(self, conn: CallbackConnection) -> None:
        """Give back a connection that ``idle_blocking_connection`` lent."""
        if isinstance(conn, _Connection) and not conn.closed:
            self._idle.append(conn)

    async def execute_command(self, *args: Any) -> Any:
        """Send one command on the shared connection (pipelined with concurrent callers)."""
        conn = self._shared
        if conn is None or conn.closed:
            if self._connecting is None:
                self._connecting = asyncio.Lock()
            async with self._connecting:
                conn = self._shared
                if conn is None or conn.closed:
                    conn = self._shared = await self._open()
        # A caller cancelled here leaves its future behind; the reply still arrives and is
        # dropped, so later replies stay matched to their commands.
        return await conn.request(args, self.params["socket_timeout"])

    async def blpop(self, keys: list[str], timeout: float = 0) -> Any:
        """BLPOP on a connection of its own (a blocked connection cannot carry other work)."""
        conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            conn = await self._open()
        # A live server answers a BLPOP within its timeout plus a round trip; allow a second
        # (or socket_timeout, when smaller) before calling the server hung.
        limit = self.params["socket_timeout"]
        margin = 1.0 if limit is None else min(limit, 1.0)
        reply = conn.request(("BLPOP", *keys, timeout), timeout + margin)
        try:
            result = await reply
        except asyncio.CancelledError:
            conn.abort(redis_errors.ConnectionError("blocking pop cancelled"))
            raise
        self._idle.append(conn)
        return result

    # redis-py-compatible helpers for the commands the layers send --------------------------

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        """EVALSHA: run a loaded script."""
        return await self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)

    async def script_load(self, script: str) -> Any:
        """SCRIPT LOAD: make ``script`` callable by its SHA1."""
        return await self.execute_command("SCRIPT", "LOAD", script)

    async def set(self, key: str, value: bytes, px: int | None = None) -> Any:
        """SET, with an expiry in milliseconds."""
        extra = ("PX", px) if px is not None else ()
        return await self.execute_command("SET", key, value, *extra)

    async def delete(self, *keys: str) -> Any:
        """DEL."""
        return await self.execute_command("DEL", *keys)

    async def unlink(self, *keys: Any) -> Any:
        """UNLINK: delete in the background."""
        return await self.execute_command("UNLINK", *keys)

    async def zrem(self, key: str, *members: str) -> Any:
        """ZREM."""
        return await self.execute_command("ZREM", key, *members)

    async def publish(self, channel: str, message: bytes) -> Any:
        """PUBLISH."""
        return await self.execute_command("PUBLISH", channel, message)

    async def scan_iter(self, match: str, count: int = 1000) -> AsyncIterator[bytes]:
        """SCAN the whole keyspace for ``match``, never KEYS."""
        cursor = b"0"
        while True:
            cursor, keys = await self.execute_command(
                "SCAN", cursor, "MATCH", match, "COUNT", count
            )
            for key in keys:
                yield key
            if cursor == b"0":
                return

    async def drop_connections(self) -> None:
        """Nothing to do: a connection that failed has closed itself, and the next command
        opens a new one."""

    async def aclose(self) -> None:
        """Close every connection."""
        for conn in [self._shared, *self._idle]:
            if conn is not None and conn.transport is not None:
                with contextlib.suppress(Exception):
                    conn.transport.close()
        self._shared = None
        self._idle = []
