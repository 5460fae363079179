"""WebSocket consumers (sync, async, JSON) through the WebsocketCommunicator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from consumers import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    DenyConnection,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from consumers.testing import WebsocketCommunicator


class AsyncEcho(AsyncWebsocketConsumer):
    """Accepts with the client's first subprotocol; echoes; 'close' closes with 4001."""

    async def connect(self) -> None:
        offered = self.scope["subprotocols"]
        await self.accept(offered[0] if offered else None, headers=[(b"x-hello", b"1")])

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "close":
            await self.close(4001, "asked to")
        elif text_data == "last":
            await self.send(text_data="bye", close=4002)
        elif text_data is not None:
            await self.send(text_data=text_data.upper())
        else:
            await self.send(bytes_data=bytes_data[::-1] if bytes_data else b"")


class SyncEcho(WebsocketConsumer):
    """The same echo as plain def methods."""

    disconnects: list[int] = []

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is not None:
            self.send(text_data=text_data.upper())
        else:
            self.send(bytes_data=bytes_data[::-1] if bytes_data else b"")

    def disconnect(self, code: int) -> None:
        self.disconnects.append(code)


@pytest.mark.parametrize("consumer", [AsyncEcho, SyncEcho])
async def test_echo_text_and_bytes(consumer: type[Any]) -> None:
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/ws/?a=1")
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_to(text_data="hello")
    assert await communicator.receive_from() == "HELLO"
    await communicator.send_to(bytes_data=b"abc")
    assert await communicator.receive_from() == b"cba"
    await communicator.disconnect()


async def test_accept_with_subprotocol_and_headers() -> None:
    communicator = WebsocketCommunicator(AsyncEcho.as_asgi(), "/ws/", subprotocols=["chat", "x"])
    assert await communicator.connect() == (True, "chat")
    assert communicator.response_headers == [(b"x-hello", b"1")]
    await communicator.disconnect()


async def test_close_with_code_and_reason_and_send_then_close() -> None:
    communicator = WebsocketCommunicator(AsyncEcho.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_to(text_data="close")
    assert await communicator.receive_output() == {
        "type": "websocket.close",
        "code": 4001,
        "reason": "asked to",
    }
    await communicator.disconnect(4001)

    communicator = WebsocketCommunicator(AsyncEcho.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_to(text_data="last")
    assert await communicator.receive_from() == "bye"
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4002}
    await communicator.disconnect(4002)


class SendForms(AsyncWebsocketConsumer):
    """Each client text names a form of send() to try."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "empty":
            await self.send(text_data="")
        elif text_data == "both":
            await self.send(text_data="text wins", bytes_data=b"ignored")
        elif text_data == "close-true":
            await self.send(text_data="then close", close=True)
        else:
            await self.send(text_data="plain")


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("plain", [{"type": "websocket.send", "text": "plain"}]),
        ("empty", [{"type": "websocket.send", "text": ""}]),
        ("both", [{"type": "websocket.send", "text": "text wins"}]),
        (
            "close-true",
            [
                {"type": "websocket.send", "text": "then close"},
                {"type": "websocket.close", "code": 1000},
            ],
        ),
    ],
)
async def test_send_forms_make_the_same_asgi_messages(
    form: str, expected: list[dict[str, Any]]
) -> None:
    """send(text_data=...) alone takes a short path; every form still makes the ASGI messages
    it always made (text before bytes, an empty text is a frame, close after the frame)."""
    communicator = WebsocketCommunicator(SendForms.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_to(text_data=form)
    for message in expected:
        assert await communicator.receive_output() == message
    assert await communicator.receive_nothing()
    await communicator.disconnect()


async def test_sync_disconnect_runs_once_with_the_code() -> None:
    SyncEcho.disconnects = []
    communicator = WebsocketCommunicator(SyncEcho.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.disconnect(code=4321)
    assert SyncEcho.disconnects == [4321]


@pytest.mark.parametrize("how", ["close", "raise"])
async def test_deny_at_handshake(how: str) -> None:
    class Denier(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            if how == "close":
                await self.close()
            else:
                raise DenyConnection()

    communicator = WebsocketCommunicator(Denier.as_asgi(), "/ws/")
    assert await communicator.connect() == (False, 1000)
    await communicator.disconnect()


class Upper(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"echo": content["text"].upper()})


class SyncUpper(JsonWebsocketConsumer):
    def receive_json(self, content: Any, **kwargs: Any) -> None:
        self.send_json({"echo": content["text"].upper()})


@pytest.mark.parametrize("consumer", [Upper, SyncUpper])
async def test_json_round_trip(consumer: type[Any]) -> None:
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_json_to({"text": "héllo"})
    assert await communicator.receive_json_from() == {"echo": "HÉLLO"}
    await communicator.disconnect()


async def test_json_codec_is_overridable() -> None:
    class Sorted(Upper):
        @classmethod
        async def encode_json(cls, content: Any) -> str:
            return json.dumps(content, sort_keys=True, separators=(",", ":"))

        async def receive_json(self, content: Any, **kwargs: Any) -> None:
            await self.send_json({"b": 1, "a": content})

    communicator = WebsocketCommunicator(Sorted.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_json_to([1])
    assert await communicator.receive_from() == '{"a":[1],"b":1}'
    await communicator.disconnect()


async def test_json_consumer_refuses_binary_frames() -> None:
    communicator = WebsocketCommunicator(Upper.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_to(bytes_data=b"{}")
    with pytest.raises(ValueError, match="binary frame"):
        await communicator.wait(1)


class Room(AsyncJsonWebsocketConsumer):
    """Joins 'room' through the groups attribute; relays room.message events."""

    groups = ["room"]

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        assert self.channel_layer is not None
        await self.channel_layer.group_send("room", {"type": "room.message", "text": content})

    async def room_message(self, event: dict[str, Any]) -> None:
        await self.send_json(event["text"])


async def test_group_broadcast_between_two_consumers_and_leave_on_disconnect() -> None:
    first = WebsocketCommunicator(Room.as_asgi(), "/ws/")
    second = WebsocketCommunicator(Room.as_asgi(), "/ws/")
    await first.connect()
    await second.connect()
    await first.send_json_to("hi")
    assert await first.receive_json_from() == "hi"
    assert await second.receive_json_from() == "hi"
    await second.disconnect()
    await first.send_json_to("still here?")
    assert await first.receive_json_from() == "still here?"
    assert await second.receive_nothing()
    await first.disconnect()
