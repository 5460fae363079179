"""An idle consumer on the Redis layers is one task too (their receive_ready() wakes it), and it
still gets every group message, in order."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

import channel_layers
from channel_layers import BaseChannelLayer
from consumers import AsyncWebsocketConsumer
from consumers.serial_loop import LINGER_PERIOD
from consumers.testing import WebsocketCommunicator
from tests.conftest import redis_command
from tests.consumers.test_layer_outage import start_with_aof

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
    # Idle again: each worker lingered on its readiness, then the loop's sweep ended it.
    deadline = time.monotonic() + 4 * LINGER_PERIOD
    while [t for t in asyncio.all_tasks() - before if "SerialLoop" in repr(t.get_coro())]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    for communicator in communicators:
        await communicator.disconnect()


async def test_a_lingering_worker_rides_out_a_redis_outage(
    redis_servers: Any, memory_layer: Any
) -> None:
    """Right after a group message each consumer's worker lingers on the layer's readiness; a
    Redis crash then fails that readiness with LayerUnavailable. The consumer must take it as
    any reader does (wait the outage out), not end: after a restart the room delivers again."""
    redis = redis_servers.start()
    assert redis_command(redis.port, "CONFIG", "SET", "appendonly", "yes").startswith(b"+OK")
    config = {"hosts": [redis.url], "prefix": f"linger-{os.urandom(4).hex()}"}
    channel_layers.configure({"default": {"BACKEND": BACKENDS["durable"], "CONFIG": config}})
    layer = channel_layers.get_channel_layer()
    assert layer is not None
    communicators = [WebsocketCommunicator(Room.as_asgi(), "/ws/") for _ in range(3)]
    try:
        for communicator in communicators:
            assert (await communicator.connect())[0]
        await asyncio.sleep(1.5)  # the append-only file (fsync every second) holds the room
        await layer.group_send("idle-room", {"type": "room.say", "text": "before"})
        for communicator in communicators:
            assert await communicator.receive_from(timeout=5) == "before"
        redis.stop()  # within the linger period of every worker
        await asyncio.sleep(4 * LINGER_PERIOD)
        start_with_aof(redis)
        deadline = time.monotonic() + 10
        heard: list[str] = []
        while len(heard) < len(communicators):
            assert time.monotonic() < deadline, heard
            try:
                await layer.group_send("idle-room", {"type": "room.say", "text": "after"})
            except channel_layers.LayerUnavailable:
                await asyncio.sleep(0.1)
                continue
            heard = []
            for communicator in communicators:
                while not await communicator.receive_nothing(timeout=0.3):
                    heard.append(await communicator.receive_from())
        assert set(heard) == {"after"}
    finally:
        for communicator in communicators:
            await communicator.disconnect()
        await layer.close()
