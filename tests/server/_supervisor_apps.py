"""Apps for the worker, reload, TLS and Twisted tests, importable by a subprocess server
(``--app-dir tests/server``, e.g. ``_supervisor_apps:pid``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            print(f"worker {os.getpid()} lifespan shutdown", flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def pid(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the serving process's id; ``?sleep=S`` waits S seconds first."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "websocket":  # greet with the pid and echo one message
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": str(os.getpid())})
        message = await receive()
        await send({"type": "websocket.send", "text": message.get("text")})
        await send({"type": "websocket.close"})
        return
    query = scope["query_string"].decode()
    if query.startswith("sleep="):
        await asyncio.sleep(float(query.split("=", 1)[1]))
    body = str(os.getpid()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def broken(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app whose startup fails."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})


async def twisted_clock(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Awaits a Twisted Deferred (deferLater on the global reactor) inside the ASGI app: proof
    that Twisted code runs on the same loop as the app."""
    if scope["type"] != "http":
        return
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    deferred = deferLater(reactor, 0.01, lambda: f"twisted {type(reactor).__name__}")
    result = await deferred.asFuture(asyncio.get_running_loop())
    body = f"{result} on {scope['server']} via {scope['scheme']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
