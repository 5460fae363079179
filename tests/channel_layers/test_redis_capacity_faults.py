"""Capacity counts stay true across Redis failures (issue 17, item 2).

A private redis-server has every client connection cut (CLIENT KILL: the data stays, as after a
restart with AOF) at seeded random moments while one task sends and another receives on a
process-local channel, so the cut lands on every await of the send, drain and pop paths in
turn. Afterwards, once the channel is empty, its count must be 0 and ``capacity`` sends must fit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time

import pytest

from channel_layers.base import ChannelFull, LayerUnavailable
from channel_layers.redis import RedisChannelLayer, scripts
from tests.conftest import RedisServers, redis_command

CAPACITY = 40


async def send_forever(layer: RedisChannelLayer, channel: str, sent: list[int]) -> None:
    n = 0
    while True:
        try:
            await layer.send(channel, {"type": "m", "n": n})
            sent.append(n)
        except (LayerUnavailable, ChannelFull):
            await asyncio.sleep(0.005)
        n += 1


async def receive_forever(layer: RedisChannelLayer, channel: str, got: list[int]) -> None:
    while True:
        try:
            got.append((await layer.receive(channel))["n"])
        except LayerUnavailable:
            await asyncio.sleep(0.005)


def count_of(port: int, layer: RedisChannelLayer, channel: str) -> bytes:
    counts = scripts.counts_key(layer.channel_key(channel))
    return redis_command(port, "HGET", counts, channel)


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_count_of_an_empty_channel_is_zero_after_any_failures(
    redis_servers: RedisServers, seed: int
) -> None:
    rng = random.Random(seed)
    server = redis_servers.start()
    host = {"address": server.url, "socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    layer = RedisChannelLayer(hosts=[host], prefix=f"t{os.urandom(3).hex()}", capacity=CAPACITY)
    channel = await layer.new_channel()
    sent: list[int] = []
    got: list[int] = []
    tasks = [
        asyncio.create_task(send_forever(layer, channel, sent)),
        asyncio.create_task(receive_forever(layer, channel, got)),
    ]
    for _ in range(12):
        # Each cut lands after the layer recovered from the last one (at least one more send
        # acknowledged), at a random moment: else a loaded machine may only ever cut a connect.
        acknowledged, waited_since = len(sent), time.monotonic()
        while len(sent) == acknowledged and time.monotonic() - waited_since < 10:
            await asyncio.sleep(0.005)
        await asyncio.sleep(rng.uniform(0, 0.03))
        with contextlib.suppress(OSError):
            redis_command(server.port, "CLIENT", "KILL", "TYPE", "normal")
        layer.shards[0]._down_until = 0.0  # no cooldown: more failures per second of test
    tasks[0].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tasks[0]
    assert sent, "no send got through: the test exercised nothing"

    # Recovered: everything acknowledged arrives, then the channel's count is 0.
    deadline = time.monotonic() + 10
    while not set(sent) <= set(got) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert set(sent) <= set(got)
    while count_of(server.port, layer, channel) != b"$-1\r\n" and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert count_of(server.port, layer, channel) == b"$-1\r\n"  # no field: 0
    tasks[1].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tasks[1]
    # No spurious ChannelFull: a drifted count lets fewer than CAPACITY sends in. One more may
    # fit: the cancelled receiver's blocking pop can still be waiting in Redis and take one.
    accepted = 0
    with pytest.raises(ChannelFull):
        for n in range(CAPACITY + 2):
            await layer.send(channel, {"type": "m", "n": n})
            accepted += 1
    assert CAPACITY <= accepted <= CAPACITY + 1, accepted
    await layer.flush()
    await layer.close()


async def test_decrements_pending_when_redis_dies_are_not_lost(
    redis_servers: RedisServers,
) -> None:
    # The bug as reported: entries taken by BLPOP are decremented by the next DRAIN; a DRAIN
    # that failed (Redis down) dropped those decrements, so after the restart (data kept) the
    # empty channel still counted them, for good.
    server = redis_servers.start()
    host = {"address": server.url, "socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    layer = RedisChannelLayer(hosts=[host], prefix=f"t{os.urandom(3).hex()}", capacity=CAPACITY)
    channel = await layer.new_channel()
    taken = 5  # fewer than DRAIN_PENDING_AT: no DRAIN goes out for them while Redis is up
    got: list[int] = []
    # Always a receive waiting (as a consumer's reader): each message is then taken by BLPOP
    # and its decrement waits for a later DRAIN.
    receiver = asyncio.create_task(receive_forever(layer, channel, got))
    for n in range(taken):
        while b"cmd=blpop" not in redis_command(server.port, "CLIENT", "LIST"):
            await asyncio.sleep(0.001)  # until the receive waits in BLPOP
        await layer.send(channel, {"type": "m", "n": n})
        while len(got) <= n:
            await asyncio.sleep(0.001)
    # Not taken down yet (the first message may have come by DRAIN, the rest by BLPOP), or
    # never counted: a list shorter than the capacity keeps no counts (scripts.py, counted).
    counts = [b"$-1\r\n", *(b"$1\r\n%d\r\n" % n for n in (4, 5))]
    assert count_of(server.port, layer, channel) in counts

    redis_command(server.port, "SAVE")  # the data survives the restart (as with AOF)
    server.stop()
    # The receiver retries while Redis is down: its pop loop's DRAINs fail meanwhile.
    await asyncio.sleep(1.5)
    server.start()
    deadline = time.monotonic() + 10
    while count_of(server.port, layer, channel) != b"$-1\r\n" and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert count_of(server.port, layer, channel) == b"$-1\r\n"
    assert got == list(range(taken))
    receiver.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await receiver
    # The whole capacity is free again (a BLPOP still in flight may take one more message).
    accepted = 0
    with contextlib.suppress(ChannelFull):
        for n in range(CAPACITY + 2):
            await layer.send(channel, {"type": "fill", "n": n})
            accepted += 1
    assert CAPACITY <= accepted <= CAPACITY + 1, accepted
    await layer.flush()
    await layer.close()
