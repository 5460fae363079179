"""The WebSocket connection driver, shared by the asyncio and the Twisted shells.

``HttpHandler`` (``connection/http.py``) hands a connection over on an upgrade request by
calling ``WebsocketHandler(connection, request, http_scope, buffered_bytes)``, and the shell then
forwards its ``data_received``, ``eof_received``, ``connection_lost``, ``pause_writing``,
``resume_writing`` and ``shutdown`` calls here. The protocol (handshake, 101 response, deflate,
frames) lives in ``protocols/websocket.py`` and the ASGI state machine and scope in
``asgi/websocket.py``; this module moves bytes between them, runs the timers (handshake, ping,
pong, close) and writes the WebSocket lines of the access log.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from asgi_server.asgi.websocket import ClientDisconnected, Headers, WebsocketSession, build_scope
from asgi_server.connection.timers import TICKS_PER_SECOND
from asgi_server.protocols import websocket as core

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from asgi_server.config import Config
    from asgi_server.connection.base import Connection
    from asgi_server.protocols.http11 import Request

# RFC 6455 §7.4.1 close codes this driver sends itself.
GOING_AWAY_RESTART = 1012
INTERNAL_ERROR = 1011
MESSAGE_TOO_BIG = 1009
ABNORMAL_CLOSURE = 1006


def close_timeout(config: Config) -> float:
    """How long to wait for the peer's reply to our close frame (or a ping) before dropping it:
    the ping timeout, else the handshake timeout. Shared by the HTTP/1.1 and HTTP/2 drivers."""
    return config.ws_ping_timeout or config.timeout_ws_handshake


class WebsocketHandler:
    """Serves one WebSocket connection on a transport taken over from the HTTP protocol."""

    # An idle WebSocket keeps its handler for hours: no per-instance dict.
    __slots__ = (
        "_app_paused_reading",
        "_close_code",
        "_closed_logged",
        "_deadlines",
        "_due_close",
        "_due_handshake",
        "_due_ping",
        "_due_pong",
        "_log_scope",
        "_pending",
        "_ping_count",
        "_tick",
        "_writable",
        "app_task",
        "config",
        "connection",
        "core",
        "handshake",
        "logger",
        "loop",
        "session",
        "state",
        "transport",
        "writing_paused",
    )

    def __init__(
        self,
        connection: Connection,
        request: Request,
        http_scope: dict[str, Any],
        buffered_bytes: bytes = b"",
    ) -> None:
        self.connection = connection
        self.transport = connection.transport
        self.config = connection.config
        self.logger = connection.logger
        self.state = connection.server_state
        self.loop = connection.loop
        self.writing_paused = False
        self._app_paused_reading = False  # the app's queue is full (see pause_reading)
        self.core: core.WebSocketCore | None = None
        self._pending = buffered_bytes  # frames sent before our 101 response
        self._writable: asyncio.Future[None] | None = None
        # Each timer's deadline (loop.time()), and the one shared tick armed for the first.
        self._due_handshake: float | None = None
        self._due_ping: float | None = None
        self._due_pong: float | None = None
        self._due_close: float | None = None
        self._deadlines = self.state.deadlines
        self._tick = 0
        self._ping_count = 0
        self._close_code: int | None = None  # the first close code sent or received (the log)
        self._closed_logged = False  # eof_received and connection_lost both end the connection
        self.app_task: asyncio.Task[None] | None = None
        # The request's scope, for the access log only: without one, it is not kept.
        self._log_scope = http_scope if self.state.access_log else None
        # Kept until accept() has answered it (None after).
        self.handshake: core.Handshake | core.HandshakeRejection | None = core.check_handshake(
            request.method.decode("latin-1"), request.headers
        )
        if isinstance(self.handshake, core.HandshakeRejection):
            rejection = self.handshake
            self._log_access(str(rejection.status))
            self._write(core.http_response(rejection.status, rejection.headers, rejection.body))
            self.transport.close()
            self.session: WebsocketSession | None = None
            return
        scope = build_scope(http_scope, self.handshake.subprotocols)
        self.session = WebsocketSession(scope, self, self.config.ws_max_queue)
        self._start_timer("handshake", self.config.timeout_ws_handshake)
        self.app_task = connection.start_task(self._run_app(connection.app))

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
            session.mark_closed()

    def _deny(self, status: int, body: bytes) -> None:
        if self.session is not None:
            self.session.mark_closed()
        self._cancel_timer("handshake")
        if not self.transport.is_closing():
            self._log_access(str(status))
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
        config = self.config
        response, self.core = core.accept(
            self.handshake, subprotocol, headers, config.ws_max_size, config.ws_per_message_deflate
        )
        self.handshake = None  # its header lists are of no more use (~250 bytes per connection)
        self._write(response)
        self._log_access("[accepted]")
        if self.config.ws_ping_interval:
            self._start_timer("ping", self.config.ws_ping_interval)
        if self._pending:
            pending, self._pending = self._pending, b""
            self.data_received(pending)

    def send_message(self, data: str | bytes) -> None:
        """Frame and write one message."""
        core = self.core
        assert core is not None
        # _write's work, inlined: this runs once per message the app sends.
        if core.state == "open" and not self.transport.is_closing():
            self.transport.write(core.send(data))

    def close(self, code: int, reason: str) -> None:
        """Send our close frame, then wait (bounded) for the peer's reply before closing TCP."""
        if self.core is None:
            return
        if self._close_code is None:
            self._close_code = code
        self._write(self.core.close(code, reason))
        self._cancel_timer("ping")
        self._start_timer("close", close_timeout(self.config))

    def send_http_response(self, status: int, headers: Headers) -> None:
        """Deny the upgrade with a plain HTTP response; its body is delimited by closing."""
        self._cancel_timer("handshake")
        self._log_access(str(status))
        self._write(core.denial_head(status, headers))

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
            self._pending += data  # rare (a client that does not wait), and short-lived
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
                    self._log_failure(event)
                if self._close_code is None:
                    self._close_code = event.code
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
        self._due_handshake = self._due_ping = self._due_pong = self._due_close = None
        if self._tick:
            self._deadlines.disarm(self, self._tick)
            self._tick = 0
        if self.core is not None and not self._closed_logged:
            self._closed_logged = True
            self._log_access(f"[closed {self._close_code or ABNORMAL_CLOSURE}]")
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

    def _log_access(self, outcome: str) -> None:
        if self.state.access_log and self._log_scope is not None:
            self.state.log_websocket(self._log_scope, outcome)

    def _log_failure(self, event: core.ProtocolFailed) -> None:
        if event.code == MESSAGE_TOO_BIG:
            self.logger.info(
                "WebSocket message over --ws-max-size, closing (1009): %s", event.reason
            )
        else:
            self.logger.info("WebSocket protocol error, closing (%s): %s", event.code, event.reason)

    def _write(self, data: bytes) -> None:
        if data and not self.transport.is_closing():
            self.transport.write(data)

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
                self._start_timer("pong", self.config.ws_ping_timeout)
        assert self.config.ws_ping_interval
        self._start_timer("ping", self.config.ws_ping_interval)

    def _pong_timeout(self) -> None:
        if self.core is not None and self.core.ping_payload is not None:
            self.logger.info("WebSocket peer did not answer a ping in time; closing with 1011")
            self.close(INTERNAL_ERROR, "keepalive ping timeout")
            if self.session is not None:
                self.session.disconnected(INTERNAL_ERROR, "keepalive ping timeout")
            self.transport.close()

    # --- timers: deadlines on the server's shared ticks ----------------------------------------

    def _start_timer(self, name: str, delay: float) -> None:
        """(Re)start timer ``name`` (handshake, ping, pong or close): its deadline is the slot
        ``_due_<name>``, on the server's shared ticks (connection/timers.py: an idle WebSocket
        holds no loop timer of its own); it fires at most one tick late."""
        when = self.loop.time() + delay
        setattr(self, "_due_" + name, when)
        tick = self._tick
        if not tick or tick > when * TICKS_PER_SECOND + 1:
            self._arm(when)

    def _cancel_timer(self, name: str) -> None:
        # The armed tick stays: when it comes, on_tick finds nothing due and re-arms or rests.
        setattr(self, "_due_" + name, None)

    def _arm(self, when: float) -> None:
        if self._tick:
            self._deadlines.disarm(self, self._tick)
        self._tick = self._deadlines.arm(self.loop, self, when)

    def on_tick(self) -> None:
        """The armed tick came (``Deadlines``): fire the timers that are due, re-arm for the
        next one."""
        self._tick = 0
        now = self.loop.time()
        for name, callback in self._due_callbacks():
            due = getattr(self, "_due_" + name)
            if due is not None and due <= now:  # a callback may have cancelled a later one
                setattr(self, "_due_" + name, None)
                callback()
        dues = (self._due_handshake, self._due_ping, self._due_pong, self._due_close)
        pending = [due for due in dues if due is not None]
        if pending:
            self._arm(min(pending))

    def _due_callbacks(self) -> tuple[tuple[str, Callable[[], None]], ...]:
        return (
            ("handshake", self._handshake_timeout),
            ("ping", self._send_ping),
            ("pong", self._pong_timeout),
            ("close", self._abort),
        )
