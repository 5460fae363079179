"""The asyncio I/O shell of a WebSocket connection: handshake, frames, timers, flow control.

The HTTP transport (``transports/asyncio.py``) hands a connection over on an upgrade request by
calling ``WebsocketHandler(connection, request, buffered_bytes)`` and then forwards its
``data_received``, ``eof_received``, ``connection_lost``, ``pause_writing``, ``resume_writing``
and ``shutdown`` calls. Protocol logic lives in ``protocols/websocket.py`` and the ASGI state
machine in ``asgi/websocket.py``; this module only moves bytes and runs timers.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from asgi_server.asgi.websocket import ClientDisconnected, Headers, WebsocketSession, build_scope
from asgi_server.config import Config
from asgi_server.protocols import websocket as core

# RFC 6455 §7.4.1 close codes this shell sends itself.
GOING_AWAY_RESTART = 1012
INTERNAL_ERROR = 1011
ABNORMAL_CLOSURE = 1006


def _split_target(target: bytes) -> tuple[str, bytes, bytes]:
    """Split a request target into the decoded path, the raw path and the query string."""
    from urllib.parse import unquote_to_bytes

    raw_path, _, query = target.partition(b"?")
    path = unquote_to_bytes(raw_path).decode("utf-8", "surrogateescape")
    return path, raw_path, query


class WebsocketHandler:
    """Serves one WebSocket connection on a transport taken over from the HTTP protocol."""

    def __init__(self, connection: Any, request: Any, buffered_bytes: bytes = b"") -> None:
        self.connection = connection
        self.transport: asyncio.Transport = connection.transport
        self.config: Config = connection.config
        self.logger: logging.Logger = connection.logger
        self.loop = asyncio.get_running_loop()
        self.writing_paused = False
        self._app_paused_reading = False  # the app's queue is full (see pause_reading)
        self.core: core.WebSocketCore | None = None
        self._pending = bytearray(buffered_bytes)  # frames sent before our 101 response
        self._writable: asyncio.Future[None] | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._ping_count = 0
        self.app_task: asyncio.Task[None] | None = None
        method = request.method.decode("latin-1")
        self.handshake = core.check_handshake(method, request.headers)
        if isinstance(self.handshake, core.HandshakeRejection):
            rejection = self.handshake
            self._write(core.http_response(rejection.status, rejection.headers, rejection.body))
            self.transport.close()
            self.session: WebsocketSession | None = None
            return
        self.session = WebsocketSession(
            self._scope(connection, request), self, self.config.ws_max_queue
        )
        self._start_timer("handshake", self.config.timeout_ws_handshake, self._handshake_timeout)
        self.app_task = connection.start_task(self._run_app(connection.app))

    def _scope(self, connection: Any, request: Any) -> dict[str, Any]:
        path, raw_path, query = _split_target(request.target)
        assert isinstance(self.handshake, core.Handshake)
        client, scheme = connection.client, connection.scheme
        trust = connection.server_state.proxy_trust
        if trust is not None and client is not None and trust.is_trusted(client[0]):
            client, scheme = trust.resolve(client, scheme, request.headers)
        scope = build_scope(
            scheme=scheme,
            path=path,
            raw_path=raw_path,
            query_string=query,
            headers=request.headers,
            subprotocols=self.handshake.subprotocols,
            client=client,
            server=connection.server,
            root_path=connection.root_path,
            state=connection.lifespan_state,
            http_version=request.http_version,
        )
        if connection.tls is not None:  # the ASGI TLS extension, set up by the connection
            scope["extensions"]["tls"] = connection.tls
        return scope

    # --- the application ------------------------------------------------------------------

    async def _run_app(self, app: Any) -> None:
        session = self.session
        assert session is not None
        try:
            await app(session.scope, session.receive, session.send)
        except ClientDisconnected:
            # The app sent after the peer left and did not catch our OSError: that is how an
            # ASGI app learns the client is gone, not a crash worth a traceback.
            self.logger.debug("WebSocket application stopped: the client disconnected")
        except Exception:
            self.logger.exception("Exception in WebSocket application")
            if session.state == "connecting":
                self._deny(500, b"Internal Server Error")
            elif self.core is not None and self.core.state == "open":
                self.close(INTERNAL_ERROR, "")
        else:
            if session.state == "connecting":
                self.logger.error("WebSocket application returned without accepting or closing")
                self._deny(500, b"Internal Server Error")
            elif self.core is not None and self.core.state == "open":
                self.close(1000, "")
        finally:
            session.state = "closed"

    def _deny(self, status: int, body: bytes) -> None:
        if self.session is not None:
            self.session.state = "closed"
        self._cancel_timer("handshake")
        if not self.transport.is_closing():
            headers = [(b"content-type", b"text/plain"), (b"connection", b"close")]
            self._write(core.http_response(status, headers, body))
            self.transport.close()

    def _handshake_timeout(self) -> None:
        session = self.session
        if session is not None and session.handshake_pending:
            self.logger.warning(
                "WebSocket application neither accepted nor closed within %s s "
                "(raise --timeout-ws-handshake if it needs longer); closing the connection",
                self.config.timeout_ws_handshake,
            )
            self._deny(500, b"WebSocket handshake timed out")
            session.disconnected(ABNORMAL_CLOSURE)
            if self.app_task is not None:
                self.app_task.cancel()

    # --- WebsocketShell: what the session asks of us --------------------------------------

    def accept(self, subprotocol: str | None, headers: Headers) -> None:
        """Send the 101 response (RFC 6455 §4.2.2) and switch the connection to frames."""
        assert isinstance(self.handshake, core.Handshake)
        self._cancel_timer("handshake")
        deflate = None
        if self.config.ws_per_message_deflate:
            deflate = core._negotiate_deflate(
                self.handshake.extension_offers, self.config.ws_max_size
            )
        response = [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", core.accept_key(self.handshake.key)),
        ]
        if subprotocol is not None:
            response.append((b"sec-websocket-protocol", subprotocol.encode()))
        if deflate is not None:
            offer = "permessage-deflate" + (
                "; " + deflate.negotiated_params if deflate.negotiated_params else ""
            )
            response.append((b"sec-websocket-extensions", offer.encode()))
        response.extend(headers)
        self._write(core.http_response(101, response, length=False))
        self.core = core.WebSocketCore(self.config.ws_max_size, deflate)
        if self.config.ws_ping_interval:
            self._start_timer("ping", self.config.ws_ping_interval, self._send_ping)
        if self._pending:
            pending, self._pending = bytes(self._pending), bytearray()
            self.data_received(pending)

    def send_message(self, data: str | bytes) -> None:
        """Frame and write one message."""
        assert self.core is not None
        if self.core.state == "open":
            self._write(self.core.send(data))

    def close(self, code: int, reason: str) -> None:
        """Send our close frame, then wait (bounded) for the peer's reply before closing TCP."""
        if self.core is None:
            return
        self._write(self.core.close(code, reason))
        self._cancel_timer("ping")
        self._start_timer("close", self._close_timeout(), self._abort)

    def send_http_response(self, status: int, headers: Headers) -> None:
        """Deny the upgrade with a plain HTTP response; its body is delimited by closing."""
        self._cancel_timer("handshake")
        names = {name for name, _ in headers}
        if b"connection" not in names:
            headers = [*headers, (b"connection", b"close")]
        self._write(core.http_response(status, headers, length=False))

    def send_http_body(self, body: bytes, more_body: bool) -> None:
        """Write a part of the denial body; the last part closes the connection."""
        self._write(body)
        if not more_body:
            self.transport.close()

    def pause_reading(self) -> None:
        """The app has too many unread messages: stop reading from the socket."""
        self._app_paused_reading = True
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        """The app caught up: read again (unless the peer is not reading our frames)."""
        self._app_paused_reading = False
        if not self.writing_paused and not self.transport.is_closing():
            self.transport.resume_reading()

    async def wait_writable(self) -> None:
        """Block the app's send() while the peer does not read (transport flow control)."""
        while self.writing_paused and not self.transport.is_closing():
            self._writable = self.loop.create_future()
            await self._writable

    # --- the transport's calls, forwarded by the HTTP protocol ------------------------------

    def data_received(self, data: bytes) -> None:
        """Feed the core and route its events to the session."""
        if self.core is None:
            if len(self._pending) + len(data) > self.config.ws_max_size:
                self.transport.close()  # a client that will not wait for our answer
                return
            self._pending += data
            return
        events = self.core.receive_data(data)
        output = self.core.take_output()
        if output:
            self._write(output)
        session = self.session
        assert session is not None
        for event in events:
            if isinstance(event, core.Message):
                session.message_received(event.data)
            elif isinstance(event, core.CloseReceived | core.ProtocolFailed):
                if isinstance(event, core.ProtocolFailed):
                    self.logger.info(
                        "WebSocket protocol error, closing (%s): %s", event.code, event.reason
                    )
                session.disconnected(event.code, event.reason)
                # RFC 6455 §7.1.1: the server closes the TCP connection first.
                self._cancel_timer("ping")
                self._cancel_timer("close")
                self.transport.close()

    def eof_received(self) -> bool | None:
        """The peer half-closed without a close frame: treat it as gone (1006)."""
        self._gone()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """The socket is closed: stop timers and tell the app (1006 unless a close was seen)."""
        self._gone()

    def _gone(self) -> None:
        for name in list(self._timers):
            self._cancel_timer(name)
        if self.session is not None:
            self.session.disconnected(ABNORMAL_CLOSURE)
        self.resume_writing()

    def pause_writing(self) -> None:
        """The transport's write buffer is full: senders wait, and we stop reading, since
        a peer that sends pings (each owed a pong) without reading would grow it unbounded."""
        self.writing_paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        """The peer read enough: wake the waiting sender, read again."""
        self.writing_paused = False
        if not self._app_paused_reading and not self.transport.is_closing():
            self.transport.resume_reading()
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def shutdown(self) -> None:
        """Graceful shutdown: close with 1012 (service restart) and tell the app."""
        if self.core is not None and self.core.state == "open":
            self.close(GOING_AWAY_RESTART, "server shutting down")
            if self.session is not None:
                self.session.disconnected(GOING_AWAY_RESTART, "server shutting down")
        elif self.session is not None and self.session.handshake_pending:
            self._deny(503, b"Server shutting down")
            self.session.disconnected(ABNORMAL_CLOSURE)

    # --- helpers ---------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if data and not self.transport.is_closing():
            self.transport.write(data)

    def _close_timeout(self) -> float:
        return self.config.ws_ping_timeout or self.config.timeout_ws_handshake

    def _abort(self) -> None:
        """The peer never answered our close frame (or ping): drop the connection."""
        self.transport.close()

    def _send_ping(self) -> None:
        if self.core is None or self.core.state != "open":
            return
        # One ping in flight at a time: a new one would restart the pong timer and hide a dead
        # peer whenever the ping interval is shorter than the ping timeout.
        if self.core.ping_payload is None:
            self._ping_count += 1
            self._write(self.core.ping(self._ping_count.to_bytes(4, "big") + os.urandom(4)))
            if self.config.ws_ping_timeout:
                self._start_timer("pong", self.config.ws_ping_timeout, self._pong_timeout)
        assert self.config.ws_ping_interval
        self._start_timer("ping", self.config.ws_ping_interval, self._send_ping)

    def _pong_timeout(self) -> None:
        if self.core is not None and self.core.ping_payload is not None:
            self.logger.info("WebSocket peer did not answer a ping in time; closing with 1011")
            self.close(INTERNAL_ERROR, "keepalive ping timeout")
            if self.session is not None:
                self.session.disconnected(INTERNAL_ERROR, "keepalive ping timeout")
            self.transport.close()

    def _start_timer(self, name: str, delay: float, callback: Any) -> None:
        self._cancel_timer(name)
        self._timers[name] = self.loop.call_later(delay, callback)

    def _cancel_timer(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()
