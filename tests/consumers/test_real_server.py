"""Consumers behind the real server, on real sockets: httpx for HTTP, websockets for WebSocket."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import websockets

from consumers import (
    AsyncHttpConsumer,
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
)
from consumers.routing import ProtocolTypeRouter, URLRouter, path
from consumers.security import OriginValidator

RunServer = Callable[..., Any]


class Hello(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        name = self.scope["url_route"]["kwargs"]["name"]
        await self.send_response(200, f"hello {name}".encode(), headers={"x-by": "consumer"})


class Room(AsyncJsonWebsocketConsumer):
    """Joins its room's group (from the URL); broadcasts what it receives."""

    disconnects: list[int] = []

    async def connect(self) -> None:
        self.room = "room-" + self.scope["url_route"]["kwargs"]["room"]
        assert self.channel_layer is not None and self.channel_name is not None
        await self.channel_layer.group_add(self.room, self.channel_name)
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        assert self.channel_layer is not None
        await self.channel_layer.group_send(self.room, {"type": "room.say", "text": content})

    async def room_say(self, event: dict[str, Any]) -> None:
        await self.send_json(event["text"])

    async def disconnect(self, code: int) -> None:
        self.disconnects.append(code)


class Firehose(AsyncWebsocketConsumer):
    """Sends as fast as it can once asked, forever."""

    disconnects: list[int] = []
    loop_ended = asyncio.Event()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            while True:
                await self.send(text_data="x" * 1000)
                await asyncio.sleep(0)
        finally:
            type(self).loop_ended.set()

    async def disconnect(self, code: int) -> None:
        self.disconnects.append(code)


class Stuck(AsyncWebsocketConsumer):
    """Waits forever on the first message; only the disconnect timeout can end it."""

    disconnects: list[int] = []

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await asyncio.Event().wait()

    async def disconnect(self, code: int) -> None:
        self.disconnects.append(code)


class SyncJson(JsonWebsocketConsumer):
    """A sync consumer: accepts with the offered subprotocol, answers JSON with JSON."""

    def connect(self) -> None:
        self.accept(subprotocol=self.scope["subprotocols"][0])

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        self.send_json({"sum": sum(content["numbers"])})


application = ProtocolTypeRouter(
    {
        "http": URLRouter([path("hello/<str:name>/", Hello.as_asgi())]),
        "websocket": URLRouter(
            [
                path("ws/room/<slug:room>/", Room.as_asgi()),
                path("ws/sync/", SyncJson.as_asgi()),
                path("ws/stuck/", Stuck.as_asgi(disconnect_timeout=0.2)),
                path("ws/firehose/", Firehose.as_asgi(disconnect_timeout=5)),
                path(
                    "ws/guarded/",
                    OriginValidator(AsyncWebsocketConsumer.as_asgi(), ["http://good.example"]),
                ),
            ]
        ),
    }
)


async def test_http_consumer_through_the_server(run_server: RunServer) -> None:
    with run_server(application) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.get("/hello/ada/")
            assert response.status_code == 200
            assert response.text == "hello ada"
            assert response.headers["x-by"] == "consumer"
            assert (await client.get("/nowhere/")).status_code == 404


async def test_room_broadcast_through_the_server(run_server: RunServer) -> None:
    Room.disconnects = []
    with run_server(application) as server:
        url = server.ws_url + "/ws/room/"
        async with (
            websockets.connect(url + "a/") as first,
            websockets.connect(url + "a/") as second,
            websockets.connect(url + "b/") as other,
        ):
            await first.send('"hello a"')
            assert await asyncio.wait_for(first.recv(), 2) == '"hello a"'
            assert await asyncio.wait_for(second.recv(), 2) == '"hello a"'
            await other.send('"hello b"')
            assert await asyncio.wait_for(other.recv(), 2) == '"hello b"'
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(first.recv(), 0.2)
        for _ in range(100):
            if len(Room.disconnects) == 3:
                break
            await asyncio.sleep(0.02)
        assert sorted(Room.disconnects) == [1000, 1000, 1000]


async def test_unrouted_and_denied_handshakes_are_refused(
    run_server: RunServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="consumers.security")
    with run_server(application) as server:
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(server.ws_url + "/ws/nowhere/"):
                pass
        assert info.value.response.status_code in (403, 404)
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(
                server.ws_url + "/ws/guarded/", origin=websockets.Origin("http://evil.example")
            ):
                pass
        assert info.value.response.status_code == 403
        refusals = [r.getMessage() for r in caplog.records if r.name == "consumers.security"]
        assert refusals == [
            "WebSocket /ws/guarded/ refused (403): origin 'http://evil.example' is not allowed;"
            " allowed origins: http://good.example"
        ]
        async with websockets.connect(
            server.ws_url + "/ws/guarded/", origin=websockets.Origin("http://good.example")
        ):
            pass
        assert len([r for r in caplog.records if r.name == "consumers.security"]) == 1


async def test_client_vanishing_mid_send_loop(run_server: RunServer) -> None:
    """The client's TCP connection disappears while the consumer is in a send loop: the loop
    ends, disconnect() runs exactly once, and the consumer finishes well before its timeout."""
    Firehose.disconnects = []
    Firehose.loop_ended = asyncio.Event()
    with run_server(application) as server:
        client = await websockets.connect(server.ws_url + "/ws/firehose/")
        await client.send("go")
        await asyncio.wait_for(client.recv(), 2)
        # Vanish: drop the TCP connection without a closing handshake.
        transport_socket = client.transport.get_extra_info("socket")
        transport_socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        client.transport.abort()
        for _ in range(150):
            if Firehose.disconnects:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # room for a (wrong) second call
        assert len(Firehose.disconnects) == 1
        assert Firehose.loop_ended.is_set()


async def test_sync_json_consumer_through_the_server(run_server: RunServer) -> None:
    with run_server(application) as server:
        async with websockets.connect(
            server.ws_url + "/ws/sync/", subprotocols=[websockets.Subprotocol("calc")]
        ) as client:
            assert client.subprotocol == "calc"
            await client.send('{"numbers": [1, 2, 39]}')
            assert await asyncio.wait_for(client.recv(), 2) == '{"sum": 42}'


async def test_stuck_consumer_behind_the_server_is_cancelled_and_reported(
    run_server: RunServer, caplog: pytest.LogCaptureFixture
) -> None:
    Stuck.disconnects = []
    caplog.set_level(logging.WARNING, logger="consumers")
    with run_server(application) as server:
        async with websockets.connect(server.ws_url + "/ws/stuck/") as client:
            await client.send("go")
        for _ in range(150):
            if Stuck.disconnects:
                break
            await asyncio.sleep(0.02)
        assert Stuck.disconnects == [1000]
        warnings = [r.getMessage() for r in caplog.records if r.name == "consumers"]
        assert len(warnings) == 1
        assert "Stuck (websocket /ws/stuck/) did not finish 0.2s after" in warnings[0]
        assert "in receive: await asyncio.Event().wait()" in warnings[0]


async def test_idle_websocket_outlives_the_request_head_timeout(run_server: RunServer) -> None:
    """A chat tab sits idle for longer than the HTTP request-head timeout: the upgraded
    connection must not be cut by that HTTP timer."""
    with run_server(application, timeout_request_head=0.3) as server:
        async with websockets.connect(server.ws_url + "/ws/room/idle/") as client:
            await asyncio.sleep(0.6)
            await client.send('"still here"')
            assert await asyncio.wait_for(client.recv(), 2) == '"still here"'
