"""The asyncio shell: one ``asyncio.Protocol`` per connection, delegating to a replaceable handler.

``ServerConnection`` is what asyncio (or uvloop) calls. It owns nothing protocol-specific: it
records the peer (addresses, TLS) and forwards every callback to ``connection.handler``, a
connection driver from ``asgi_server/connection/``: an ``HttpHandler`` first, replaced by a
``WebsocketHandler`` after an upgrade (``set_handler``). The Twisted shell drives the same class
through an adapter (``transports/twisted.py``).

A handler implements ``ConnectionHandler`` (``transports/base.py``): ``data_received``,
``eof_received``, ``connection_lost``, ``pause_writing``, ``resume_writing`` and ``shutdown``
(graceful stop: close when idle, or soon). Handlers run their own timers on ``connection.loop``.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from asgi_server.connection.http import HttpHandler
from asgi_server.tls import connection_tls_extension
from asgi_server.transports.base import CLOSED, ConnectionHandler, StreamTransport

if TYPE_CHECKING:
    from asgi_server.connection.base import ServerContext

# HTTP/2 needs the h2 package (the http2 extra); without it TLS connections speak HTTP/1.1.
HAVE_H2 = importlib.util.find_spec("h2") is not None


def _address(info: Any) -> tuple[str, int] | None:
    if type(info) is tuple and len(info) == 2 and type(info[0]) is str and type(info[1]) is int:
        return info  # IPv4, as uvloop and asyncio give it
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None


class ServerConnection(asyncio.Protocol):
    """One accepted connection: state shared by every handler, and callback delegation."""

    # Slots: one is built per connection (asyncio.Protocol has empty slots, so no dict is made).
    __slots__ = (
        "__weakref__",  # tests and debugging tools keep weak references to connections
        "app",
        "client",
        "config",
        "handler",
        "lifespan_state",
        "logger",
        "loop",
        "root_path",
        "scheme",
        "server",
        "server_state",
        "tls",
        "transport",
    )

    def __init__(self, server_state: ServerContext) -> None:
        self.server_state = server_state
        self.config = server_state.config
        self.app = server_state.app
        self.logger = server_state.logger
        self.root_path = self.config.root_path
        self.lifespan_state = server_state.lifespan_state
        self.transport: StreamTransport = None  # type: ignore[assignment]  # set on connect
        self.handler: ConnectionHandler = None  # type: ignore[assignment]
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.scheme = "http"
        self.tls: dict[str, Any] | None = None  # the ASGI "tls" scope extension

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """asyncio: a connection was accepted."""
        # The server's loop, not get_running_loop(): that is a getpid() system call.
        self.loop = self.server_state.loop or asyncio.get_running_loop()
        self.transport = transport  # type: ignore[assignment]
        self.client = _address(transport.get_extra_info("peername"))
        self.server = self.server_state.sockname or _address(transport.get_extra_info("sockname"))
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
            self.tls = connection_tls_extension(transport)
        self.server_state.connections.add(self)
        handler = None
        if self.config.h2c or (self.tls is not None and self.config.http2 and HAVE_H2):
            from asgi_server.connection.http2 import handler_for  # imports h2

            handler = handler_for(self)
        self.handler = handler or HttpHandler(self)

    def set_handler(self, handler: ConnectionHandler) -> None:
        """Hand the connection to another protocol handler (e.g. after an upgrade)."""
        self.handler = handler

    def start_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run an app coroutine as a task the server tracks (and cancels on shutdown)."""
        task = self.loop.create_task(coro)
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    def data_received(self, data: bytes) -> None:
        """asyncio: forward to the handler."""
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        """asyncio: forward to the handler."""
        return self.handler.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        """asyncio: forget the connection and tell the handler."""
        self.server_state.connections.discard(self)
        self.handler.connection_lost(exc)
        # The handler and the connection refer to each other: dropping this side lets reference
        # counting free a closed connection at once, rather than leave it to the cyclic GC (a
        # visible share of a `Connection: close` request's CPU).
        self.handler = CLOSED

    def pause_writing(self) -> None:
        """asyncio: forward to the handler."""
        self.handler.pause_writing()

    def resume_writing(self) -> None:
        """asyncio: forward to the handler."""
        self.handler.resume_writing()

    def shutdown(self) -> None:
        """Graceful shutdown of this connection."""
        self.handler.shutdown()
