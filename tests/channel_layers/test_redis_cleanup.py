"""What the Redis layers leave behind when consumers leave and layers close (issue 18)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from channel_layers.redis import RedisChannelLayer
from channel_layers.redis.pubsub import RELEASE_AFTER
from channel_layers.redis_pubsub import RedisPubSubChannelLayer
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


def subscriptions(port: int, prefix: str) -> int:
    """How many topics under ``prefix`` the server has subscribers for."""
    reply = redis_command(port, "PUBSUB", "CHANNELS", f"{prefix}:*")
    return int(reply.split(b"\r\n", 1)[0][1:])


async def test_pubsub_releases_the_subscriptions_of_consumers_that_left(
    redis_servers: RedisServers,
) -> None:
    server = redis_servers.start()
    prefix = f"t{os.urandom(3).hex()}"
    layer = RedisPubSubChannelLayer(hosts=[server.url], prefix=prefix)  # idle_timeout 60 s
    channels = [await layer.new_channel() for _ in range(100)]
    for channel in channels:
        await layer.group_add("room", channel)
    readers = [asyncio.create_task(layer.receive(channel)) for channel in channels]
    await asyncio.sleep(0.05)
    assert subscriptions(server.port, prefix) == 101  # 100 channels and the group
    for channel, reader in zip(channels, readers, strict=True):  # the consumers leave
        reader.cancel()
        await layer.group_discard("room", channel)
    await asyncio.gather(*readers, return_exceptions=True)
    left_at = time.monotonic()
    while subscriptions(server.port, prefix) and time.monotonic() - left_at < 10:
        await asyncio.sleep(0.05)
    assert subscriptions(server.port, prefix) == 0
    assert time.monotonic() - left_at < RELEASE_AFTER + 1  # not idle_timeout (60 s)
    await layer.close()


async def test_pubsub_keeps_a_channel_whose_receive_comes_back(redis_url: str) -> None:
    layer = RedisPubSubChannelLayer(hosts=[redis_url], prefix=f"t{os.urandom(3).hex()}")
    channel = await layer.new_channel()
    for _ in range(3):  # a receive() under a short timeout, again and again
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(layer.receive(channel), RELEASE_AFTER / 2)
    await layer.send(channel, {"type": "still here"})
    assert await asyncio.wait_for(layer.receive(channel), 2) == {"type": "still here"}
    await layer.close()


class SlowProxy:
    """A real TCP proxy to a Redis that holds every client-to-server chunk for ``delay`` s
    (order kept): what a client writes takes that long to take effect."""

    def __init__(self, port: int, delay: float) -> None:
        self.port, self.delay = port, delay
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"redis://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.port)
        for pipe in (self._pipe(client_r, server_w, self.delay), self._pipe(server_r, client_w, 0)):
            task = asyncio.create_task(pipe)
            self.tasks.add(task)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
    ) -> None:
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, chunk = await chunks.get()
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                writer.write(chunk)

        forwarder = asyncio.create_task(forward())
        self.tasks.add(forwarder)
        while chunk := await reader.read(65536):
            chunks.put_nowait((time.monotonic() + delay, chunk))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.server is not None:
            self.server.close()


async def test_pubsub_flush_returns_once_redis_has_unsubscribed(
    redis_servers: RedisServers,
) -> None:
    server = redis_servers.start()
    proxy = SlowProxy(server.port, delay=0.3)  # commands reach Redis 0.3 s after written
    prefix = f"t{os.urandom(3).hex()}"
    layer = RedisPubSubChannelLayer(hosts=[await proxy.start()], prefix=prefix)
    await asyncio.gather(*(layer.new_channel() for _ in range(100)))
    assert subscriptions(server.port, prefix) == 100
    await layer.flush()
    assert subscriptions(server.port, prefix) == 0  # at once, not some time later
    await layer.close()
    await proxy.close()
