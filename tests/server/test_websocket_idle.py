"""What an idle WebSocket keeps on the server (issue 18: <= 12 KiB per idle chat consumer).

Through the real server on both transports, with the real ``websockets`` client: after the
upgrade nothing of the HTTP side stays armed, the handler holds no loop timer of its own (its
timers ride on the server's shared ticks), and a connection that only chats never builds
wsproto's parser. ``benchmarks/consumer_idle.py`` measures the resulting RSS.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from websockets.sync.client import connect

from asgi_server.connection.http import HttpHandler
from asgi_server.connection.websocket import WebsocketHandler

RunServer = Callable[..., AbstractContextManager[Any]]


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accepts, then echoes text until the peer leaves."""
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message.get("text") or ""})


def armed(server: Any) -> list[object]:
    """Everything waiting on the server's shared ticks (private: read for this test only)."""
    ticks = server.state.deadlines._ticks
    return [connection for waiting in ticks.values() for connection in waiting]


def handlers(server: Any) -> list[WebsocketHandler]:
    return [c.handler for c in server.state.connections if isinstance(c.handler, WebsocketHandler)]


def test_an_upgrade_leaves_nothing_of_the_http_side_armed(run_server: RunServer) -> None:
    """Before, the request-head deadline's tick kept the HTTP handler, its core and parser
    (~2 KiB) alive for up to --timeout-request-head after every upgrade."""
    with (
        run_server(echo, timeout_request_head=60) as server,
        connect(f"{server.ws_url}/", ping_interval=None) as client,
    ):
        client.send("hello")
        assert client.recv(timeout=10) == "hello"
        assert not [c for c in armed(server.server) if isinstance(c, HttpHandler)]


def test_an_idle_websocket_holds_no_loop_timer_and_no_wsproto_parser(
    run_server: RunServer,
) -> None:
    with (
        run_server(echo, ws_ping_interval=30) as server,
        # Uncompressed: a compressed message (RSV1) is wsproto's to inflate.
        connect(f"{server.ws_url}/", ping_interval=None, compression=None) as client,
    ):
        client.send("x" * 300)  # a 16-bit length: still the core's fast path
        assert client.recv(timeout=10) == "x" * 300
        client.ping(b"still there?").wait(10)  # so are pings
        (handler,) = handlers(server.server)
        assert not hasattr(handler, "__dict__")
        assert handler in armed(server.server)  # its ping deadline, on a shared tick
        assert handler.core is not None and handler.core._frames is None
        assert handler.handshake is None  # answered: its header lists are gone
        timers = [
            value
            for slot in type(handler).__slots__
            if isinstance(value := getattr(handler, slot, None), asyncio.TimerHandle)
        ]
        assert timers == []
