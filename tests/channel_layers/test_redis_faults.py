"""Redis going away and coming back, on private servers: bounded errors, recovery, hooks."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable
from typing import Any

import pytest
import redis

from channel_layers.base import LayerUnavailable
from channel_layers.redis import RedisChannelLayer
from channel_layers.redis_pubsub import RedisPubSubChannelLayer


async def unavailable_within(awaitable: Awaitable[Any], seconds: float = 5.0) -> float:
    """Assert that ``awaitable`` raises LayerUnavailable, and return how long that took."""
    started = time.monotonic()
    with pytest.raises(LayerUnavailable, match=r"unavailable|cannot subscribe"):
        await asyncio.wait_for(awaitable, seconds)
    return time.monotonic() - started


async def eventually(awaitable_factory: Any, seconds: float = 5.0) -> Any:
    """Retry ``awaitable_factory()`` while it raises LayerUnavailable, for up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await awaitable_factory()
        except LayerUnavailable:
            if time.monotonic() > deadline:
                raise


async def connected(layer: RedisChannelLayer | RedisPubSubChannelLayer) -> None:
    """Wait (up to 5 s) until the layer's shared connection to its one server is open."""
    deadline = time.monotonic() + 5
    while layer.shards[0].client().ready_connection() is None:
        assert time.monotonic() < deadline, "the layer did not connect within 5 s"
        await asyncio.sleep(0.01)


async def test_durable_layer_fails_fast_while_down_and_recovers(redis_servers: Any) -> None:
    server = redis_servers.start()
    layer = RedisChannelLayer(hosts=[server.url], prefix="fault")
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    waiting = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.1)

    server.stop()
    await unavailable_within(waiting)
    await unavailable_within(layer.send(channel, {"type": "m"}))
    await unavailable_within(layer.group_send("room", {"type": "m"}))
    await unavailable_within(layer.receive(channel))

    # No busy loop: a caller retrying in a tight loop is paced by the shard's cool-down, and
    # the event loop stays free for other work (the HTTP side keeps serving).
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticking = asyncio.ensure_future(ticker())
    attempts = 0
    started = time.monotonic()
    while time.monotonic() - started < 1.5:
        attempts += 1
        with pytest.raises(LayerUnavailable):
            await layer.send("plain", {"type": "m"})
    ticking.cancel()
    assert attempts <= 4
    assert ticks >= 50

    server.start()  # same port, empty data: the layer must find it again by itself
    await eventually(lambda: layer.send(channel, {"type": "back"}))
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "back"}
    await layer.group_add("room", channel)
    await layer.group_send("room", {"type": "group-back"})
    assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "group-back"}
    await layer.close()


async def test_a_server_that_never_answers_fails_within_five_seconds() -> None:
    # The kernel completes the TCP handshake for a listening socket nobody accepts from, so the
    # client connects and then waits for replies that never come: a hung server.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        layer = RedisChannelLayer(hosts=[f"redis://127.0.0.1:{port}"])
        assert await unavailable_within(layer.send("c", {"type": "m"})) < 5
        assert await unavailable_within(layer.receive("c")) < 5
        await layer.close()


async def test_a_receive_on_a_connection_that_stops_answering_fails_within_five_seconds() -> None:
    # The receive finds the shared connection up and drains on it without a pop loop task (the
    # fast path); the per-connection deadline must still bound it.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        layer = RedisChannelLayer(hosts=[f"redis://127.0.0.1:{port}"])
        channel = layer.make_channel_name("specific", layer.client_tag)
        sending = asyncio.ensure_future(layer.send(channel, {"type": "m"}))
        await connected(layer)  # the send waits for its reply
        assert await unavailable_within(layer.receive(channel)) < 5
        with pytest.raises(LayerUnavailable):
            await sending
        await layer.close()


@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
async def test_a_send_on_a_connection_that_stops_answering_fails_within_five_seconds(
    layer_class: type[RedisChannelLayer | RedisPubSubChannelLayer],
) -> None:
    # Once the shared connection is up, a send writes its EVALSHA (durable, alone or with a
    # DRAIN for a channel of this process) or its PUBLISH (pub/sub) on it directly, with no
    # shard.run around it: the connection's deadline must still bound it, as LayerUnavailable
    # with a cool-down.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        layer = layer_class(hosts=[f"redis://127.0.0.1:{port}"])
        first = asyncio.ensure_future(layer.send("c", {"type": "m"}))
        await connected(layer)  # the first send waits for its reply
        assert await unavailable_within(layer.send("c", {"type": "m"})) < 5
        with pytest.raises(LayerUnavailable):
            await first
        assert not layer.shards[0].available()  # cooling down, as after any failure
        await layer.close()


