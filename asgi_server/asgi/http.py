"""The ASGI side of one HTTP request: the scope, ``receive()`` and ``send()`` as a state machine.

A ``RequestCycle`` sits between the app and the transport. The transport pushes request body
pieces in (``body_received``, ``request_complete``, ``disconnected``); the app pulls them with
``receive()`` and pushes its response out with ``send()``, which the HTTP/1.1 core serializes.
The response head is held back until the first body message so that the head and the first
chunk (often the whole response) go out in one ``write()``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_to_bytes

# Re-exported: apps and asgi.websocket import it from here.
from asgi_server.asgi.errors import ClientDisconnected as ClientDisconnected
from asgi_server.protocols._response import DefaultHeaders, ResponseError

if TYPE_CHECKING:
    from asgi_server.protocols.http11 import HTTP11Core

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
_EMPTY_BODY = {"type": "http.request", "body": b"", "more_body": False}
_DISCONNECT = {"type": "http.disconnect"}
_METHODS = {name.encode(): name for name in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")}
_ERROR_HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"connection", b"close"),
]


class ResponseSink(Protocol):
    """What a request cycle needs from its transport."""

    writing_paused: bool
    # The running loop, for receive()'s waits: asyncio.get_running_loop() costs a getpid()
    # system call on every call, which an upload's many waits would pay each time.
    loop: asyncio.AbstractEventLoop

    @property
    def default_headers(self) -> DefaultHeaders:
        """The server's default response headers (server, date, --header)."""

    def write(self, data: bytes) -> None:
        """Write bytes to the peer."""

    async def drain(self) -> None:
        """Wait until the peer has read enough that writing may go on."""

    def response_complete(self, cycle: RequestCycle) -> None:
        """The response is complete: log it, then keep the connection alive or close it."""

    def abort(self) -> None:
        """Drop the connection: the response cannot be completed cleanly."""

    def body_consumed(self) -> None:
        """The app took the buffered body: reading may resume."""

    def body_wanted(self) -> None:
        """The app waits for more of the body: the transport times the wait."""


def scope_template(
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
    scheme: str,
    root_path: str,
    state: dict[str, Any] | None,
) -> dict[str, Any]:
    """What the scopes of one connection share; ``build_scope`` copies it for each request."""
    global _last_base
    # What every connection of a server shares is built once per server (a 12-key literal
    # was a visible share of a `Connection: close` request); a connection copies it and
    # sets its addresses. One entry: a process runs one server, so the entry almost always hits.
    last = _last_base
    if last is not None and last[0] == root_path and last[1] is state:
        base = last[2]
    else:
        base = _scope_base(root_path, state)
        _last_base = (root_path, state, base)
    template = base.copy()
    template["server"] = server
    template["client"] = client
    template["scheme"] = scheme
    return template


def _scope_base(root_path: str, state: dict[str, Any] | None) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": "1.1",
        "server": None,
        "client": None,
        "scheme": "http",
        "method": "GET",
        "root_path": root_path,
        "path": root_path,
        "raw_path": b"",
        "query_string": b"",
        "headers": [],
    }
    if state is not None:
        base["state"] = state  # replaced by a copy per request
    return base


_last_base: tuple[str, dict[str, Any] | None, dict[str, Any]] | None = None


class RequestHead(Protocol):
    """What ``build_scope`` reads of a request: the HTTP/1.1 and HTTP/2 cores' requests."""

    method: bytes
    target: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]


def build_scope(request: RequestHead, template: dict[str, Any]) -> dict[str, Any]:
    """The ASGI HTTP connection scope (ASGI 3.0, HTTP spec 2.4) for ``request``.

    ``template`` comes from ``scope_template``. Copying it and replacing values is cheaper than
    a dict literal: every key is already there, so the copy is one memcpy and nothing resizes.
    """
    target = request.target
    if target[:1] != b"/" and b"://" in target:  # absolute-form (RFC 9112 §3.2.2)
        target = b"/" + target.split(b"://", 1)[1].partition(b"/")[2]
    raw_path, _, query_string = target.partition(b"?")
    # `37 in` (the int of "%") is a memchr; `b"%" in` costs ten times as much per request.
    path_bytes = unquote_to_bytes(raw_path) if 37 in raw_path else raw_path
    scope = template.copy()
    scope["http_version"] = request.http_version
    scope["method"] = _METHODS.get(request.method) or request.method.decode("ascii", "replace")
    scope["path"] = template["root_path"] + path_bytes.decode("utf-8", "replace")
    scope["raw_path"] = raw_path
    scope["query_string"] = query_string
    scope["headers"] = request.headers
    state = template.get("state")
    if state is not None:
        scope["state"] = state.copy()  # shallow, per the lifespan state spec
    return scope


