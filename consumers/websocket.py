"""WebSocket consumers: connect / receive / disconnect hooks over the ASGI websocket messages.

The sync and async variants share their message building; only the way they send differs. The
``send()`` of these classes takes ``text_data`` / ``bytes_data`` (Channels' signature), unlike
the generic consumers' ``send(message)``: that is why their overrides are marked for mypy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .base import AsyncConsumer, Message, SyncConsumer
from .exceptions import AcceptConnection, DenyConnection, StopConsumer

__all__ = [
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "JsonWebsocketConsumer",
    "WebsocketConsumer",
]

Headers = Iterable[tuple[bytes, bytes]]


def _accept_message(subprotocol: str | None, headers: Headers | None) -> Message:
    message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
    if headers:
        message["headers"] = list(headers)
    return message


def _send_messages(
    text_data: str | None, bytes_data: bytes | None, close: bool | int
) -> list[Message]:
    """The ASGI messages for one ``send()``: a frame, then a close when ``close`` asks."""
    messages: list[Message] = []
    if text_data is not None:
        messages.append({"type": "websocket.send", "text": text_data})
    elif bytes_data is not None:
        messages.append({"type": "websocket.send", "bytes": bytes_data})
    else:
        raise ValueError("send() needs text_data or bytes_data")
    if close:
        messages.append(_close_message(None if close is True else int(close), None))
    return messages


def _close_message(code: int | None, reason: str | None) -> Message:
    # RFC 6455 §7.4.1: 1000 is a normal closure, the ASGI default when no code is given.
    message: Message = {"type": "websocket.close", "code": 1000 if code is None else code}
    if reason:
        message["reason"] = reason
    return message


def _receive_args(message: Message) -> dict[str, Any]:
    if message.get("text") is not None:
        return {"text_data": message["text"]}
    return {"bytes_data": message.get("bytes")}


class AsyncWebsocketConsumer(AsyncConsumer):
    """A WebSocket consumer with ``async def`` hooks: connect(), receive(), disconnect(code)."""

    _disconnected = False

    async def websocket_connect(self, message: Message) -> None:
        """Handle the handshake: connect() decides (AcceptConnection / DenyConnection help)."""
        try:
            await self.connect()
        except AcceptConnection:
            await self.accept()
        except DenyConnection:
            await self.close()

    async def connect(self) -> None:
        """Called at the handshake; accepts by default. Call close() instead to deny (403)."""
        await self.accept()

    async def accept(self, subprotocol: str | None = None, headers: Headers | None = None) -> None:
        """Accept the connection, with an optional subprotocol and extra response headers."""
        await super().send(_accept_message(subprotocol, headers))

    async def websocket_receive(self, message: Message) -> None:
        """Pass a frame's payload to receive()."""
        await self.receive(**_receive_args(message))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called with each message from the client; override it."""

    async def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        """Send a text or binary message; ``close`` (True or a close code) closes afterwards."""
        if text_data is not None and not close:
            # The common case, one text frame: no list of messages to build and walk.
            await super().send({"type": "websocket.send", "text": text_data})
            return
        for message in _send_messages(text_data, bytes_data, close):
            await super().send(message)

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection (before accept() this denies the handshake with a 403)."""
        await super().send(_close_message(code, reason))

    async def websocket_disconnect(self, message: Message) -> None:
        """Run disconnect() (once, whatever happens) and stop; the groups are already left."""
        if not self._disconnected:
            self._disconnected = True
            await self.disconnect(message.get("code", 1005))
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        """Called once when the socket closes, with its close code; override it."""


class WebsocketConsumer(SyncConsumer):
    """A WebSocket consumer with plain ``def`` hooks, run in a worker thread."""

    _disconnected = False

    def websocket_connect(self, message: Message) -> None:
        """Handle the handshake: connect() decides (AcceptConnection / DenyConnection help)."""
        try:
            self.connect()
        except AcceptConnection:
            self.accept()
        except DenyConnection:
            self.close()

    def connect(self) -> None:
        """Called at the handshake; accepts by default. Call close() instead to deny (403)."""
        self.accept()

    def accept(self, subprotocol: str | None = None, headers: Headers | None = None) -> None:
        """Accept the connection, with an optional subprotocol and extra response headers."""
        super().send(_accept_message(subprotocol, headers))

    def websocket_receive(self, message: Message) -> None:
        """Pass a frame's payload to receive()."""
        self.receive(**_receive_args(message))

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Called with each message from the client; override it."""

    def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        """Send a text or binary message; ``close`` (True or a close code) closes afterwards."""
        for message in _send_messages(text_data, bytes_data, close):
            super().send(message)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection (before accept() this denies the handshake with a 403)."""
        super().send(_close_message(code, reason))

    def websocket_disconnect(self, message: Message) -> None:
        """Run disconnect() (once, whatever happens) and stop; the groups are already left."""
        if not self._disconnected:
            self._disconnected = True
            self.disconnect(message.get("code", 1005))
        raise StopConsumer()

    def disconnect(self, code: int) -> None:
        """Called once when the socket closes, with its close code; override it."""


class JsonWebsocketConsumer(WebsocketConsumer):
    """A sync WebSocket consumer that speaks JSON: receive_json() and send_json()."""

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Decode a text frame and pass it to receive_json(); binary frames are an error."""
        if text_data is None:
            raise ValueError(
                f"{type(self).__qualname__} got a binary frame; JSON consumers take text frames "
                "only (override receive() to accept bytes)"
            )
        self.receive_json(self.decode_json(text_data))

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called with each decoded JSON message; override it."""

    def send_json(self, content: Any, close: bool | int = False) -> None:
        """Encode ``content`` as JSON and send it as a text frame."""
        self.send(text_data=self.encode_json(content), close=close)

    @classmethod
    def decode_json(cls, text_data: str) -> Any:
        """Parse a text frame; override for another decoder."""
        return json.loads(text_data)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        """Serialize a message; override for another encoder."""
        return json.dumps(content)


class AsyncJsonWebsocketConsumer(AsyncWebsocketConsumer):
    """An async WebSocket consumer that speaks JSON: receive_json() and send_json()."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Decode a text frame and pass it to receive_json(); binary frames are an error."""
        if text_data is None:
            raise ValueError(
                f"{type(self).__qualname__} got a binary frame; JSON consumers take text frames "
                "only (override receive() to accept bytes)"
            )
        await self.receive_json(await self.decode_json(text_data))

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Called with each decoded JSON message; override it."""

    async def send_json(self, content: Any, close: bool | int = False) -> None:
        """Encode ``content`` as JSON and send it as a text frame."""
        await self.send(text_data=await self.encode_json(content), close=close)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        """Parse a text frame; override for another decoder."""
        return json.loads(text_data)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        """Serialize a message; override for another encoder."""
        return json.dumps(content)
