"""Small ASGI apps for the server tests, importable by a subprocess server
(``--app-dir tests/server``, e.g. ``_apps:slow``)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import Any


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if os.environ.get("CROSSWAY_TEST_STARTUP_FAIL"):
                await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            print("lifespan shutdown ran", flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def respond(send: Any, body: bytes, status: int = 200) -> None:
    """Send a whole plain-text response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def slow(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers after ``?seconds`` (default 0.5): a request that is in flight for a while."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    query = scope["query_string"].decode()
    seconds = float(query.split("=", 1)[1]) if query.startswith("seconds=") else 0.5
    # Tests wait for this line (the request is in flight) instead of sleeping and hoping.
    print(f"slow request started: {seconds:.1f} s", file=sys.stderr, flush=True)
    await asyncio.sleep(seconds)
    await respond(send, b"done after %.1f" % seconds)


class Asgi2App:
    """An ASGI 2 (double-callable) app: the server must wrap it."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        if self.scope["type"] == "http":
            await respond(send, b"asgi2 " + self.scope["path"].encode())


def make_app() -> Any:
    """A factory (``--factory``)."""
    return slow


async def environ(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the environment variable named by the query string (``?NAME``)."""
    if scope["type"] == "http":
        name = scope["query_string"].decode()
        await respond(send, os.environ.get(name, "<unset>").encode())


async def package_logs(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Logs one INFO line under ``channel_layers`` and one WARNING under ``consumers``, as those
    packages do (the server configures their loggers by name)."""
    if scope["type"] == "http":
        logging.getLogger("channel_layers.redis").info("reconnected to Redis (test line)")
        logging.getLogger("consumers.base").warning("a consumer warning (test line)")
        await respond(send, b"logged")
