"""What the Redis layers leave behind when consumers leave and layers close (issue 18)."""

from __future__ import annotations

import asyncio
import os

from channel_layers.redis import RedisChannelLayer
from tests.conftest import RedisServers, redis_command


def keys_under(port: int, prefix: str) -> bytes:
    return redis_command(port, "KEYS", f"{prefix}:*")  # a private server: KEYS is fine here


async def test_the_durable_layer_leaves_no_key_after_a_normal_disconnect_and_close(
    redis_servers: RedisServers,
) -> None:
    server = redis_servers.start()
    prefix = f"t{os.urandom(3).hex()}"
    layer = RedisChannelLayer(hosts=[server.url], prefix=prefix)
    # Chat consumers' lives: each reader always waits in receive() (so messages are taken by
    # BLPOP and their count decrements wait for a later DRAIN), then they leave and the
    # process closes its layer.
    channels = [await layer.new_channel() for _ in range(4)]
    got: dict[str, list[int]] = {channel: [] for channel in channels}

    async def reader(channel: str) -> None:
        while True:
            got[channel].append((await layer.receive(channel))["n"])

    for channel in channels:
        await layer.group_add("room", channel)
    readers = [asyncio.create_task(reader(channel)) for channel in channels]
    for n in range(5):
        while b"cmd=blpop" not in redis_command(server.port, "CLIENT", "LIST"):
            await asyncio.sleep(0.001)  # the readers wait in BLPOP
        await layer.group_send("room", {"type": "chat", "n": n})
        while any(len(numbers) <= n for numbers in got.values()):
            await asyncio.sleep(0.001)
    for channel, task in zip(channels, readers, strict=True):  # the clients disconnect
        task.cancel()
        await layer.group_discard("room", channel)
    await asyncio.gather(*readers, return_exceptions=True)
    await layer.close()
    assert keys_under(server.port, prefix) == b"*0\r\n"
