"""What the pub/sub layer does where the durable contract asks for storage (the contract tests
that need storage are not collected for it): a channel keeps messages only while subscribed."""

from __future__ import annotations

import asyncio
import os

from channel_layers.redis_pubsub import RedisPubSubChannelLayer


async def test_only_subscribed_channels_get_messages(redis_url: str) -> None:
    layer = RedisPubSubChannelLayer(hosts=[redis_url], prefix=f"test-{os.urandom(4).hex()}")
    try:
        # new_channel() subscribes at once: a send that comes before the first receive is kept.
        local = await layer.new_channel()
        await layer.send(local, {"type": "early"})
        assert await asyncio.wait_for(layer.receive(local), 2) == {"type": "early"}

        # A plain channel nobody receives on is not subscribed: the message is dropped.
        await layer.send("plain.channel", {"type": "unheard"})
        receiving = asyncio.ensure_future(layer.receive("plain.channel"))
        await asyncio.sleep(0.2)  # the receive subscribes; nothing is replayed
        assert not receiving.done()
        await layer.send("plain.channel", {"type": "heard"})
        assert await asyncio.wait_for(receiving, 2) == {"type": "heard"}
    finally:
        await layer.close()
