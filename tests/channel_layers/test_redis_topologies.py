"""Both Redis layers on a Sentinel-watched master (through a failover) and on a 3-node Cluster."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis

from channel_layers.base import BaseChannelLayer, LayerUnavailable
from channel_layers.redis import RedisChannelLayer
from channel_layers.redis_pubsub import RedisPubSubChannelLayer


async def wait_for_promotion(topology: Any, seconds: float = 15.0) -> None:
    """Wait until the sentinel names the replica as the master."""
    sentinel = redis.Redis(port=topology.sentinel.port)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        address: Any = sentinel.sentinel_get_master_addr_by_name(topology.master_name)
        if address and int(address[1]) == topology.replica.port:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the sentinel did not promote the replica within 15 s")


async def works_within(layer: BaseChannelLayer, channel: str, seconds: float) -> float:
    """Send and receive on ``channel`` until it works; return how long that took."""
    started = time.monotonic()
    waiting: asyncio.Future[Any] | None = None
    while True:
        try:
            if waiting is None or waiting.done():
                waiting = asyncio.ensure_future(layer.receive(channel))
                await asyncio.sleep(0.05)
            await layer.send(channel, {"type": "after-failover"})
            assert await asyncio.wait_for(asyncio.shield(waiting), 1) == {"type": "after-failover"}
            return time.monotonic() - started
        except (LayerUnavailable, TimeoutError):
            assert time.monotonic() - started < seconds, "the layer did not recover in time"
            await asyncio.sleep(0.05)


async def check_failover(topology: Any, layer: BaseChannelLayer) -> None:
    channel = await layer.new_channel()
    waiting = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.05)
    await layer.send(channel, {"type": "before"})
    assert await asyncio.wait_for(waiting, 2) == {"type": "before"}
    topology.master.stop()
    await wait_for_promotion(topology)
    assert await works_within(layer, channel, 5.0) < 5.0
    await layer.close()


async def test_durable_layer_follows_a_sentinel_failover(redis_sentinel: Any) -> None:
    host = {"sentinels": redis_sentinel.sentinels, "master_name": redis_sentinel.master_name}
    await check_failover(redis_sentinel, RedisChannelLayer(hosts=[host], prefix="sentinel"))


async def test_pubsub_layer_follows_a_sentinel_failover(redis_sentinel: Any) -> None:
    host = {
        "sentinels": redis_sentinel.sentinels,
        "master_name": redis_sentinel.master_name,
        "sentinel_kwargs": {"socket_timeout": 1},
    }
    layer = RedisPubSubChannelLayer(hosts=[host], prefix="sentinel")
    await check_failover(redis_sentinel, layer)


async def test_durable_layer_on_a_cluster(redis_cluster: Any) -> None:
    host = {"address": redis_cluster[0].url, "cluster": True}
    layer = RedisChannelLayer(hosts=[host], prefix="cluster")
    locals_ = [await layer.new_channel(f"proc{n}") for n in range(6)]  # several process lists
    plain = [f"plain{n}" for n in range(30)]
    for channel in plain:
        await layer.send(channel, {"type": "m", "to": channel})
    holding = [redis.Redis(port=node.port).dbsize() for node in redis_cluster]
    assert all(count > 0 for count in holding), holding  # spread over every node
    for channel in plain:
        assert await layer.receive(channel) == {"type": "m", "to": channel}
    for channel in [*locals_, *plain[:5]]:
        await layer.group_add("room", channel)
    await layer.group_send("room", {"type": "all"})
    for channel in [*locals_, *plain[:5]]:
        assert await asyncio.wait_for(layer.receive(channel), 2) == {"type": "all"}
    await layer.flush()
    assert [redis.Redis(port=node.port).dbsize() for node in redis_cluster] == [0, 0, 0]
    await layer.close()


async def test_pubsub_layer_on_a_cluster(redis_cluster: Any) -> None:
    """Classic pub/sub is cluster-wide: a publish on one node reaches subscribers on another."""
    subscriber = RedisPubSubChannelLayer(
        hosts=[{"address": redis_cluster[0].url, "cluster": True}], prefix="cluster"
    )
    publisher = RedisPubSubChannelLayer(hosts=[redis_cluster[2].url], prefix="cluster")
    channel = await subscriber.new_channel()
    await subscriber.group_add("room", channel)
    await publisher.send(channel, {"type": "direct"})
    await publisher.group_send("room", {"type": "group"})
    assert await asyncio.wait_for(subscriber.receive(channel), 2) == {"type": "direct"}
    assert await asyncio.wait_for(subscriber.receive(channel), 2) == {"type": "group"}
    await subscriber.close()
    await publisher.close()
