"""The ASGI applications every server runs in the benchmarks: same semantics for all of them.

Only the standard library is imported, so the peers' venv (which has no Crossway) can load
this module too: each server is started with the repository root on ``PYTHONPATH``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HELLO = b"Hello, world!"
_HELLO_HEADERS = [
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(HELLO)).encode()),
]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Hello world for GET; for a request with a body, read all of it and answer its length."""
    if scope["type"] == "http":
        if scope["method"] in ("GET", "HEAD"):
            await send({"type": "http.response.start", "status": 200, "headers": _HELLO_HEADERS})
            await send({"type": "http.response.body", "body": HELLO})
            return
        received = await _read_body(receive)
        body = str(received).encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def _read_body(receive: Receive) -> int:
    """Read the whole request body and return its size (counted, not kept: no copy to measure)."""
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return received
        received += len(message.get("body", b""))
        if not message.get("more_body", False):
            return received


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown, so that no server logs a lifespan error."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
