"""RESP2 on the wire for the lean client (``lean.py``): encode commands, parse replies, and
one pipelined connection that hands each reply to its waiter (a future or a callback)."""

from __future__ import annotations

import asyncio
import collections
import math
from collections.abc import Callable
from typing import Any, cast

import redis.exceptions as redis_errors

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
    kind = buffer[pos]  # an int: no one-byte slice per reply
    if kind == 58:  # b":", an integer (a SEND's or a PUBLISH's reply)
        return int(buffer[pos + 1 : end]), end + 2
    line = buffer[pos + 1 : end]
    pos = end + 2
    if kind == 36:  # b"$"
        length = int(line)
        if length < 0:
            return None, pos
        if len(buffer) < pos + length + 2:
            raise _Incomplete(pos + length + 2)
        return buffer[pos : pos + length], pos + length + 2
    if kind == 42:  # b"*"
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
    if kind == 43:  # b"+"
        return line, pos
    if kind == 45:  # b"-"
        message = line.decode(errors="replace")
        error_class = _ERRORS.get(message.split(" ", 1)[0], redis_errors.ResponseError)
        return error_class(message), pos
    raise redis_errors.InvalidResponse(f"unexpected RESP reply type {bytes([kind])!r}")


def encode_command(args: tuple[Any, ...], total: int | None = None) -> bytes:
    """``args`` as a RESP array of bulk strings; with ``total``, only the head of an array of
    ``total`` items whose last ``total - len(args)`` are appended by the caller (see
    :func:`bulk_int`)."""
    parts = [b"*%d\r\n" % (len(args) if total is None else total)]
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


def bulk_int(value: int) -> bytes:
    """One integer argument as a RESP bulk string (for commands encoded ahead: encode_command)."""
    digits = b"%d" % value
    return b"$%d\r\n%b\r\n" % (len(digits), digits)


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
        # Made by a protocol factory inside its loop, and bound to it: no get_running_loop()
        # per command (on Python < 3.12 each is a getpid() system call).
        self.loop = asyncio.get_running_loop()
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
        return self.request_encoded(encode_command(args), limit)

    def request_encoded(self, data: bytes, limit: float | None) -> asyncio.Future[Any]:
        """:meth:`request` for a command encoded by the caller (``encode_command`` and
        :func:`bulk_int`: a layer that sends the same command head again and again keeps it)."""
        future = self.loop.create_future()
        self._expect(future, limit)
        self._write(data)
        return future

    def request_callback(
        self, args: tuple[Any, ...], limit: float | None, callback: Callable[[Any], None]
    ) -> None:
        """Write one command; ``callback`` gets its reply, or the error (an exception object),
        as soon as it is parsed."""
        self._expect(callback, limit)
        self._write(encode_command(args))

    def request_encoded_then(
        self, data: bytes, limit: float | None, callback: Callable[[Any], None]
    ) -> asyncio.Future[Any]:
        """Write two commands the caller encoded, one after the other, in ``data`` (one write):
        the future gets the first's reply, ``callback`` the second's (both arrive in one read as
        a rule: one round trip for the two)."""
        future = self.loop.create_future()
        self._expect(future, limit, callback)
        self._write(data)
        return future

    def _expect(self, waiter: Waiter, limit: float | None, then: Waiter | None = None) -> None:
        """Queue ``waiter`` for the next reply (and ``then`` for the one after), due within
        ``limit`` seconds."""
        if self.closed or self.transport is None:
            raise redis_errors.ConnectionError("connection to Redis is closed")
        if limit is None:
            deadline = math.inf
        else:
            deadline = self.loop.time() + limit
            if self.watchdog is None:
                self.watchdog = self.loop.call_at(deadline, self._check_deadline)
        self.waiters.append(waiter)
        self.deadlines.append(deadline)
        if then is not None:
            self.waiters.append(then)
            self.deadlines.append(deadline)

    def _write(self, data: bytes) -> None:
        assert self.transport is not None  # _expect checked it
        self.transport.write(data)

    def _check_deadline(self) -> None:
        self.watchdog = None
        if not self.deadlines:
            return
        oldest = self.deadlines[0]
        loop = self.loop
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
