"""The seam between the server and the connections it serves: what drivers and shells use of it.

``ServerState`` (``server.py``) implements ``ServerContext``; the connection drivers
(``connection/http.py``, ``connection/websocket.py``) and the transport shells
(``transports/asyncio.py``, ``transports/twisted.py``) see it only through this Protocol, so none
of them imports ``server.py`` and ``server.py`` may import them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from asgi_server.config import Config
    from asgi_server.connection.timers import Deadlines
    from asgi_server.protocols.http11 import Limits
    from asgi_server.proxy_headers import ProxyTrust
    from asgi_server.transports.base import ConnectionHandler, StreamTransport

__all__ = ["Connection", "LiveConnection", "ServerContext"]


class LiveConnection(Protocol):
    """One accepted connection, as the server sees it during a graceful shutdown."""

    transport: StreamTransport

    def shutdown(self) -> None:
        """Finish what is in flight, then close."""


class ServerContext(Protocol):
    """What every connection shares with the server: config, app, counters and the log."""

    config: Config
    app: Any
    logger: logging.Logger
    lifespan_state: dict[str, Any]
    limits: Limits
    access_log: bool  # the access log is on and enabled for INFO
    connections: set[LiveConnection]
    tasks: set[asyncio.Task[None]]
    # (lowercased name, "name: value\r\n") pairs, updated in place once a second.
    default_headers: list[tuple[bytes, bytes]]
    total_requests: int  # for --limit-max-requests
    max_requests_reached: bool
    deadlines: Deadlines  # the timers the connections share
    # The loop the server runs on (None before it serves): asyncio.get_running_loop() costs a
    # getpid() system call, which a connection that carries one request would pay for nothing.
    loop: asyncio.AbstractEventLoop | None
    # The local address of every connection, when the server knows it (one listener on one
    # IP address): saves a getsockname() system call per connection.
    sockname: tuple[str, int] | None

    def trusted_proxy(self, peer: tuple[str, int] | None) -> ProxyTrust | None:
        """The proxy trust to apply to ``peer``'s requests, or None (memoized per address)."""

    def log_access(self, scope: dict[str, Any], status: int, started_at: float) -> None:
        """Write the access-log line of one HTTP response."""

    def log_websocket(self, scope: dict[str, Any], outcome: str) -> None:
        """Write an access-log line of a WebSocket: accepted, refused, closed."""


class Connection(Protocol):
    """What a connection driver uses of the shell's connection (``ServerConnection``)."""

    server_state: ServerContext
    config: Config
    app: Any
    logger: logging.Logger
    loop: asyncio.AbstractEventLoop
    transport: StreamTransport
    handler: ConnectionHandler
    client: tuple[str, int] | None  # the peer's address, before proxy headers
    server: tuple[str, int] | None
    scheme: str  # "http" or "https"
    tls: dict[str, Any] | None  # the ASGI "tls" scope extension
    root_path: str
    lifespan_state: dict[str, Any]

    def set_handler(self, handler: ConnectionHandler) -> None:
        """Hand the connection to another driver (after an upgrade)."""

    def start_task(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run an app coroutine as a task the server tracks (and cancels on shutdown)."""
