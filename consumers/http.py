"""AsyncHttpConsumer: answer an HTTP request whole (send_response) or streamed (send_body)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .base import AsyncConsumer, Message
from .exceptions import StopConsumer

__all__ = ["AsyncHttpConsumer"]

HeaderInput = Mapping[str, str] | Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]]


def _encode_headers(headers: HeaderInput | None) -> list[tuple[bytes, bytes]]:
    """ASGI wants a list of (name, value) byte pairs; accept a dict of str or bytes too."""
    if headers is None:
        return []
    items: Iterable[tuple[Any, Any]] = headers.items() if isinstance(headers, Mapping) else headers
    encoded = []
    for name, value in items:
        name_bytes = name.encode("latin-1") if isinstance(name, str) else bytes(name)
        value_bytes = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        encoded.append((name_bytes.lower(), value_bytes))
    return encoded


class AsyncHttpConsumer(AsyncConsumer):
    """An HTTP consumer: override ``handle(body)``, called once the request body is complete.

    Answer with ``send_response()``, or stream with ``send_headers()`` then
    ``send_body(chunk, more_body=True)`` (for server-sent events, say). ``disconnect()`` runs
    exactly once: after handle() returns, or when the client goes away mid-stream.
    """

    _disconnected = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._body: list[bytes] = []

    async def send_headers(self, status: int = 200, headers: HeaderInput | None = None) -> None:
        """Start the response: the status code and headers."""
        await self.send(
            {"type": "http.response.start", "status": status, "headers": _encode_headers(headers)}
        )

    async def send_body(self, body: bytes, *, more_body: bool = False) -> None:
        """Send a chunk of the response body; ``more_body=True`` keeps the response open."""
        if not isinstance(body, bytes):
            raise TypeError(f"send_body() takes bytes, not {type(body).__name__}; encode it")
        await self.send({"type": "http.response.body", "body": body, "more_body": more_body})

    async def send_response(
        self, status: int, body: bytes, *, headers: HeaderInput | None = None
    ) -> None:
        """Send a whole response in one go."""
        await self.send_headers(status=status, headers=headers)
        await self.send_body(body)

    async def handle(self, body: bytes) -> None:
        """Answer the request whose full body is ``body``; override it."""
        raise NotImplementedError(
            f"{type(self).__qualname__} must define async def handle(self, body) to answer requests"
        )

    async def disconnect(self) -> None:
        """Called once when the request is over or the client left; override for cleanup."""

    async def http_request(self, message: Message) -> None:
        """Collect the body; when it is complete run handle(), then disconnect(), then stop."""
        self._body.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        try:
            await self.handle(b"".join(self._body))
        finally:
            await self._disconnect_once()
        raise StopConsumer()

    async def http_disconnect(self, message: Message) -> None:
        """The client went away (or the response finished): run disconnect() once and stop."""
        await self._disconnect_once()
        raise StopConsumer()

    async def _disconnect_once(self) -> None:
        if not self._disconnected:
            self._disconnected = True
            await self.disconnect()
