"""The default consumer loop on a layer without ``receive_ready()`` (a third-party backend): it
keeps a worker waiting in the layer's receive(), and every ordering rule still holds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import channel_layers
from channel_layers.memory import InMemoryChannelLayer
from consumers import AsyncWebsocketConsumer
from consumers.testing import WebsocketCommunicator


class ThirdPartyLayer(InMemoryChannelLayer):
    """The in-memory layer as a backend that predates the readiness capability."""

    def receive_ready(self, channel: str) -> asyncio.Future[None] | None:  # type: ignore[override]
        return None


@pytest.fixture(autouse=True)
def third_party_layer(memory_layer: Any) -> Iterator[None]:
    channel_layers.configure({"default": {"BACKEND": f"{__name__}.ThirdPartyLayer"}})
    assert isinstance(channel_layers.get_channel_layer(), ThirdPartyLayer)
    yield


class Echo(AsyncWebsocketConsumer):
    """Answers each client message, then sends itself a layer event about it."""

    groups = ["fallback"]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        assert self.channel_layer is not None and self.channel_name is not None
        await self.send(text_data=f"client {text_data}")
        await self.channel_layer.send(self.channel_name, {"type": "echo.event", "n": text_data})

    async def echo_event(self, event: dict[str, Any]) -> None:
        await self.send(text_data=f"layer {event['n']}")


async def test_a_layer_without_readiness_keeps_a_reader_and_works() -> None:
    before = asyncio.all_tasks()
    communicator = WebsocketCommunicator(Echo.as_asgi(), "/ws/")
    await communicator.connect()
    await asyncio.sleep(0.01)
    # The application's task and a worker waiting in the layer's receive(): as before #18.
    assert len(asyncio.all_tasks() - before) == 2
    for number in range(5):
        await communicator.send_to(text_data=str(number))
        assert await communicator.receive_from() == f"client {number}"
        assert await communicator.receive_from() == f"layer {number}"
    layer = channel_layers.get_channel_layer()
    assert layer is not None
    await layer.group_send("fallback", {"type": "echo.event", "n": "group"})
    assert await communicator.receive_from() == "layer group"
    await communicator.disconnect()
    await asyncio.sleep(0.01)
    assert len(asyncio.all_tasks() - before) == 0
