"""The ASGI side of one WebSocket connection: scope, receive() and send() as a state machine.

This follows the ASGI WebSocket spec 2.4, including the ``websocket.http.response`` extension.
It knows nothing about sockets: the transport implements :class:`WebsocketShell`, feeds incoming
messages to :meth:`WebsocketSession.message_received` and the end of the connection to
:meth:`WebsocketSession.disconnected`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from asgi_server.asgi.http import ClientDisconnected

__all__ = ["ClientDisconnected", "WebsocketSession", "WebsocketShell", "build_scope"]

Headers = list[tuple[bytes, bytes]]
Message = dict[str, Any]
SessionState = Literal["connecting", "connected", "response", "closed"]


class WebsocketShell(Protocol):
    """What the session needs from the transport that owns the socket."""

    writing_paused: bool

    def accept(self, subprotocol: str | None, headers: Headers) -> None:
        """Send the 101 response and switch to WebSocket frames."""

    def send_message(self, data: str | bytes) -> None:
        """Frame and write one message."""

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake with this code and reason."""

    def send_http_response(self, status: int, headers: Headers) -> None:
        """Answer the upgrade with a plain HTTP response head instead of 101."""

    def send_http_body(self, body: bytes, more_body: bool) -> None:
        """Write (part of) that response's body; the last part closes the connection."""

    def pause_reading(self) -> None:
        """Stop reading from the peer: the app has too many unread messages."""

    def resume_reading(self) -> None:
        """Read from the peer again."""

    async def wait_writable(self) -> None:
        """Return once the peer has read enough that writing is no longer paused."""


def build_scope(http_scope: dict[str, Any], subprotocols: Sequence[str]) -> dict[str, Any]:
    """The ASGI ``websocket`` connection scope (spec 2.4) of an upgrade request.

    ``http_scope`` is the request's HTTP scope, built by ``asgi.http.build_scope`` (so both
    scopes agree on path and root_path, proxy headers, state and the TLS extension); this
    turns it into a WebSocket one.
    """
    scope = http_scope.copy()
    del scope["method"]
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if http_scope["scheme"] in ("https", "wss") else "ws"
    scope["subprotocols"] = list(subprotocols)
    scope["extensions"] = {"websocket.http.response": {}, **http_scope.get("extensions", {})}
    return scope


def _headers(message: Message) -> Headers:
    return [(bytes(name).lower(), bytes(value)) for name, value in message.get("headers", ())]


class WebsocketSession:
    """receive() and send() for one application instance, checked against the spec's order."""

    # One per connection, kept as long as it lives: no per-instance dict.
    __slots__ = (
        "_connect_sent",
        "_disconnect",
        "_inbox",
        "_reading_paused",
        "_waiter",
        "max_queue",
        "scope",
        "shell",
        "state",
    )

    def __init__(self, scope: dict[str, Any], shell: WebsocketShell, max_queue: int) -> None:
        self.scope = scope
        self.shell = shell
        self.max_queue = max_queue
        self.state: SessionState = "connecting"
        # Unread messages: None while there are none (an empty deque costs ~700 bytes per idle
        # connection); a deque, not a list, as one read can bring thousands of small frames.
        self._inbox: deque[Message] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._connect_sent = False
        self._disconnect: Message | None = None
        self._reading_paused = False

    # --- called by the transport -----------------------------------------------------------

    def message_received(self, data: str | bytes) -> None:
        """Queue a peer's message for the app; pause reading past ``max_queue`` unread ones."""
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = deque()
        if isinstance(data, str):
            inbox.append({"type": "websocket.receive", "text": data})
        else:
            inbox.append({"type": "websocket.receive", "bytes": data})
        # Pausing only past a threshold, not after every message, keeps flow control cheap.
        if len(inbox) > self.max_queue and not self._reading_paused:
            self._reading_paused = True
            self.shell.pause_reading()
        self._wake()

    def disconnected(self, code: int, reason: str = "") -> None:
        """The connection is over: the app's next receive() after its queue is a disconnect."""
        if self._disconnect is None:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
        self.state = "closed"
        self._wake()

    def mark_closed(self) -> None:
        """The connection is over for the app (denied, or its app returned): send() raises."""
        self.state = "closed"

    @property
    def handshake_pending(self) -> bool:
        """True while the app has neither accepted nor denied the connection."""
        return self.state == "connecting"

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the ASGI callables ---------------------------------------------------------------

    async def receive(self) -> Message:
        """ASGI receive(): connect first, then the peer's messages, then a disconnect."""
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        while not self._inbox and self._disconnect is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        inbox = self._inbox
        if inbox:
            message = inbox.popleft()
            if self._reading_paused and len(inbox) <= self.max_queue // 2:
                self._reading_paused = False
                self.shell.resume_reading()
            if not inbox:
                self._inbox = None
            return message
        assert self._disconnect is not None
        return self._disconnect

    async def send(self, message: Message) -> None:
        """ASGI send(): accept, messages, close, or a denial response, in the spec's order."""
        kind = message.get("type")
        if kind == "websocket.send" and self.state == "connected":
            # The hot path (each chat delivery is one): a text message goes straight to the
            # shell; anything else (bytes, a wrong type) takes _send_connected's checks.
            text = message.get("text")
            if type(text) is str and message.get("bytes") is None:
                self.shell.send_message(text)
            else:
                self._send_connected(kind, message)
        elif self.state == "connecting":
            self._send_connecting(kind, message)
        elif self.state == "connected":
            self._send_connected(kind, message)
        elif self.state == "response":
            self._send_response_body(kind, message)
        elif kind != "websocket.close":
            # Closing twice is harmless, so only other messages raise.
            raise ClientDisconnected(f"cannot send {kind!r}: the WebSocket is closed")
        if self.shell.writing_paused:
            await self.shell.wait_writable()

    def _send_connecting(self, kind: object, message: Message) -> None:
        if kind == "websocket.accept":
            self.state = "connected"
            headers = _headers(message)
            self.shell.accept(message.get("subprotocol"), headers)
        elif kind == "websocket.close":
            # ASGI spec: closing before accepting rejects the handshake with HTTP 403.
            self.state = "closed"
            self.shell.send_http_response(403, [(b"content-type", b"text/plain")])
            self.shell.send_http_body(b"Forbidden", more_body=False)
        elif kind == "websocket.http.response.start":
            self.state = "response"
            self.shell.send_http_response(int(message["status"]), _headers(message))
        else:
            raise RuntimeError(
                f"expected 'websocket.accept', 'websocket.close' or "
                f"'websocket.http.response.start' before the handshake completes, got {kind!r}"
            )

    def _send_connected(self, kind: object, message: Message) -> None:
        if kind == "websocket.send":
            data = message.get("bytes")
            if data is None:
                data = message.get("text")
            if not isinstance(data, str | bytes | bytearray):
                raise TypeError("'websocket.send' needs a 'bytes' or a 'text' key")
            self.shell.send_message(data if isinstance(data, str) else bytes(data))
        elif kind == "websocket.close":
            self.state = "closed"
            self.shell.close(int(message.get("code", 1000)), message.get("reason") or "")
        else:
            raise RuntimeError(
                f"expected 'websocket.send' or 'websocket.close' after accepting, got {kind!r}"
            )

    def _send_response_body(self, kind: object, message: Message) -> None:
        if kind != "websocket.http.response.body":
            raise RuntimeError(f"expected 'websocket.http.response.body', got {kind!r}")
        more_body = bool(message.get("more_body", False))
        if not more_body:
            self.state = "closed"
        self.shell.send_http_body(bytes(message.get("body", b"")), more_body)
