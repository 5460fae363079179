"""WebSocket through the real server, spoken to by the real ``websockets`` client."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

RunServer = Callable[..., AbstractContextManager[Any]]
Scope = dict[str, Any]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll until ``condition()`` holds (the server runs on another thread)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


class Recorder:
    """An app that accepts, echoes and records what it received, including the disconnect."""

    def __init__(self, accept: dict[str, Any] | None = None) -> None:
        self.accept = accept or {}
        self.received: list[dict[str, Any]] = []
        self.scopes: list[Scope] = []

    @property
    def disconnect(self) -> dict[str, Any] | None:
        return next((m for m in self.received if m["type"] == "websocket.disconnect"), None)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        self.scopes.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept", **self.accept})
        while True:
            message = await receive()
            self.received.append(message)
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "scope":
                public = {k: v for k, v in scope.items() if k not in ("headers", "state")}
                await send({"type": "websocket.send", "text": json.dumps(public, default=repr)})
            elif message.get("text") == "close-please":
                await send({"type": "websocket.close", "code": 4321, "reason": "as you wish"})
            elif "text" in message and message["text"] is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})


async def test_echo_text_bytes_and_empty_messages(run_server: RunServer) -> None:
    app = Recorder()
    with run_server(app) as server:
        async with connect(server.ws_url + "/chat?room=1") as ws:
            for message in ["hello", b"\x00\x01\x02", "", b"", "ü" * 5000, b"z" * 200_000]:
                await ws.send(message)
                assert await ws.recv() == message
    wait_for(lambda: app.disconnect is not None)
    assert app.disconnect == {"type": "websocket.disconnect", "code": 1000, "reason": ""}


@pytest.mark.parametrize("deflate", [True, False])
async def test_text_frames_on_both_sides_of_the_small_frame_path(
    run_server: RunServer, deflate: bool
) -> None:
    """Texts under 126 UTF-8 bytes take a 2-byte head and are never compressed; the boundary
    counts bytes, not characters (42 euro signs are 126 bytes), with and without deflate."""
    app = Recorder()
    texts = ["", "a", "a" * 125, "a" * 126, "a" * 127, "\u20ac" * 41, "\u20ac" * 42, "x" * 300]
    with run_server(app, ws_per_message_deflate=deflate) as server:
        async with connect(server.ws_url) as ws:
            for text in texts:
                await ws.send(text)
                assert await ws.recv() == text


async def test_scope(run_server: RunServer) -> None:
    app = Recorder()
    with run_server(app, root_path="/base") as server:
        async with connect(server.ws_url + "/caf%C3%A9?x=1", subprotocols=["a", "b"]) as ws:
            await ws.send("scope")
            scope = json.loads(await ws.recv())
    assert scope["type"] == "websocket"
    assert scope["asgi"]["spec_version"] == "2.4"
    assert scope["scheme"] == "ws"
    assert scope["http_version"] == "1.1"
    assert scope["path"] == "/base/café"  # ASGI: path includes root_path (as for HTTP)
    assert scope["raw_path"] == repr(b"/caf%C3%A9")
    assert scope["query_string"] == repr(b"x=1")
    assert scope["root_path"] == "/base"
    assert scope["subprotocols"] == ["a", "b"]
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["client"][0] == "127.0.0.1" and scope["server"][1] == server.port
    assert (b"upgrade", b"websocket") in app.scopes[0]["headers"]


async def test_http_and_websocket_scopes_agree(run_server: RunServer) -> None:
    """The same target on one server gives both scopes the same path (root_path included),
    raw_path, query string, root_path, client and server."""
    scopes: dict[str, Scope] = {}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scopes["http"] = scope
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        elif scope["type"] == "websocket":
            scopes["websocket"] = scope
            await receive()
            await send({"type": "websocket.close"})

    with run_server(app, root_path="/base") as server:
        target = "/a%2Fb/caf%C3%A9?x=1&y"
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 204")
        with pytest.raises(InvalidStatus):
            async with connect(server.ws_url + target):
                pass
    http, websocket = scopes["http"], scopes["websocket"]
    assert websocket["path"] == http["path"] == "/base/a/b/café"
    for key in ("raw_path", "query_string", "root_path", "http_version", "server"):
        assert websocket[key] == http[key], key
    assert websocket["client"][0] == http["client"][0] == "127.0.0.1"
    assert (http["scheme"], websocket["scheme"]) == ("http", "ws")
    assert "method" not in websocket


async def test_proxy_trust_is_memoized_for_websockets(run_server: RunServer) -> None:
    """WebSocket upgrades apply X-Forwarded-* from a trusted peer, and decide whether the peer
    is trusted once per address, as HTTP requests do (not once per connection)."""
    app = Recorder()
    with run_server(app) as server:
        trust = server.server.state.proxy_trust
        checked: list[str] = []
        is_trusted = trust.is_trusted

        def counting(host: str) -> bool:  # the real check, counted
            checked.append(host)
            return bool(is_trusted(host))

        trust.is_trusted = counting
        headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
        for _ in range(3):
            async with connect(server.ws_url, additional_headers=headers) as ws:
                await ws.send("ping")
                assert await ws.recv() == "ping"
    assert [scope["client"][0] for scope in app.scopes] == ["203.0.113.7"] * 3
    assert [scope["scheme"] for scope in app.scopes] == ["wss"] * 3
    assert checked.count("127.0.0.1") == 1  # the peer: memoized after the first connection


def test_access_log_lines(run_server: RunServer, caplog: Any) -> None:
    """Like uvicorn: the handshake's result ([accepted] or the refusal's status) and, at the
    end, the close code; the target escaped as in HTTP lines."""
    from tests.protocols.test_websocket import client_frame

    caplog.set_level(logging.INFO, logger="asgi_server.access")

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        if scope["path"] == "/deny":
            await send({"type": "websocket.close"})  # before accepting: 403
            return
        await send({"type": "websocket.accept"})
        await receive()  # the disconnect

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "asgi_server.access"]

    upgrade = (
        "GET {} HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    with run_server(app) as server:
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(upgrade.format('/a"b\\c?x=1').encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 101 ")
            sock.sendall(client_frame(0x8, (4000).to_bytes(2, "big")))
            while sock.recv(4096):  # our close frame, then the server closes
                pass
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(upgrade.format("/deny").encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 403 ")
        wait_for(lambda: len(lines()) == 3)
    accepted, closed, denied = lines()
    assert accepted.startswith("127.0.0.1:")
    assert accepted.endswith(' - "WebSocket /a\\"b\\\\c?x=1" [accepted]')
    assert closed.endswith(' - "WebSocket /a\\"b\\\\c?x=1" [closed 4000]')
    assert denied.endswith(' - "WebSocket /deny" 403')


def test_one_client_disconnected_class() -> None:
    """HTTP and WebSocket send() raise the same ClientDisconnected (an OSError), so an app
    catches one class for both."""
    from asgi_server.asgi import http, websocket

    assert websocket.ClientDisconnected is http.ClientDisconnected
    assert issubclass(http.ClientDisconnected, OSError)


async def test_accept_with_subprotocol_and_headers(run_server: RunServer) -> None:
    app = Recorder({"subprotocol": "b", "headers": [(b"x-extra", b"yes")]})
    with run_server(app) as server:
        async with connect(server.ws_url, subprotocols=["a", "b"]) as ws:
            assert ws.subprotocol == "b"
            assert ws.response.headers["x-extra"] == "yes"


async def test_close_before_accept_is_403(run_server: RunServer) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.close"})

    with run_server(app) as server, pytest.raises(InvalidStatus) as info:
        async with connect(server.ws_url):
            pass
    assert info.value.response.status_code == 403


async def test_denial_response_extension(run_server: RunServer) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        headers = [(b"content-type", b"text/plain")]
        await send({"type": "websocket.http.response.start", "status": 418, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"I'm ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"a teapot"})

    with run_server(app) as server, pytest.raises(InvalidStatus) as info:
        async with connect(server.ws_url):
            pass
    assert info.value.response.status_code == 418
    assert info.value.response.body == b"I'm a teapot"


async def test_app_close_code_and_reason_reach_the_client(run_server: RunServer) -> None:
    app = Recorder()
    with run_server(app) as server:
        async with connect(server.ws_url) as ws:
            await ws.send("close-please")
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4321, "as you wish")


async def test_client_close_code_and_reason_reach_the_app(run_server: RunServer) -> None:
    app = Recorder()
    with run_server(app) as server:
        async with connect(server.ws_url) as ws:
            await ws.close(4000, "going away now")
        wait_for(lambda: app.disconnect is not None)
    expected = {"type": "websocket.disconnect", "code": 4000, "reason": "going away now"}
    assert app.disconnect == expected


@pytest.mark.parametrize("enabled", [True, False])
async def test_permessage_deflate_negotiation(run_server: RunServer, enabled: bool) -> None:
    app = Recorder()
    with run_server(app, ws_per_message_deflate=enabled) as server:
        async with connect(server.ws_url) as ws:  # websockets offers permessage-deflate
            negotiated = ws.response.headers.get("sec-websocket-extensions", "")
            assert negotiated.startswith("permessage-deflate") is enabled
            big = "compressible " * 10_000
            await ws.send(big)
            assert await ws.recv() == big


async def test_app_exception_after_accept_closes_1011_and_server_survives(
    run_server: RunServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        if scope["path"] == "/before":
            raise RuntimeError("boom before accept")
        await send({"type": "websocket.accept"})
        await receive()
        raise RuntimeError("boom after accept")

    with run_server(app) as server:
        async with connect(server.ws_url + "/after") as ws:
            await ws.send("x")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        with pytest.raises(InvalidStatus) as denied:
            async with connect(server.ws_url + "/before"):
                pass
        assert denied.value.response.status_code == 500
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Exception in WebSocket application" in m for m in messages) == 2


async def test_handshake_timeout_closes_the_connection(run_server: RunServer) -> None:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await asyncio.sleep(30)  # never accepts

    with run_server(app, timeout_ws_handshake=0.2) as server:
        started = time.monotonic()
        with pytest.raises(InvalidStatus) as info:
            async with connect(server.ws_url, open_timeout=5):
                pass
    assert info.value.response.status_code == 500
    assert time.monotonic() - started < 5


async def test_graceful_shutdown_closes_with_1012(run_server: RunServer) -> None:
    app = Recorder()
    with run_server(app) as server:
        async with connect(server.ws_url) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            server.server.should_exit = True
            with pytest.raises(ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1012
    assert app.disconnect is not None and app.disconnect["code"] == 1012


def test_wrong_version_is_426_and_app_never_called(run_server: RunServer) -> None:
    app = Recorder()
    with (
        run_server(app) as server,
        socket.create_connection((server.host, server.port), timeout=5) as sock,
    ):
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
        )
        response = sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 426 ")
    assert b"sec-websocket-version: 13" in response.lower()
    assert app.scopes == []


async def test_connection_outlives_the_http_timeouts(run_server: RunServer) -> None:
    # Regression: the HTTP handler's head timer used to close upgraded connections.
    app = Recorder()
    with run_server(app, timeout_request_head=0.1, timeout_keep_alive=0.1) as server:
        async with connect(server.ws_url) as ws:
            await asyncio.sleep(0.5)
            await ws.send("still here")
            assert await ws.recv() == "still here"


async def test_send_after_disconnect_raises_oserror_without_a_traceback(
    run_server: RunServer, caplog: pytest.LogCaptureFixture
) -> None:
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        assert (await receive())["type"] == "websocket.disconnect"
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except OSError as exc:
            raised.append(exc)
            raise

    with run_server(app) as server:
        async with connect(server.ws_url) as ws:
            await ws.close()
        wait_for(lambda: bool(raised))
    assert "Exception in WebSocket application" not in caplog.text
