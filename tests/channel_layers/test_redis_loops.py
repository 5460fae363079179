"""RedisChannelLayer used from one event loop after another (as async_to_sync does in Django's
sync code), and process-local names that belong to another layer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from channel_layers.base import InvalidChannelName
from channel_layers.redis import RedisChannelLayer


def test_nothing_is_lost_when_loops_come_and_go(redis_url: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_url], prefix="loops-test")
    first = async_to_sync(layer.new_channel)()
    second = async_to_sync(layer.new_channel)()

    async def send_then_close(channel: str, message: dict[str, Any]) -> None:
        await layer.send(channel, message)
        await layer.close()

    async def receive_then_close(channel: str) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(layer.receive(channel), 3)
        finally:
            await layer.close()

    async_to_sync(send_then_close)(first, {"type": "to.first"})
    async_to_sync(send_then_close)(second, {"type": "to.second"})
    # Receiving on `second` pops the process list, `first`'s entry included; that loop ends.
    assert async_to_sync(receive_then_close)(second) == {"type": "to.second"}
    assert async_to_sync(receive_then_close)(first) == {"type": "to.first"}


async def test_receive_on_another_layers_local_channel_fails_at_once(redis_url: str) -> None:
    ours = RedisChannelLayer(hosts=[redis_url], prefix="loops-test")
    theirs = RedisChannelLayer(hosts=[redis_url], prefix="loops-test")
    try:
        foreign = await theirs.new_channel()
        with pytest.raises(InvalidChannelName, match="only the layer whose new_channel"):
            await asyncio.wait_for(ours.receive(foreign), 2)
    finally:
        await ours.close()
        await theirs.close()
