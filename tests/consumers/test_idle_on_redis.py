"""An idle consumer on the Redis layers is one task too (their receive_ready() wakes it), and it
still gets every group message, in order."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

import channel_layers
from channel_layers import BaseChannelLayer
from consumers import AsyncWebsocketConsumer
from consumers.testing import WebsocketCommunicator

BACKENDS = {
    "durable": "channel_layers.redis.RedisChannelLayer",
    "pubsub": "channel_layers.redis_pubsub.RedisPubSubChannelLayer",
}


@pytest.fixture(params=sorted(BACKENDS))
async def redis_layer(
    request: pytest.FixtureRequest, redis_url: str, memory_layer: Any
) -> AsyncIterator[BaseChannelLayer]:
    prefix = f"idle-{os.urandom(4).hex()}"
    config = {"hosts": [redis_url], "prefix": prefix}
    channel_layers.configure({"default": {"BACKEND": BACKENDS[request.param], "CONFIG": config}})
    layer = channel_layers.get_channel_layer()
    assert layer is not None
    yield layer
    await layer.flush()
    await layer.close()


class Room(AsyncWebsocketConsumer):
    groups = ["idle-room"]

    async def room_say(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


async def test_idle_consumers_on_redis_hold_one_task_each(redis_layer: BaseChannelLayer) -> None:
    before = asyncio.all_tasks()
    communicators = [WebsocketCommunicator(Room.as_asgi(), "/ws/") for _ in range(5)]
    for communicator in communicators:
        assert (await communicator.connect())[0]
    await asyncio.sleep(0.2)  # let any worker that looked at the layer at the start end
    ours = [t for t in asyncio.all_tasks() - before if "SerialLoop" in repr(t.get_coro())]
    assert ours == []  # no worker: each consumer is its application task alone
    for number in range(20):
        await redis_layer.group_send("idle-room", {"type": "room.say", "text": str(number)})
    for communicator in communicators:
        got = [await communicator.receive_from(timeout=5) for _ in range(20)]
        assert got == [str(number) for number in range(20)]
    await asyncio.sleep(0.2)
    ours = [t for t in asyncio.all_tasks() - before if "SerialLoop" in repr(t.get_coro())]
    assert ours == []  # idle again
    for communicator in communicators:
        await communicator.disconnect()
