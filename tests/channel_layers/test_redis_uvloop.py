"""The Redis layers on uvloop, the loop the server picks by default when it is installed.

Their own protocol classes once asserted that every transport was an ``asyncio.Transport``,
which uvloop's are not: every send failed inside a server running on uvloop.
"""

from __future__ import annotations

import pytest
import uvloop

from channel_layers.base import BaseChannelLayer
from channel_layers.redis import RedisChannelLayer
from channel_layers.redis_pubsub import RedisPubSubChannelLayer


async def round_trip(layer: BaseChannelLayer) -> list[str]:
    """A direct send and a group send to one channel; what it received, in order."""
    channel = await layer.new_channel()
    await layer.group_add("uvloop-room", channel)
    await layer.send(channel, {"type": "chat.message", "text": "direct"})
    await layer.group_send("uvloop-room", {"type": "chat.message", "text": "group"})
    received = [(await layer.receive(channel))["text"] for _ in range(2)]
    await layer.flush()
    await layer.close()
    return received


@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
def test_redis_layers_work_on_uvloop(redis_url: str, layer_class: type[BaseChannelLayer]) -> None:
    layer = layer_class(hosts=[redis_url], prefix="uvloop-test")  # type: ignore[call-arg]
    assert uvloop.run(round_trip(layer)) == ["direct", "group"]