class RequestCycle:
    """One request and its response, seen from the app."""

    __slots__ = (
        "_body",
        "_body_size",
        "_disconnected",
        "_expect_continue",
        "_head_written",
        "_last_body_sent",
        "_request_complete",
        "_response_complete",
        "_start",
        "_waiter",
        "core",
        "logger",
        "scope",
        "sink",
        "task",
    )

    def __init__(
        self,
        scope: dict[str, Any],
        core: HTTP11Core,
        sink: ResponseSink,
        expect_continue: bool,
        logger: logging.Logger,
    ) -> None:
        self.scope = scope
        self.core = core
        self.sink = sink
        self.logger = logger
        self._expect_continue = expect_continue
        self._body: deque[bytes] | None = None  # made on the first piece: most requests have none
        self._body_size = 0
        self._request_complete = False
        self._last_body_sent = False
        self._disconnected = False
        self._response_complete = False
        self._head_written = False
        self._start: dict[str, Any] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None  # set by whoever runs run() in a task

    # --- the transport's side ----------------------------------------------------------------
    @property
    def buffered_body(self) -> int:
        """Body bytes received but not yet taken by the app."""
        return self._body_size

    @property
    def request_is_complete(self) -> bool:
        """Whether the whole request body has arrived."""
        return self._request_complete

    def body_received(self, data: bytes) -> None:
        """A piece of the request body arrived."""
        if self._body is None:
            self._body = deque()
        self._body.append(data)
        self._body_size += len(data)
        if self._waiter is not None:
            self._wake()

    def request_complete(self) -> None:
        """The request body is complete."""
        self._request_complete = True
        if self._waiter is not None:
            self._wake()

    def disconnected(self) -> None:
        """The client went away: receive() now returns http.disconnect."""
        self._disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # --- the app's side ----------------------------------------------------------------------
    async def receive(self) -> dict[str, Any]:
        """ASGI receive(): body pieces, then (once answered or gone) http.disconnect."""
        if self._expect_continue:
            self._expect_continue = False  # RFC 9110 §10.1.1: send 100 only if the app reads
            if not self._head_written and not self._request_complete:
                self.sink.write(self.core.continue_response())
        while True:
            if self._disconnected or self._response_complete:
                return _DISCONNECT
            if self._body or (self._request_complete and not self._last_body_sent):
                return self._take_body()
            if not self._request_complete:
                self.sink.body_wanted()
            waiter = self._waiter = self.sink.loop.create_future()
            await waiter

    def _take_body(self) -> dict[str, Any]:
        chunks = self._body
        if chunks is None or not chunks:
            self._last_body_sent = True
            return _EMPTY_BODY
        # One piece per receive(), as it arrived: joining pieces would copy megabytes of an
        # upload once more, and a receive() call costs far less than a copy.
        body = chunks.popleft()
        self._body_size -= len(body)
        more_body = bool(chunks) or not self._request_complete
        self._last_body_sent = not more_body
        if not chunks:
            self.sink.body_consumed()
        return {"type": "http.request", "body": body, "more_body": more_body}

    async def send(self, message: dict[str, Any]) -> None:
        """ASGI send(): http.response.start, then http.response.body until more_body is false."""
        kind = message["type"]
        start = self._start
        if start is None and not self._head_written:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected 'http.response.start' first, got {kind!r}.")
            self._start = message
            return
        if kind != "http.response.body":
            raise RuntimeError(f"Expected 'http.response.body', got {kind!r}.")
        if self._response_complete:
            raise RuntimeError("The response is complete; send nothing after more_body=False.")
        if self._disconnected:
            raise ClientDisconnected("The client closed the connection; stop sending.")
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        sink = self.sink
        if start is not None:
            data = self.core.start_response(
                start["status"], start.get("headers", ()), body, more_body, sink.default_headers
            )
            self._start = None  # only now: a ResponseError above leaves room for a 500
            self._head_written = True
        else:
            data = self.core.send_body(body, more_body)
        if data:
            sink.write(data)
        if not more_body:
            self._response_complete = True
            if self._waiter is not None:
                self._wake()
            sink.response_complete(self)
        elif sink.writing_paused:
            await sink.drain()

    # --- running the app ---------------------------------------------------------------------
    async def run(self, app: Any, tasks: set[asyncio.Task[None]] | None = None) -> None:
        """Run the app for this request; turn its mistakes into a 500 or an aborted connection.

        When ``tasks`` is given, ``self.task`` removes itself from it when done: cheaper than
        a done callback, which costs one more trip through the event loop per request.
        """
        try:
            await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            self.sink.abort()  # graceful shutdown ran out of time
            return
        except ClientDisconnected:
            self.logger.debug("The client left before the response was complete.")
        except ResponseError as exc:
            self.logger.error("Invalid response from the ASGI application: %s", exc)
            self._fail()
        except BaseException:
            self.logger.exception("Exception in ASGI application")
            self._fail()
        else:
            if self._response_complete or self._disconnected:
                return
            if not self._head_written:
                self.logger.error("ASGI callable returned without sending a response.")
            else:
                self.logger.error("ASGI callable returned without completing the response.")
            self._fail()
        finally:
            if tasks is not None and self.task is not None:
                tasks.discard(self.task)

    def _fail(self) -> None:
        if self._head_written:
            if not self._response_complete:
                self.sink.abort()  # a partial response must not look complete
            return
        if self._disconnected:
            return
        self._start = None
        self.core.keep_alive = False
        self.sink.write(
            self.core.start_response(
                500, _ERROR_HEADERS, b"Internal Server Error", False, self.sink.default_headers
            )
        )
        self._head_written = self._response_complete = True
        self.sink.response_complete(self)
