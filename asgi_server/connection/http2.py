"""The HTTP/2 connection driver: feeds the HTTP/2 core, runs one app task per stream, keeps the
connection's idle timer and both flow controls. Transport-neutral: it sees its connection through
``StreamTransport`` and the asyncio loop, so the asyncio and Twisted shells both run it.

How a connection becomes HTTP/2 (``handler_for``):
- over TLS, when ALPN selected ``h2`` (RFC 9113 §3.2; we offer ``h2`` before ``http/1.1``);
- on cleartext with ``--h2c``, when the client starts with the connection preface (prior
  knowledge, RFC 9113 §3.3): ``PrefaceSniffer`` reads just enough bytes to tell it from HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import TYPE_CHECKING, Any

from asgi_server.asgi.http import build_scope, scope_template
from asgi_server.connection.http import HttpHandler
from asgi_server.connection.http2_stream import StreamCycle
from asgi_server.connection.http2_websocket import WebsocketStream
from asgi_server.protocols.http2 import (
    Body,
    ConnectionFailed,
    EndOfRequest,
    GoAwayReceived,
    H2Limits,
    HTTP2Core,
    Request,
    RequestRefused,
    StreamReset,
    StreamWritable,
)
from asgi_server.protocols.http2_frames import PREFACE

if TYPE_CHECKING:
    from asgi_server.config import Config
    from asgi_server.connection.base import Connection
    from asgi_server.transports.base import ConnectionHandler

_TRAILERS_EXTENSION: dict[str, Any] = {"http.response.trailers": {}}


def http2_available(config: Config) -> bool:
    """Whether to offer HTTP/2 over TLS: ``--http2`` (the default) and h2 importable."""
    return config.http2 and importlib.util.find_spec("h2") is not None


def negotiated_protocol(transport: Any) -> str | None:
    """The ALPN protocol of a TLS connection: the Twisted adapter reports it as extra info
    'alpn_protocol', an asyncio transport through its ``ssl_object``."""
    name = transport.get_extra_info("alpn_protocol")
    if name is not None:
        return str(name)
    ssl_object = transport.get_extra_info("ssl_object")
    return ssl_object.selected_alpn_protocol() if ssl_object is not None else None


def handler_for(connection: Connection) -> ConnectionHandler | None:
    """The handler that starts a new connection when it is (or may be) HTTP/2, else None."""
    config = connection.config
    if connection.tls is not None or connection.scheme == "https":
        if http2_available(config) and negotiated_protocol(connection.transport) == "h2":
            return Http2Handler(connection)
        return None
    if config.h2c:
        return PrefaceSniffer(connection)
    return None


class PrefaceSniffer:
    """Cleartext with ``--h2c``: hold the first bytes until they match the HTTP/2 preface or
    differ from it (at the latest at the second byte for HTTP/1.1 methods), then hand the
    connection and those bytes to the HTTP/2 or the HTTP/1.1 handler."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._buffer = b""
        self._timer = connection.loop.call_later(
            connection.config.timeout_request_head, connection.transport.close
        )

    def data_received(self, data: bytes) -> None:
        """Decide once the bytes tell HTTP/2 from HTTP/1.1."""
        self._buffer += data
        size = min(len(self._buffer), len(PREFACE))
        handler: ConnectionHandler
        if self._buffer[:size] != PREFACE[:size]:
            handler = HttpHandler(self.connection)
        elif size == len(PREFACE):
            handler = Http2Handler(self.connection)
        else:
            return
        self._timer.cancel()
        self.connection.set_handler(handler)
        handler.data_received(self._buffer)

    def eof_received(self) -> bool | None:
        """The client left before saying anything useful."""
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Nothing to tell: no request was read."""
        self._timer.cancel()

    def pause_writing(self) -> None:
        """Nothing is written yet."""

    def resume_writing(self) -> None:
        """Nothing is written yet."""

    def shutdown(self) -> None:
        """No request in flight: close."""
        self._timer.cancel()
        self.connection.transport.close()


class Http2Handler:
    """HTTP/2 over one connection (see the module docstring)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.transport = connection.transport
        self.state = state = connection.server_state
        self.config = connection.config
        self.logger = connection.logger
        self.loop = connection.loop
        self.core = HTTP2Core(H2Limits.from_config(self.config))
        self.streams: dict[int, StreamCycle | WebsocketStream] = {}
        self.writing_paused = False
        self._reading_paused = False
        self._closed = False
        self._closing = False  # shutting down or the peer said GOAWAY: close when idle
        self._proxy = state.trusted_proxy(connection.client)
        self._template = scope_template(
            connection.client,
            connection.server,
            connection.scheme,
            connection.root_path,
            connection.lifespan_state,
        )
        self._template["http_version"] = "2"
        extensions = dict(_TRAILERS_EXTENSION)
        if connection.tls is not None:
            extensions["tls"] = connection.tls
        self._extensions = extensions
        # A WebSocket stream's scope (RFC 8441) gets websocket.http.response, not trailers.
        self._ws_extensions = {"tls": connection.tls} if connection.tls is not None else {}
        self._timer: asyncio.TimerHandle | None = None
        self._flush_scheduled = False
        self._arm_idle_timer(self.config.timeout_request_head)
        self.flush()  # our SETTINGS

    @property
    def default_headers(self) -> list[tuple[bytes, bytes]]:
        """The server's default headers (server, date, --header) as HTTP/2 fields."""
        return [(name, line[len(name) + 2 : -2]) for name, line in self.state.default_headers]

    # --- bytes in ---
    def data_received(self, data: bytes) -> None:
        """Feed the core and act on its events."""
        if self._closed:
            return
        for event in self.core.receive_data(data):
            kind = type(event)
            if kind is Body:
                cycle = self.streams.get(event.stream_id)  # type: ignore[union-attr]
                if cycle is not None:
                    cycle.body_received(event.data)  # type: ignore[union-attr]
            elif kind is Request:
                self._on_request(event)  # type: ignore[arg-type]
            elif kind is EndOfRequest or kind is StreamReset or kind is StreamWritable:
                self._on_stream_event(event)  # type: ignore[arg-type]
            elif kind is RequestRefused:
                self.logger.debug("Refused an HTTP/2 request: %s", event.detail)  # type: ignore[union-attr]
            elif kind is GoAwayReceived:
                self._closing = True
            elif kind is ConnectionFailed:
                self.logger.debug("Closing an HTTP/2 connection: %s", event.detail)  # type: ignore[union-attr]
        self.flush()
        if self.core.failed or (self._closing and not self.streams):
            self._close()
        elif self.writing_paused and not self._reading_paused:
            # The peer does not read what we send (PING and SETTINGS acks included): stop
            # reading what it sends until it does, so no reply queue grows without bound.
            self._reading_paused = True
            self.transport.pause_reading()

    def _on_stream_event(self, event: EndOfRequest | StreamReset | StreamWritable) -> None:
        cycle = self.streams.get(event.stream_id)
        if cycle is None:
            return
        if type(event) is EndOfRequest:
            cycle.request_complete()
        elif type(event) is StreamReset:
            cycle.disconnected()
        else:
            cycle.writable()

    def _on_request(self, request: Request) -> None:
        state, config = self.state, self.config
        self._cancel_timer()
        limit = config.limit_concurrency
        if limit is not None and len(state.tasks) >= limit:
            self.core.respond(request.stream_id, 503, [], self.default_headers, b"")
            self.core.app_finished(request.stream_id)
            return
        scope = build_scope(request, self._template)
        client = self.connection.client
        if request.forwarded and self._proxy is not None and client is not None:
            scope["client"], scope["scheme"] = self._proxy.resolve(
                client, self.connection.scheme, request.headers
            )
        cycle: StreamCycle | WebsocketStream
        if request.protocol is not None:  # extended CONNECT: a WebSocket (RFC 8441)
            scope["extensions"] = self._ws_extensions
            cycle = WebsocketStream(self, request, scope)
        else:
            scope["extensions"] = self._extensions
            cycle = StreamCycle(self, request.stream_id, scope)
        self.streams[request.stream_id] = cycle
        cycle.task = task = self.loop.create_task(cycle.run(self.connection.app))
        state.tasks.add(task)
        task.add_done_callback(state.tasks.discard)

    # --- called by the stream cycles ---
    def flush(self) -> None:
        """Write what the core has queued."""
        self._flush_scheduled = False
        data = self.core.data_to_send()
        if data and not self._closed:
            self.transport.write(data)

    def flush_soon(self) -> None:
        """Write what the core has queued once this turn of the loop is over: the responses of
        every stream answered in the same turn go out in one write (one system call, not one
        per stream; on a busy machine each costs more than a request's parsing)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def response_complete(self, cycle: StreamCycle) -> None:
        """Count and log a finished response."""
        state = self.state
        if state.access_log:
            state.log_access(cycle.scope, cycle.status, cycle.started_at)
        state.total_requests += 1
        limit = self.config.limit_max_requests
        if limit is not None and state.total_requests >= limit:
            state.max_requests_reached = True

    def stream_done(self, cycle: StreamCycle | WebsocketStream) -> None:
        """The stream's app returned: forget the stream; close or go idle when it was the last."""
        self.streams.pop(cycle.stream_id, None)
        self.core.app_finished(cycle.stream_id)
        self.flush_soon()
        if self.streams or self._closed:
            return
        if self._closing:
            self._close()
        else:
            self._arm_idle_timer(self.config.timeout_keep_alive)

    # --- lifecycle ---
    def eof_received(self) -> bool | None:
        """The client half-closed: it sends no more frames, so close (as for HTTP/1.1)."""
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Tell every stream's app, and release their waits."""
        self._closed = True
        self._cancel_timer()
        for cycle in list(self.streams.values()):
            cycle.disconnected()

    def pause_writing(self) -> None:
        """The peer reads slowly: sends wait."""
        self.writing_paused = True

    def resume_writing(self) -> None:
        """The peer caught up: release sends, read again."""
        self.writing_paused = False
        for cycle in list(self.streams.values()):
            cycle.writable()
        if self._reading_paused and not self._closed:
            self._reading_paused = False
            self.transport.resume_reading()

    def shutdown(self) -> None:
        """Graceful shutdown: GOAWAY with the last stream id; streams in flight finish."""
        self._closing = True
        self.core.start_shutdown()
        for cycle in list(self.streams.values()):
            if isinstance(cycle, WebsocketStream):  # no end of its own: close it with 1012
                cycle.shutdown()
        self.flush()
        if not self.streams:
            self._close()

    def _arm_idle_timer(self, seconds: float) -> None:
        self._cancel_timer()
        self._timer = self.loop.call_later(seconds, self._on_idle)

    def _on_idle(self) -> None:
        self._timer = None
        if not self.streams and not self._closed:  # idle too long (RFC 9113 §9.1: GOAWAY first)
            self.core.start_shutdown()
            self.flush()
            self._close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _close(self) -> None:
        if not self._closed:
            self.flush()
            self._closed = True
            self._cancel_timer()
            self.transport.close()
