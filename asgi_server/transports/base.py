"""The seams between a transport shell and the protocol handlers it runs (typing.Protocols).

``StreamTransport`` is what a handler uses of its transport (asyncio's transports have it, and
the Twisted transport adapts Twisted's to it); ``ConnectionHandler`` is what a transport calls on
the handler that owns a connection: a driver from ``asgi_server/connection/`` (HTTP/1.1 first,
WebSocket after an upgrade; ``connection/http.py`` hands the connection over).
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["CLOSED", "ClosedHandler", "ConnectionHandler", "StreamTransport"]


class StreamTransport(Protocol):
    """What handlers use of their transport: ``asyncio.Transport`` has it, and the Twisted
    transport adapts Twisted's ``ITransport`` to it (transports/twisted.py)."""

    def write(self, data: bytes) -> None:
        """Queue bytes for the peer."""

    def close(self) -> None:
        """Close after the queued bytes are written."""

    def abort(self) -> None:
        """Close now, dropping queued bytes."""

    def is_closing(self) -> bool:
        """True once close() or abort() was called or the connection was lost."""

    def pause_reading(self) -> None:
        """Stop calling data_received until resume_reading()."""

    def resume_reading(self) -> None:
        """Call data_received again."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """'peername', 'sockname', 'sslcontext', 'ssl_object' as asyncio names them."""


class ConnectionHandler(Protocol):
    """What a ``ServerConnection`` forwards its asyncio callbacks to."""

    def data_received(self, data: bytes) -> None:
        """Bytes arrived."""

    def eof_received(self) -> bool | None:
        """The peer half-closed; return True to keep the transport open."""

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone."""

    def pause_writing(self) -> None:
        """The transport's write buffer is over its high-water mark."""

    def resume_writing(self) -> None:
        """The write buffer drained below its low-water mark."""

    def shutdown(self) -> None:
        """Graceful shutdown: finish what is in flight, then close."""


class ClosedHandler:
    """The handler of a closed connection: nothing more happens on it. A connection drops its
    real handler for this one, since the two refer to each other (see ``connection_lost``)."""

    def data_received(self, data: bytes) -> None:
        """Ignored: the connection is closed."""

    def eof_received(self) -> bool | None:
        """Ignored: the connection is closed."""
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Ignored: the handler was told already."""

    def pause_writing(self) -> None:
        """Ignored: the connection is closed."""

    def resume_writing(self) -> None:
        """Ignored: the connection is closed."""

    def shutdown(self) -> None:
        """Ignored: the connection is closed."""


CLOSED = ClosedHandler()