async def test_pubsub_hooks_fire_and_subscriptions_come_back(redis_servers: Any) -> None:
    server = redis_servers.start()
    events: list[str] = []
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        events.append("reconnect")
        reconnected.set()

    layer = RedisPubSubChannelLayer(
        hosts=[server.url],
        prefix="hooks",
        on_disconnect=lambda: events.append("disconnect"),
        on_reconnect=on_reconnect,
    )
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    waiting = asyncio.ensure_future(layer.receive(channel))
    server.stop()
    await asyncio.sleep(0.5)
    assert events == ["disconnect"]
    await unavailable_within(layer.send(channel, {"type": "lost"}))

    server.start()
    await asyncio.wait_for(reconnected.wait(), 5)
    assert events == ["disconnect", "reconnect"]
    await layer.send(channel, {"type": "direct"})
    assert await asyncio.wait_for(waiting, 2) == {"type": "direct"}
    await layer.group_send("room", {"type": "group"})
    assert await asyncio.wait_for(layer.receive(channel), 2) == {"type": "group"}
    await layer.close()


def numsub(url: str, *topics: str) -> list[int]:
    client = redis.Redis.from_url(url)
    return [count for _, count in client.pubsub_numsub(*topics)]


async def test_pubsub_forgets_channels_nobody_receives_from(redis_servers: Any) -> None:
    """channels_redis#276: consumers that left kept 1000 subscriptions and queues forever."""
    server = redis_servers.start()
    layer = RedisPubSubChannelLayer(hosts=[server.url], prefix="leak", idle_timeout=0.3)
    channels = [await layer.new_channel() for _ in range(20)]
    for channel in channels:
        await layer.group_add("room", channel)
        await layer.send(channel, {"type": "unread"})
    keeper = await layer.new_channel()
    keeping = asyncio.ensure_future(layer.receive(keeper))  # a consumer still receiving
    topics = [f"leak:c:{channel}" for channel in channels]
    assert numsub(server.url, *topics) == [1] * 20
    await asyncio.sleep(1.0)
    assert numsub(server.url, *topics) == [0] * 20
    assert numsub(server.url, "leak:g:room") == [0]
    assert redis.Redis.from_url(server.url).pubsub_channels("leak:*") == [
        f"leak:c:{keeper}".encode()
    ]
    await layer.send(keeper, {"type": "still-served"})
    assert await asyncio.wait_for(keeping, 2) == {"type": "still-served"}
    await layer.close()
    assert redis.Redis.from_url(server.url).pubsub_channels("leak:*") == []


async def test_pubsub_group_discard_of_the_last_member_unsubscribes(redis_url: str) -> None:
    layer = RedisPubSubChannelLayer(hosts=[redis_url], prefix="discard")
    first, second = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room", first)
    await layer.group_add("room", second)
    await layer.group_discard("room", first)
    assert numsub(redis_url, "discard:g:room") == [1]
    await layer.group_discard("room", second)
    assert numsub(redis_url, "discard:g:room") == [0]
    await layer.close()


async def test_pubsub_local_queue_is_bounded_and_drops_are_reported(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    layer = RedisPubSubChannelLayer(hosts=[redis_url], prefix="bounded", capacity=3)
    channel = await layer.new_channel()
    with caplog.at_level(logging.WARNING, logger="channel_layers"):
        for number in range(5):
            await layer.send(channel, {"type": "m", "n": number})
        await layer.group_add("room", channel)
        await layer.group_send("room", {"type": "g"})
        await asyncio.sleep(0.2)
    assert [(await layer.receive(channel))["n"] for _ in range(3)] == [0, 1, 2]
    assert layer.stats.dropped_full == 3
    assert any("local queue is full" in record.message for record in caplog.records)
    assert any("'room'" in record.message for record in caplog.records)
    await layer.close()


async def test_pubsub_plain_channel_reaches_every_subscribed_process(redis_url: str) -> None:
    """Documented limit: PUBLISH is a broadcast, so each reader gets its own copy."""
    first = RedisPubSubChannelLayer(hosts=[redis_url], prefix="bcast")
    second = RedisPubSubChannelLayer(hosts=[redis_url], prefix="bcast")
    one = asyncio.ensure_future(first.receive("jobs"))
    two = asyncio.ensure_future(second.receive("jobs"))
    await asyncio.sleep(0.2)
    await first.send("jobs", {"type": "job"})
    assert await asyncio.wait_for(one, 2) == await asyncio.wait_for(two, 2) == {"type": "job"}
    await first.close()
    await second.close()


@pytest.mark.parametrize("layer_class", [RedisChannelLayer, RedisPubSubChannelLayer])
async def test_a_refused_connection_says_so_at_once(
    layer_class: type[RedisChannelLayer] | type[RedisPubSubChannelLayer], free_port: int
) -> None:
    # Issue 17: the pub/sub layer said "cannot subscribe ... (TimeoutError)" after 4.1 s.
    layer = layer_class(hosts=[f"redis://127.0.0.1:{free_port}"], prefix="refused")
    for call in (layer.new_channel(), layer.receive("plain"), layer.send("plain", {"type": "x"})):
        started = time.monotonic()
        with pytest.raises(LayerUnavailable, match="connection refused"):
            await asyncio.wait_for(call, 5)
        assert time.monotonic() - started < 1.5  # at once, give or take the 1 s cooldown
        for shard in layer.shards:
            shard._down_until = 0.0  # each call meets the refusal itself, not the cooldown
    await layer.close()
