"""Test communicators: drive an ASGI application in-process, without a server (as in Channels).

Both are built on asgiref's ApplicationCommunicator, which runs the application as a task and
queues the messages it sends. Use them in ``async`` tests; every wait takes a ``timeout``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from asgiref.testing import ApplicationCommunicator

from .base import Message
from .sync import connection_closing_suspended

__all__ = ["ApplicationCommunicator", "HttpCommunicator", "WebsocketCommunicator"]

Headers = Iterable[tuple[bytes, bytes]]


def _split_path(path: str) -> tuple[str, bytes]:
    parts = urlsplit(path)
    return unquote(parts.path), parts.query.encode("latin-1")


class TypedCommunicator(ApplicationCommunicator):
    """asgiref's ApplicationCommunicator with typed methods (asgiref's are untyped)."""

    def __init__(self, application: Any, scope: dict[str, Any]) -> None:
        super().__init__(application, scope)  # type: ignore[no-untyped-call]

    # Each call drives the application with connection_closing_suspended(), so a consumer's
    # database calls keep a Django TestCase's connection open (as Channels' communicators do).

    async def send_input(self, message: Message) -> None:
        """Queue a message for the application's receive()."""
        with connection_closing_suspended():
            await super().send_input(message)  # type: ignore[no-untyped-call]

    async def receive_output(self, timeout: float = 1) -> Message:
        """The next message the application sent (TimeoutError after ``timeout``)."""
        with connection_closing_suspended():
            message: Message = await super().receive_output(timeout)  # type: ignore[no-untyped-call]
        return message

    async def receive_nothing(self, timeout: float = 0.1, interval: float = 0.01) -> bool:
        """True when the application sends nothing within ``timeout`` seconds."""
        with connection_closing_suspended():
            nothing: bool = await super().receive_nothing(timeout, interval)  # type: ignore[no-untyped-call]
        return nothing

    async def wait(self, timeout: float = 1) -> None:
        """Wait for the application to finish, re-raising its exception."""
        with connection_closing_suspended():
            await super().wait(timeout)  # type: ignore[no-untyped-call]


class HttpCommunicator(TypedCommunicator):
    """Sends one HTTP request to an application and collects its response."""

    def __init__(
        self,
        application: Any,
        method: str,
        path: str,
        body: bytes = b"",
        headers: Headers | None = None,
    ) -> None:
        request_path, query_string = _split_path(path)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": "http",
            "path": request_path,
            "raw_path": path.split("?")[0].encode("latin-1"),
            "query_string": query_string,
            "root_path": "",
            "headers": list(headers or []),
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        super().__init__(application, scope)
        self.body = body
        self.sent_request = False

    async def get_response(self, timeout: float = 1) -> dict[str, Any]:
        """Send the request and return {"status", "headers", "body"} once the body is complete."""
        if not self.sent_request:
            self.sent_request = True
            await self.send_input({"type": "http.request", "body": self.body})
        start = await self.receive_output(timeout)
        if start["type"] != "http.response.start":
            raise AssertionError(f"expected http.response.start, got {start!r}")
        response = {"status": start["status"], "headers": start.get("headers", []), "body": b""}
        while True:
            chunk = await self.receive_output(timeout)
            if chunk["type"] != "http.response.body":
                raise AssertionError(f"expected http.response.body, got {chunk!r}")
            response["body"] += chunk.get("body", b"")
            if not chunk.get("more_body", False):
                break
        await self.send_input({"type": "http.disconnect"})
        return response


class WebsocketCommunicator(TypedCommunicator):
    """Drives a WebSocket application: connect, send and receive frames, disconnect."""

    def __init__(
        self,
        application: Any,
        path: str,
        headers: Headers | None = None,
        subprotocols: list[str] | None = None,
        spec_version: str | None = None,
    ) -> None:
        request_path, query_string = _split_path(path)
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "scheme": "ws",
            "path": request_path,
            "raw_path": path.split("?")[0].encode("latin-1"),
            "query_string": query_string,
            "root_path": "",
            "headers": list(headers or []),
            "subprotocols": list(subprotocols or []),
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        if spec_version:
            scope["asgi"]["spec_version"] = spec_version
        super().__init__(application, scope)
        self.response_headers: list[tuple[bytes, bytes]] | None = None

    async def connect(self, timeout: float = 1) -> tuple[bool, str | int | None]:
        """Open the handshake: (True, subprotocol) when accepted, (False, close code) if not."""
        await self.send_input({"type": "websocket.connect"})
        response: Message = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        if response["type"] != "websocket.accept":
            raise AssertionError(f"expected websocket.accept or close, got {response!r}")
        self.response_headers = response.get("headers")
        return True, response.get("subprotocol")

    async def send_to(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Send a text or a binary frame to the application."""
        if (text_data is None) == (bytes_data is None):
            raise ValueError("send_to() takes exactly one of text_data and bytes_data")
        if text_data is not None:
            await self.send_input({"type": "websocket.receive", "text": text_data})
        else:
            await self.send_input({"type": "websocket.receive", "bytes": bytes_data})

    async def send_json_to(self, data: Any) -> None:
        """Send ``data`` as a JSON text frame."""
        await self.send_to(text_data=json.dumps(data))

    async def receive_from(self, timeout: float = 1) -> str | bytes:
        """The next frame the application sent: str for text, bytes for binary."""
        response: Message = await self.receive_output(timeout)
        if response["type"] != "websocket.send":
            raise AssertionError(f"expected websocket.send, got {response!r}")
        if response.get("text") is not None:
            text: str = response["text"]
            return text
        data: bytes = response["bytes"]
        return data

    async def receive_json_from(self, timeout: float = 1) -> Any:
        """The next frame, which must be text, decoded as JSON."""
        payload = await self.receive_from(timeout)
        if not isinstance(payload, str):
            raise AssertionError(f"expected a JSON text frame, got binary {payload!r}")
        return json.loads(payload)

    async def disconnect(self, code: int = 1000, timeout: float = 1) -> None:
        """Tell the application the socket closed, then wait for it to finish."""
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)
