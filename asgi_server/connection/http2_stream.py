"""The ASGI side of one HTTP/2 stream: ``receive()`` and ``send()`` over the HTTP/2 core.

Like ``asgi.http.RequestCycle`` for HTTP/1.1, with what HTTP/2 adds: the request body's window
opens as the app reads it (``body_consumed``), ``send()`` waits while the stream's bytes wait
for the peer's window (and resets the stream if the window stays shut for
``timeout_h2_window``), and ``http.response.trailers`` ends the stream when the app announced
trailers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from asgi_server.asgi.http import ClientDisconnected
from asgi_server.protocols.http2 import ResponseError, StreamGone

if TYPE_CHECKING:
    from asgi_server.connection.http2 import Http2Handler

_DISCONNECT = {"type": "http.disconnect"}
_ERROR_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]
INTERNAL_ERROR = 0x2


class StreamCycle:
    """One request and its response on an HTTP/2 stream, seen from the app."""

    def __init__(self, handler: Http2Handler, stream_id: int, scope: dict[str, Any]) -> None:
        self.handler = handler
        self.core = handler.core
        self.stream_id = stream_id
        self.scope = scope
        self.logger: logging.Logger = handler.logger
        self.task: asyncio.Task[None] | None = None
        self.started_at = time.monotonic()
        self.status = 0
        self._body: deque[bytes] = deque()
        self._request_complete = False
        self._last_body_sent = False
        self._disconnected = False
        self._start: dict[str, Any] | None = None
        self._head_sent = False
        self._body_done = False
        self._expect_trailers = False
        self._response_complete = False
        self._trailers: list[tuple[bytes, bytes]] = []
        self._receive_waiter: asyncio.Future[None] | None = None
        self._send_waiter: asyncio.Future[None] | None = None

    # --- the handler's side ---
    def body_received(self, data: bytes) -> None:
        """A piece of the request body arrived."""
        self._body.append(data)
        self._wake_receiver()

    def request_complete(self) -> None:
        """The request body is complete."""
        self._request_complete = True
        self._wake_receiver()

    def disconnected(self) -> None:
        """The stream (or the connection) is gone: receive() says so, send() raises."""
        self._disconnected = True
        self._wake_receiver()
        self.writable()

    def writable(self) -> None:
        """The stream's queued bytes have gone out (or the connection may write again)."""
        waiter, self._send_waiter = self._send_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_receiver(self) -> None:
        waiter, self._receive_waiter = self._receive_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the app's side ---
    async def receive(self) -> dict[str, Any]:
        """ASGI receive(): body pieces, then (once answered or gone) http.disconnect."""
        while True:
            if self._disconnected or self._response_complete:
                return _DISCONNECT
            if self._body:
                data = self._body.popleft()
                self.core.body_consumed(self.stream_id, len(data))  # the peer may send more
                self.handler.flush_soon()
                more = bool(self._body) or not self._request_complete
                self._last_body_sent = not more
                return {"type": "http.request", "body": data, "more_body": more}
            if self._request_complete and not self._last_body_sent:
                self._last_body_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            waiter = self._receive_waiter = self.handler.loop.create_future()
            await waiter

    async def send(self, message: dict[str, Any]) -> None:
        """ASGI send(): http.response.start, http.response.body, http.response.trailers."""
        kind = message["type"]
        if self._disconnected:
            raise ClientDisconnected("The client reset the stream; stop sending.")
        if kind == "http.response.start":
            if self._start is not None or self._head_sent:
                raise RuntimeError("'http.response.start' was sent already.")
            self._start = message
            return
        try:
            if kind == "http.response.body":
                await self._send_body(message.get("body", b""), message.get("more_body", False))
            elif kind == "http.response.trailers":
                self._send_trailers(message)
            else:
                raise RuntimeError(f"Unexpected ASGI message {kind!r} on an HTTP stream.")
        except StreamGone:
            self._disconnected = True
            raise ClientDisconnected("The stream has ended; stop sending.") from None

    async def _send_body(self, body: bytes, more_body: bool) -> None:
        start = self._start
        if start is None and not self._head_sent:
            raise RuntimeError("Expected 'http.response.start' first, got 'http.response.body'.")
        if self._body_done:
            raise RuntimeError("The response body is complete; send nothing after it.")
        core = self.core
        if start is not None:
            trailers = bool(start.get("trailers", False))
            status = start["status"]
            headers = start.get("headers", ())
            core.respond(
                self.stream_id,
                status,
                headers,
                self.handler.default_headers,
                body,
                more_body,
                trailers,
            )
            self._start, self._head_sent, self.status = None, True, status
            self._expect_trailers = trailers
        else:
            core.send_body(self.stream_id, body, more_body)
        self.handler.flush_soon()
        if not more_body:
            self._body_done = True
            if not self._expect_trailers:
                self._complete()
        await self._wait_writable()

    def _send_trailers(self, message: dict[str, Any]) -> None:
        if not self._body_done:
            raise RuntimeError("Send 'http.response.trailers' after the last body message.")
        self._trailers += list(message.get("headers", ()))
        if not message.get("more_trailers", False):
            self.core.send_trailers(self.stream_id, self._trailers)
            self.handler.flush_soon()
            self._complete()

    def _complete(self) -> None:
        self._response_complete = True
        self._wake_receiver()
        self.handler.response_complete(self)

    async def _wait_writable(self) -> None:
        """Wait while the stream's bytes wait for window (or the transport is paused)."""
        core, handler = self.core, self.handler
        while not self._disconnected and (
            core.pending_bytes(self.stream_id) or handler.writing_paused
        ):
            waiter = self._send_waiter = handler.loop.create_future()
            try:
                await asyncio.wait_for(waiter, handler.config.timeout_h2_window)
            except TimeoutError:
                # The peer has granted no window for this long: a zero window held forever
                # would keep the app, its buffers and a stream slot.
                self.logger.info("Resetting HTTP/2 stream %d: no send window", self.stream_id)
                core.reset_stream(self.stream_id)
                handler.flush_soon()
                self._disconnected = True
                raise ClientDisconnected("The client granted no window; stop sending.") from None

    # --- running the app ---
    async def run(self, app: Any) -> None:
        """Run the app for this stream; turn its mistakes into a 500 or a reset stream."""
        try:
            await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            self._fail()  # graceful shutdown ran out of time
            raise
        except ClientDisconnected:
            self.logger.debug("The client left before the response was complete.")
        except ResponseError as exc:
            self.logger.error("Invalid response from the ASGI application: %s", exc)
            self._fail()
        except BaseException:
            self.logger.exception("Exception in ASGI application")
            self._fail()
        else:
            if not self._response_complete and not self._disconnected:
                self.logger.error("ASGI callable returned without completing the response.")
                self._fail()
        finally:
            self.handler.stream_done(self)

    def _fail(self) -> None:
        if self._disconnected or self._response_complete:
            return
        if self._head_sent:
            self.core.reset_stream(self.stream_id, INTERNAL_ERROR)  # not a complete response
        else:
            try:
                self.core.respond(
                    self.stream_id,
                    500,
                    _ERROR_HEADERS,
                    self.handler.default_headers,
                    b"Internal Server Error",
                )
            except StreamGone:
                return
            self.status = 500
            self._complete()
        self.handler.flush_soon()
