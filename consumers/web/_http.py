"""Small HTTP helpers the path types share: the path below the mount point, simple responses."""

from __future__ import annotations

import json
from typing import Any

from ..base import Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]


def path_below_mount(scope: Scope) -> str:
    """The request path below where this app is mounted, without its leading slash.

    In a URLRouter that is ``path_remaining`` (the path types mark themselves as mount points);
    alone, it is ``path`` without ``root_path``.
    """
    remaining = scope.get("path_remaining")
    if remaining is None:
        remaining = scope.get("path", "")
        root_path = scope.get("root_path", "")
        if root_path and remaining.startswith(root_path):
            remaining = remaining[len(root_path) :]
    return str(remaining).lstrip("/")


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of request header ``name`` (lower case), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


async def respond(
    send: Send,
    status: int,
    body: bytes = b"",
    content_type: bytes = b"text/plain; charset=utf-8",
    headers: Headers | None = None,
    head_only: bool = False,
) -> None:
    """Send a whole response in one body event."""
    all_headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    all_headers.extend(headers or ())
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": b"" if head_only else body})


async def respond_json(
    send: Send, status: int, payload: Any, headers: Headers | None = None
) -> None:
    """Send ``payload`` as a JSON response."""
    body = json.dumps(payload, separators=(",", ":"), default=repr).encode()
    await respond(send, status, body, b"application/json", headers)


class BodyTooLarge(Exception):
    """The request body is longer than the path's limit."""


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None when the client disconnected. Raises ``BodyTooLarge``
    as soon as more than ``limit`` bytes have come (it stops reading there)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body is over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def refuse_websocket(receive: Receive, send: Send) -> None:
    """Refuse a WebSocket handshake sent to an HTTP-only path."""
    await receive()
    await send({"type": "websocket.close", "code": 1000})
