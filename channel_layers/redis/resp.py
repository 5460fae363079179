"""A lean RESP2 client for the Redis layers' hot path: the few commands they send, pipelined.

Why not redis-py for everything: its asyncio client spends ~200 us of CPU per command (pool
checkout, per-call timeouts, response callbacks), ten times the cost of the round trip itself,
and a channel layer sends one or two commands per message. This client keeps ONE connection
for every non-blocking command of an event loop (concurrent callers pipeline on it: replies come
back in order, each resolves the next waiting future) and one connection per blocking pop.

It serves plain ``redis://`` and ``unix://`` servers (with db, username, password and the two
timeouts); anything else (TLS, Sentinel, Cluster, other client options) goes through redis-py.
Errors are redis-py's exception classes, so callers handle both clients alike.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, cast
from urllib.parse import unquote, urlparse

import redis.exceptions as redis_errors

from channel_layers.redis.client import CallbackConnection

#: Host settings this client understands; any other key sends the host to redis-py.
LEAN_KEYS = frozenset(
    {"address", "host", "port", "db", "username", "password", "socket_timeout"}
    | {"socket_connect_timeout"}
)
_ERRORS: dict[str, type[redis_errors.RedisError]] = {
    "NOSCRIPT": redis_errors.NoScriptError,
    "READONLY": redis_errors.ReadOnlyError,
    "LOADING": redis_errors.BusyLoadingError,
    # A server that wants a password and got none (or a user whose rights went): every command
    # fails alike, so callers see it as the server being unusable, like redis-py does.
    "NOAUTH": redis_errors.AuthenticationError,
}


class _Incomplete(Exception):
    """The buffer ends mid-reply; ``args[0]`` is the buffer length needed before trying again."""


#: The shortest RESP2 reply (``+\r\n``): an array missing N more items needs at least 3N more
#: bytes, so a reply arriving in small pieces is parsed again only once that many arrived
#: (else a 500-item reply fed a byte at a time was re-parsed from its start at every item).
_MIN_ITEM = 3


def _parse(buffer: bytes, pos: int) -> tuple[Any, int]:
    """One RESP2 reply from ``buffer`` at ``pos``: (value, next position), or _Incomplete."""
    # Longer than 40 lines: the bulk-string case is inlined in the array loop because DRAIN
    # replies carry hundreds of them and a call per item doubled the parse time.
    end = buffer.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete(len(buffer) + 1)
    kind, line = buffer[pos : pos + 1], buffer[pos + 1 : end]
    pos = end + 2
    if kind == b"$":
        length = int(line)
        if length < 0:
            return None, pos
        if len(buffer) < pos + length + 2:
            raise _Incomplete(pos + length + 2)
        return buffer[pos : pos + length], pos + length + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, pos
        items: list[Any] = []
        for index in range(count):
            if buffer[pos : pos + 1] == b"$":  # inline the common case: a bulk string
                end = buffer.find(b"\r\n", pos)
                if end < 0:
                    raise _Incomplete(len(buffer) + 1 + _MIN_ITEM * (count - index - 1))
                length = int(buffer[pos + 1 : end])
                start = end + 2
                if length < 0:
                    items.append(None)
                    pos = start
                    continue
                if len(buffer) < start + length + 2:
                    raise _Incomplete(start + length + 2 + _MIN_ITEM * (count - index - 1))
                items.append(buffer[start : start + length])
                pos = start + length + 2
            else:
                try:
                    item, pos = _parse(buffer, pos)
                except _Incomplete as incomplete:
                    raise _Incomplete(
                        incomplete.args[0] + _MIN_ITEM * (count - index - 1)
                    ) from None
                items.append(item)
        return items, pos
    if kind == b":":
        return int(line), pos
    if kind == b"+":
        return line, pos
    if kind == b"-":
        message = line.decode(errors="replace")
        error_class = _ERRORS.get(message.split(" ", 1)[0], redis_errors.ResponseError)
        return error_class(message), pos
    raise redis_errors.InvalidResponse(f"unexpected RESP reply type {kind!r}")


def _encode(args: tuple[Any, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    append = parts.append
    for arg in args:
        kind = type(arg)
        if kind is str:
            data = arg.encode()
        elif kind is bytes:
            data = arg
        elif kind is int:
            data = b"%d" % arg
        elif kind is float:
            data = repr(arg).encode()
        elif isinstance(arg, bytes | bytearray | memoryview):
            data = bytes(arg)
        else:
            raise redis_errors.DataError(f"cannot send {type(arg).__name__} to Redis")
        if len(data) < 1024:  # one formatted piece per argument (the copy is cheap)
            append(b"$%d\r\n%b\r\n" % (len(data), data))
        else:  # no copy of a big payload before the join
            append(b"$%d\r\n" % len(data))
            append(data)
            append(b"\r\n")
    return b"".join(parts)


#: What waits for one reply: a future (a caller awaits it) or a callback (called with the reply,
#: or with the error, right where the reply is parsed: no task or loop turn in between).
Waiter = asyncio.Future[Any] | Callable[[Any], None]


class _Connection(asyncio.Protocol):
    """One socket: writes commands, hands each reply to its waiter, in order.

    Every command is bounded by one watchdog timer per connection (re-armed lazily for the oldest
    command) rather than a timer per command: a timeout per command cost more CPU than parsing
    its reply.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiters: collections.deque[Waiter] = collections.deque()
        self.deadlines: collections.deque[float] = collections.deque()  # loop time, per waiter
        self.watchdog: asyncio.TimerHandle | None = None
        # The unparsed tail of a reply that arrived in pieces (appended to, never rebuilt by
        # concatenation: ``bytes + data`` copied everything received so far on every read).
        self.buffer = bytearray()
        self.need = 0  # do not parse again before the buffer holds this many bytes
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, yet offer the same methods:
        # the server runs on uvloop by default, so an isinstance check here broke the layer there.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        tail = self.buffer
        if tail:
            tail += data  # amortized: what came before is not copied again
            if len(tail) < self.need:  # a big reply arriving in pieces: do not re-parse each
                return
            buffer = bytes(tail)  # one copy per attempt at a whole reply (bytes: hashable items)
            tail.clear()
        else:
            buffer = data  # the common case: whole replies in one read, parsed without a copy
        self.need = 0
        pos = 0
        while pos < len(buffer):
            try:
                reply, next_pos = _parse(buffer, pos)
            except _Incomplete as incomplete:
                self.need = incomplete.args[0] - pos
                tail += memoryview(buffer)[pos:]
                return
            pos = next_pos
            if not self.reply_received(reply):
                return

    def reply_received(self, reply: Any) -> bool:
        """Hand one parsed reply to the oldest waiter; False when the connection was aborted."""
        if not self.waiters:  # a reply nobody asked for: the stream is out of step
            self.abort(redis_errors.InvalidResponse("unexpected reply from Redis"))
            return False
        waiter = self.waiters.popleft()
        self.deadlines.popleft()
        _resolve(waiter, reply)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(redis_errors.ConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def abort(self, exc: Exception) -> None:
        """Fail every pending command and drop the socket (its replies can no longer match)."""
        self._fail(exc)
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        self.deadlines.clear()
        while self.waiters:
            _resolve(self.waiters.popleft(), exc)

    def request(self, args: tuple[Any, ...], limit: float | None) -> asyncio.Future[Any]:
        """Write one command; the future resolves with its reply. No reply within ``limit``
        seconds fails it and every later command (the socket is dropped)."""
        future = asyncio.get_running_loop().create_future()
        self._send(args, limit, future)
        return future

    def request_callback(
        self, args: tuple[Any, ...], limit: float | None, callback: Callable[[Any], None]
    ) -> None:
        """Write one command; ``callback`` gets its reply, or the error (an exception object),
        as soon as it is parsed."""
        self._send(args, limit, callback)

    def request_then(
        self,
        args: tuple[Any, ...],
        then: tuple[Any, ...],
        limit: float | None,
        callback: Callable[[Any], None],
    ) -> asyncio.Future[Any]:
        """Write two commands in one write: the future gets the first's reply, ``callback``
        the second's (both arrive in one read as a rule: one round trip for the two)."""
        future = asyncio.get_running_loop().create_future()
        self._send(args, limit, future, then, callback)
        return future

    def _send(
        self,
        args: tuple[Any, ...],
        limit: float | None,
        waiter: Waiter,
        then: tuple[Any, ...] = (),
        then_waiter: Waiter | None = None,
    ) -> None:
        if self.closed or self.transport is None:
            raise redis_errors.ConnectionError("connection to Redis is closed")
        if limit is None:
            deadline = math.inf
        else:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + limit
            if self.watchdog is None:
                self.watchdog = loop.call_at(deadline, self._check_deadline)
        self.waiters.append(waiter)
        self.deadlines.append(deadline)
        if then_waiter is None:
            self.transport.write(_encode(args))
            return
        self.waiters.append(then_waiter)
        self.deadlines.append(deadline)
        self.transport.write(_encode(args) + _encode(then))

    def _check_deadline(self) -> None:
        self.watchdog = None
        if not self.deadlines:
            return
        oldest = self.deadlines[0]
        loop = asyncio.get_running_loop()
        if oldest <= loop.time():
            self.abort(redis_errors.TimeoutError("Redis did not answer in time (socket_timeout)"))
        elif oldest != math.inf:
            self.watchdog = loop.call_at(oldest, self._check_deadline)
        elif len(self.deadlines) > 1:  # an unbounded command first: look again later
            self.watchdog = loop.call_at(loop.time() + 1.0, self._check_deadline)


def _resolve(waiter: Waiter, reply: Any) -> None:
    if callable(waiter):
        waiter(reply)
    elif not waiter.done():  # a caller that was cancelled left its future behind
        if isinstance(reply, Exception):
            waiter.set_exception(reply)
        else:
            waiter.set_result(reply)


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
