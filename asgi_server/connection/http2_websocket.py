"""A WebSocket on one HTTP/2 stream (RFC 8441, extended CONNECT), for the HTTP/2 driver.

A ``CONNECT`` stream with ``:protocol: websocket`` becomes an ASGI ``websocket`` scope with
``http_version: "2"``. RFC 8441 §5 changes the opening handshake only: no Sec-WebSocket-Key
or -Accept, 200 instead of 101; after it, the stream's DATA frames carry the WebSocket frames of
the same core as HTTP/1.1 (``protocols/websocket.py``: message size, ping, close codes,
permessage-deflate). What HTTP/2 adds:

- flow control per stream: the stream's receive window opens as frames are parsed, and stays
  shut while the app's queue is full; the app's sends wait while the stream's bytes wait for
  the peer's window (reset after ``--timeout-h2-window``);
- the end of the stream: after the close handshake (or a protocol failure) we end our side with
  END_STREAM; the peer's END_STREAM or RST_STREAM without a close frame is a 1006 for the app;
  a peer that never answers our close frame gets RST_STREAM(CANCEL).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import TYPE_CHECKING, Any

from asgi_server.asgi.websocket import ClientDisconnected, Headers, WebsocketSession, build_scope
from asgi_server.connection.websocket import close_timeout
from asgi_server.protocols import websocket as ws
from asgi_server.protocols.http2 import ResponseError, StreamGone

if TYPE_CHECKING:
    from asgi_server.connection.http2 import Http2Handler
    from asgi_server.protocols.http2 import Request

GOING_AWAY_RESTART = 1012
INTERNAL_ERROR = 1011
ABNORMAL_CLOSURE = 1006
CANCEL = 0x8


def _tokens(headers: Headers, name: bytes) -> list[str]:
    values = [v.decode("latin-1") for k, v in headers if k == name]
    return [t.strip() for value in values for t in value.split(",") if t.strip()]


class WebsocketStream:
    """One WebSocket over an HTTP/2 stream: the ``WebsocketShell`` of its ASGI session."""

    def __init__(self, handler: Http2Handler, request: Request, http_scope: dict[str, Any]) -> None:
        self.handler = handler
        self.h2 = handler.core
        self.config = config = handler.config
        self.logger = handler.logger
        self.stream_id = request.stream_id
        self.status = 0
        self.started_at = time.monotonic()
        self.task: asyncio.Task[None] | None = None
        self.core: ws.WebSocketCore | None = None
        self._offers = _tokens(request.headers, b"sec-websocket-extensions")
        self.scope = build_scope(http_scope, _tokens(request.headers, b"sec-websocket-protocol"))
        self.session = WebsocketSession(self.scope, self, config.ws_max_queue)
        self._pending = bytearray()  # frames sent before our 200
        self._unacked = 0  # bytes parsed while the app's queue was full: their window stays shut
        self._reading_paused = False
        self._ended = False  # our side of the stream is over (END_STREAM, reset or gone)
        self._app_returned = False
        self._close_code: int | None = None
        self._writable: asyncio.Future[None] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._ping_count = 0
        self.writing_paused = False  # what the session reads after each send
        versions = _tokens(request.headers, b"sec-websocket-version")
        if versions != ["13"]:  # RFC 8441 §5 keeps RFC 6455's version field
            self._ended = True
            self._respond(400, [(b"sec-websocket-version", b"13")], b"Use Sec-WebSocket-Version 13")
            return
        self._start_timer("handshake", config.timeout_ws_handshake, self._handshake_timeout)

    def _blocked(self) -> bool:
        """The stream's bytes wait for the peer's window, or the connection's for the socket."""
        self.writing_paused = bool(self.h2.pending_bytes(self.stream_id)) or (
            self.handler.writing_paused
        )
        return self.writing_paused

    # --- the app ------------------------------------------------------------------------------
    async def run(self, app: Any) -> None:
        """Run the app; close the WebSocket (or deny it) when it returns or fails."""
        session = self.session
        try:
            if not self._ended:
                await app(session.scope, session.receive, session.send)
        except ClientDisconnected:
            self.logger.debug("WebSocket application stopped: the client disconnected")
        except Exception:
            self.logger.exception("Exception in WebSocket application")
            self._after_app(INTERNAL_ERROR)
        else:
            if session.state == "connecting":
                self.logger.error("WebSocket application returned without accepting or closing")
            self._after_app(1000)
        finally:
            session.mark_closed()
            self._app_returned = True
            self._maybe_done()

    def _after_app(self, code: int) -> None:
        if self.session.state == "connecting":
            self._respond(500, [], b"Internal Server Error")
            self._end()
        elif self.core is not None and self.core.state == "open":
            self.close(code, "")

    # --- WebsocketShell -------------------------------------------------------------------------
    def accept(self, subprotocol: str | None, headers: Headers) -> None:
        """RFC 8441 §5: a 200 response (not 101, no Sec-WebSocket-Accept); frames follow."""
        self._cancel_timer("handshake")
        config = self.config
        deflate = None
        if config.ws_per_message_deflate:
            deflate = ws.negotiate_deflate(self._offers, config.ws_max_size)
        response: Headers = []
        if subprotocol is not None:
            response.append((b"sec-websocket-protocol", subprotocol.encode()))
        if deflate is not None:
            params = deflate.negotiated_params
            offer = deflate.name + ("; " + params if params else "")
            response.append((b"sec-websocket-extensions", offer.encode()))
        self.core = ws.WebSocketCore(config.ws_max_size, deflate)
        self._respond(200, response + headers, b"", more_body=True)
        self._log("[accepted]")
        if config.ws_ping_interval:
            self._start_timer("ping", config.ws_ping_interval, self._send_ping)
        if self._pending:
            pending, self._pending = bytes(self._pending), bytearray()
            self._feed(pending)

    def send_message(self, data: str | bytes) -> None:
        """Frame one message into the stream."""
        if self.core is not None and self.core.state == "open":
            self._send(self.core.send(data))

    def close(self, code: int, reason: str) -> None:
        """Send our close frame; the peer's reply ends the stream (or the close timer does)."""
        if self.core is None:
            return
        if self._close_code is None:
            self._close_code = code
        self._send(self.core.close(code, reason))
        self._cancel_timer("ping")
        self._start_timer("close", close_timeout(self.config), self._abort)

    def send_http_response(self, status: int, headers: Headers) -> None:
        """Deny the WebSocket with an HTTP response on the stream."""
        self._cancel_timer("handshake")
        self._respond(status, headers, b"", more_body=True)

    def send_http_body(self, body: bytes, more_body: bool) -> None:
        """A part of that response's body; the last one ends the stream."""
        with contextlib.suppress(StreamGone, ResponseError):
            self.h2.send_body(self.stream_id, body, more_body)
        self.handler.flush_soon()
        if not more_body:
            self._end()

    def pause_reading(self) -> None:
        """The app's queue is full: parsed bytes keep their window shut until it drains."""
        self._reading_paused = True

    def resume_reading(self) -> None:
        """The app caught up: open the window for what it held back."""
        self._reading_paused = False
        unacked, self._unacked = self._unacked, 0
        if unacked:
            self.h2.body_consumed(self.stream_id, unacked)
            self.handler.flush_soon()

    async def wait_writable(self) -> None:
        """Wait while the stream's bytes wait for window (reset after --timeout-h2-window)."""
        while self._blocked() and not self._ended:
            waiter = self._writable = self.handler.loop.create_future()
            try:
                await asyncio.wait_for(waiter, self.config.timeout_h2_window)
            except TimeoutError:
                self.logger.info("Resetting HTTP/2 WebSocket %d: no send window", self.stream_id)
                self._reset()
                raise ClientDisconnected("The client granted no window") from None

    # --- the driver's calls -----------------------------------------------------------------------
    def body_received(self, data: bytes) -> None:
        """DATA on the stream: WebSocket frames."""
        if self._reading_paused:
            self._unacked += len(data)
        else:
            self.h2.body_consumed(self.stream_id, len(data))
            self.handler.flush_soon()
        if self.core is None:
            if len(self._pending) + len(data) > self.config.ws_max_size:
                self._reset()  # a client that will not wait for our answer
            else:
                self._pending += data
            return
        self._feed(data)

    def request_complete(self) -> None:
        """The peer ended its side (END_STREAM): without a close frame first, that is a 1006."""
        self._gone()
        self._end()

    def disconnected(self) -> None:
        """The stream was reset, or the connection is gone."""
        self._ended = True
        self._gone()

    def writable(self) -> None:
        """The stream's bytes went out: release a waiting send."""
        self._blocked()
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def shutdown(self) -> None:
        """Graceful shutdown: close with 1012 (or 503 before the app answered)."""
        if self.core is not None and self.core.state == "open":
            self.close(GOING_AWAY_RESTART, "server shutting down")
            self.session.disconnected(GOING_AWAY_RESTART, "server shutting down")
        elif self.session.handshake_pending:
            self._respond(503, [], b"Server shutting down")
            self._end()
            self.session.disconnected(ABNORMAL_CLOSURE)

    # --- internals --------------------------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        core = self.core
        assert core is not None
        events = core.receive_data(data)
        self._send(core.take_output())
        for event in events:
            if isinstance(event, ws.Message):
                self.session.message_received(event.data)
            elif isinstance(event, ws.CloseReceived | ws.ProtocolFailed):
                if isinstance(event, ws.ProtocolFailed):
                    self.logger.info("WebSocket closing (%s): %s", event.code, event.reason)
                if self._close_code is None:
                    self._close_code = event.code
                self.session.disconnected(event.code, event.reason)
                self._end()  # RFC 8441 §5: the close handshake done, END_STREAM
                return

    def _respond(self, status: int, headers: Headers, body: bytes, more_body: bool = False) -> None:
        self.status = status
        if status != 200:
            self._log(str(status))
        with contextlib.suppress(StreamGone, ResponseError):
            self.h2.respond(
                self.stream_id, status, headers, self.handler.default_headers, body, more_body
            )
        self.handler.flush_soon()

    def _send(self, data: bytes) -> None:
        if data and not self._ended:
            with contextlib.suppress(StreamGone, ResponseError):
                self.h2.send_body(self.stream_id, data, True)
            self.handler.flush_soon()
            self._blocked()

    def _end(self) -> None:
        """End our side with END_STREAM (once), and forget the stream when the app is done."""
        if not self._ended:
            self._ended = True
            if not self.status:  # nothing answered yet: there is no response to end
                self.h2.reset_stream(self.stream_id, CANCEL)
            with contextlib.suppress(StreamGone, ResponseError):
                self.h2.send_body(self.stream_id, b"", False)
            self.handler.flush_soon()
        self._stop_timers()
        self._maybe_done()

    def _reset(self) -> None:
        self._ended = True
        self.h2.reset_stream(self.stream_id, CANCEL)
        self.handler.flush_soon()
        self._gone()

    def _gone(self) -> None:
        self._stop_timers()
        if self.core is not None and self._close_code is None:
            self._close_code = ABNORMAL_CLOSURE
        self.session.disconnected(ABNORMAL_CLOSURE)
        self.writable()
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self._ended and self._app_returned:
            if self.core is not None and self._close_code is not None:
                self._log(f"[closed {self._close_code}]")
                self._close_code = None  # logged once
            self._app_returned = False  # stream_done once
            self.handler.stream_done(self)

    def _log(self, outcome: str) -> None:
        state = self.handler.state
        if state.access_log:
            state.log_websocket(self.scope, outcome)

    def _abort(self) -> None:
        """The peer never answered our close frame (or ping): reset the stream."""
        self._reset()

    def _handshake_timeout(self) -> None:
        if self.session.handshake_pending:
            self.logger.warning(
                "WebSocket application neither accepted nor closed within %s s; closing",
                self.config.timeout_ws_handshake,
            )
            self._respond(500, [], b"WebSocket handshake timed out")
            self._end()
            self.session.disconnected(ABNORMAL_CLOSURE)
            if self.task is not None:
                self.task.cancel()

    def _send_ping(self) -> None:
        core = self.core
        if core is None or core.state != "open":
            return
        if core.ping_payload is None:  # one ping in flight at a time
            self._ping_count += 1
            self._send(core.ping(self._ping_count.to_bytes(4, "big") + os.urandom(4)))
            if self.config.ws_ping_timeout:
                self._start_timer("pong", self.config.ws_ping_timeout, self._pong_timeout)
        assert self.config.ws_ping_interval
        self._start_timer("ping", self.config.ws_ping_interval, self._send_ping)

    def _pong_timeout(self) -> None:
        if self.core is not None and self.core.ping_payload is not None:
            self.logger.info("WebSocket peer did not answer a ping in time; closing with 1011")
            self.close(INTERNAL_ERROR, "keepalive ping timeout")
            self.session.disconnected(INTERNAL_ERROR, "keepalive ping timeout")
            self._reset()

    def _start_timer(self, name: str, delay: float, callback: Any) -> None:
        self._cancel_timer(name)
        self._timers[name] = self.handler.loop.call_later(delay, callback)

    def _cancel_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _stop_timers(self) -> None:
        for name in list(self._timers):
            self._cancel_timer(name)
