"""RedisChannelLayer beyond the contract: round trips, idle waits, sharding, dead processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections import Counter
from typing import Any, cast

import pytest
import redis

from channel_layers.base import CapacityPattern, ChannelFull
from channel_layers.redis import RedisChannelLayer
from channel_layers.redis.local import SWEEP_MIN

# Commands Redis counts when our Lua scripts run them: they cost no round trip of their own.
SCRIPT_INNER = {
    "lindex",
    "lpop",
    "llen",
    "hget",
    "hincrby",
    "hmget",
    "hset",
    "hdel",
    "rpush",
    "pexpire",
    "zremrangebyscore",
    "zrange",
    "exists",
    "zscore",
    "del",  # DRAIN drops the counts of an empty process list (the layer itself never DELs here)
}
# Commands of the connection handshake and of the test's own bookkeeping.
# (Redis 7 names subcommands, "client|setinfo"; Redis 6.2 counts them under "client".)
NOT_COUNTED = {"client|setinfo", "client", "hello", "info", "config|resetstat", "config", "select"}


def command_calls(url: str) -> Counter[str]:
    """Calls per command since the last reset, from INFO commandstats."""
    stats = redis.Redis.from_url(url).info("commandstats")
    return Counter({name[len("cmdstat_") :]: int(v["calls"]) for name, v in stats.items()})


def round_trips(calls: Counter[str]) -> int:
    """Commands a client sent (pipelined ones each count, script internals do not)."""
    return sum(n for name, n in calls.items() if name not in SCRIPT_INNER | NOT_COUNTED)


def reset_stats(url: str) -> None:
    redis.Redis.from_url(url).config_resetstat()


@pytest.fixture
def private_url(redis_servers: Any) -> str:
    """A Redis nobody else uses, so its command statistics are ours alone."""
    url: str = redis_servers.start().url
    return url


async def test_send_and_receive_cost_few_redis_commands(private_url: str) -> None:
    layer = RedisChannelLayer(hosts=[private_url])
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "warm"})
    await layer.receive(channel)
    await asyncio.sleep(0.05)  # let the pop loop settle
    reset_stats(private_url)
    for number in range(50):
        await layer.send(channel, {"type": "m", "n": number})
    sends = command_calls(private_url)
    # One EVALSHA per send, plus one DRAIN written together with the first (see below).
    assert sends["evalsha"] == 51 and round_trips(sends) == 51, sends

    reset_stats(private_url)
    for number in range(50):
        assert (await layer.receive(channel))["n"] == number
    await asyncio.sleep(0.05)
    receives = command_calls(private_url)
    # The 50 queued messages come back in one batch: a couple of commands, not one per message.
    assert round_trips(receives) <= 3, receives

    reset_stats(private_url)
    for number in range(20):  # ping-pong: each receive waits for its message
        waiting = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.005)
        await layer.send(channel, {"type": "m", "n": number})
        assert (await waiting)["n"] == number
    await asyncio.sleep(0.05)
    ping_pong = command_calls(private_url)
    # send (EVALSHA) + BLPOP per message: no DRAIN in front of each BLPOP while the list runs
    # dry (it would add a round trip to the latency); one DRAIN per 16 takes the counts down.
    assert ping_pong["blpop"] <= 20 + 2 and round_trips(ping_pong) <= 20 * 2 + 4, ping_pong
    await layer.flush()
    await layer.close()


async def test_a_send_to_a_channel_of_this_process_brings_the_message_back(
    private_url: str,
) -> None:
    """Sending to a channel this process receives from writes SEND and a DRAIN together: the
    message is stored in Redis and back in the local queue when send() returns, so the receive()
    that follows costs no round trip of its own (one round trip per send+receive, not two)."""
    layer = RedisChannelLayer(hosts=[private_url], capacity=3)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "warm"})
    await layer.receive(channel)
    await asyncio.sleep(0.05)
    reset_stats(private_url)
    queue = layer._state().queues[channel]
    for number in range(20):
        await layer.send(channel, {"type": "m", "n": number})
        assert len(queue.entries) == 1  # back already: nothing left to wait for
        assert (await layer.receive(channel))["n"] == number
    calls = command_calls(private_url)
    assert calls["evalsha"] == 40 and round_trips(calls) == 40, calls  # 20 x (SEND + DRAIN)
    # Capacity still holds: once the local queue has a message, sends count in Redis again.
    for number in range(4):
        await layer.send(channel, {"type": "m", "n": number})
    with pytest.raises(ChannelFull):
        await layer.send(channel, {"type": "full"})
    assert [(await layer.receive(channel))["n"] for _ in range(4)] == [0, 1, 2, 3]
    await layer.flush()
    await layer.close()


async def test_sends_on_the_open_connection_survive_a_script_flush(private_url: str) -> None:
    """A send on the open connection (with or without the DRAIN of this process's channel)
    that meets NOSCRIPT (Redis restarted, or SCRIPT FLUSH) loads the script and is sent again:
    no error, no message lost or doubled."""
    layer = RedisChannelLayer(hosts=[private_url])
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "warm"})
    await layer.receive(channel)
    await layer.send("plain", {"type": "warm"})
    await layer.receive("plain")
    for number in range(3):
        redis.Redis.from_url(private_url).script_flush()
        await layer.send(channel, {"type": "m", "n": number})
        assert await asyncio.wait_for(layer.receive(channel), 5) == {"type": "m", "n": number}
        redis.Redis.from_url(private_url).script_flush()
        await layer.send("plain", {"type": "p", "n": number})
        assert await asyncio.wait_for(layer.receive("plain"), 5) == {"type": "p", "n": number}
    await layer.flush()
    await layer.close()


@pytest.mark.parametrize("capacities", [None, {"other.*": 5}], ids=["one-trip", "per-shard"])
async def test_group_send_costs_one_command_on_one_server(
    private_url: str, capacities: dict[CapacityPattern, int] | None
) -> None:
    """One plain server: one script call per group_send. With per-channel capacities (matched
    in Python) or several shards: one call for the members, then one per shard."""
    layer = RedisChannelLayer(hosts=[private_url], channel_capacity=capacities)
    channels = [await layer.new_channel() for _ in range(10)]
    for channel in channels:
        await layer.group_add("room", channel)
    await layer.send("plain.member", {"type": "warm"})
    await layer.group_add("room", "plain.member")
    await layer.group_send("room", {"type": "warm"})  # loads the scripts
    reset_stats(private_url)
    for _ in range(10):
        await layer.group_send("room", {"type": "hello"})
    calls = command_calls(private_url)
    expected = 10 if capacities is None else 20
    assert calls["evalsha"] == expected and round_trips(calls) == expected, calls
    for channel in channels:
        assert [(await layer.receive(channel))["type"] for _ in range(11)] == ["warm"] + [
            "hello"
        ] * 10
    assert layer.stats.group_deliveries == 121
    await layer.flush()
    await layer.close()


async def test_a_group_message_is_stored_once_per_process_and_decoded_into_copies(
    redis_url: str,
) -> None:
    layer = RedisChannelLayer(hosts=[redis_url], prefix="once", capacity=2)
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("room", channel)
    client = redis.Redis.from_url(redis_url)
    key = layer.channel_key(channels[0])  # the process list all three share
    await layer.group_send("room", {"type": "news", "items": [1, 2]})
    entries = client.lrange(key, 0, -1)
    assert len(entries) == 1
    assert sorted(cast(bytes, entries[0]).split(b"|")[1].split(b",")) == sorted(
        c.encode() for c in channels
    )
    # No counts while the list is shorter than the capacity: nobody can be full (scripts.py).
    assert client.hgetall(key + ":n") == {}
    first = await layer.receive(channels[0])
    first["items"].append(3)  # one receiver's copy is its own
    assert [await layer.receive(c) for c in channels[1:]] == [{"type": "news", "items": [1, 2]}] * 2
    assert client.llen(key) == 0
    await layer.group_send("room", {"type": "news", "items": []})  # drained counts went down:
    await layer.group_send("room", {"type": "news", "items": []})  # two more fit (capacity 2)
    await layer.group_send("room", {"type": "news", "items": []})  # the third is dropped
    assert client.hgetall(key + ":n") == {c.encode(): b"2" for c in channels}
    assert layer.stats.group_deliveries == 9
    await layer.flush()
    await layer.close()


async def test_group_capacity_is_exact_once_the_process_list_reaches_it(redis_url: str) -> None:
    """The counts are implicit while the process list is shorter than the capacity; the
    group_send that finds it that long counts its entries first, so only the member that is
    really full misses the message."""
    layer = RedisChannelLayer(hosts=[redis_url], prefix="counted", capacity=2)
    full, *others = [await layer.new_channel() for _ in range(3)]
    for channel in (full, *others):
        await layer.group_add("room", channel)
    client = redis.Redis.from_url(redis_url)
    key = layer.channel_key(full)
    await layer.send(full, {"type": "own", "n": 1})
    await layer.send(full, {"type": "own", "n": 2})
    assert client.hgetall(key + ":n") == {}  # one entry when the second send came: uncounted
    await layer.group_send("room", {"type": "news"})
    assert client.hgetall(key + ":n") == {full.encode(): b"2", **{c.encode(): b"1" for c in others}}
    with pytest.raises(ChannelFull):
        await layer.send(full, {"type": "own", "n": 3})
    assert [(await layer.receive(full))["n"] for _ in range(2)] == [1, 2]
    assert [(await layer.receive(c))["type"] for c in others] == ["news", "news"]
    assert layer.stats.group_deliveries == 2
    await layer.flush()
    await layer.close()


async def test_an_idle_receive_outlives_the_socket_timeout(redis_url: str) -> None:
    """channels_redis#422: with a 5 s socket timeout its receives died after 5 s idle."""
    host = {"address": redis_url, "socket_timeout": 0.4}
    layer = RedisChannelLayer(hosts=[host], prefix="idle-test")
    sender = RedisChannelLayer(hosts=[redis_url], prefix="idle-test")
    channel = await layer.new_channel()
    receiving = asyncio.ensure_future(layer.receive(channel))
    plain = asyncio.ensure_future(layer.receive("idle.plain"))
    await asyncio.sleep(1.5)  # several socket timeouts of idleness
    assert not receiving.done() and not plain.done()
    await sender.send(channel, {"type": "late"})
    await sender.send("idle.plain", {"type": "late-plain"})
    assert await asyncio.wait_for(receiving, 2) == {"type": "late"}
    assert await asyncio.wait_for(plain, 2) == {"type": "late-plain"}
    await layer.flush()
    await layer.close()
    await sender.close()


async def test_flush_scans_instead_of_keys(private_url: str) -> None:
    layer = RedisChannelLayer(hosts=[private_url], prefix="mine")
    other = redis.Redis.from_url(private_url)
    other.set("not-mine", b"1")
    for number in range(30):
        await layer.send(f"c{number}", {"type": "m"})
    reset_stats(private_url)
    await layer.flush()
    calls = command_calls(private_url)
    assert calls["scan"] >= 1 and calls["keys"] == 0
    assert other.keys("mine:*") == [] and other.get("not-mine") == b"1"
    await layer.close()


async def test_shards_split_the_channels_and_group_send_reaches_all(redis_servers: Any) -> None:
    urls = [redis_servers.start().url for _ in range(2)]
    layer = RedisChannelLayer(hosts=urls, prefix="shard")
    names = [f"chan{number}" for number in range(40)]
    for name in names:
        await layer.send(name, {"type": "m", "to": name})
        await layer.group_add("everyone", name)
    held = [len(redis.Redis.from_url(url).keys("shard:{*}")) for url in urls]
    assert sum(held) == 40 and min(held) >= 8  # both servers got a fair share
    await layer.group_send("everyone", {"type": "all"})
    for name in names:
        assert (await layer.receive(name))["to"] == name
        assert (await layer.receive(name))["type"] == "all"
    # Another process with the hosts in a different order agrees on where each name lives.
    reordered = RedisChannelLayer(hosts=list(reversed(urls)), prefix="shard")
    await layer.send("chan7", {"type": "again"})
    assert await reordered.receive("chan7") == {"type": "again"}
    await layer.flush()
    await layer.close()
    await reordered.close()


DEAD_PROCESS = """
import asyncio, sys
from channel_layers.base import CapacityPattern, ChannelFull
from channel_layers.redis.local import SWEEP_MIN
from channel_layers.redis import RedisChannelLayer

async def main():
    layer = RedisChannelLayer(hosts=[sys.argv[1]], prefix="dead", heartbeat_ttl=0.5)
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    print(channel, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_memberships_of_a_dead_process_are_purged(redis_url: str) -> None:
    """channels_redis keeps a dead process's memberships for a day and writes to its queue."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(DEAD_PROCESS), redis_url],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    dead_channel = child.stdout.readline().decode().strip()
    layer = RedisChannelLayer(hosts=[redis_url], prefix="dead", heartbeat_ttl=0.5)
    alive = await layer.new_channel()
    await layer.group_add("room", alive)
    client = redis.Redis.from_url(redis_url)
    await layer.group_send("room", {"type": "while-alive"})
    assert client.llen(layer.channel_key(dead_channel)) == 1
    child.kill()  # no cleanup: its heartbeat simply stops
    child.wait()
    await asyncio.sleep(1.2)  # past the heartbeat TTL and the join grace
    client.delete(layer.channel_key(dead_channel))
    await layer.group_send("room", {"type": "after-death"})
    members = client.zrange(layer.group_key("room"), 0, -1)
    assert members == [alive.encode()]
    assert client.llen(layer.channel_key(dead_channel)) == 0  # nothing written to the dead
    assert (await layer.receive(alive))["type"] == "while-alive"
    assert (await layer.receive(alive))["type"] == "after-death"
    await layer.flush()
    await layer.close()


async def test_a_living_process_keeps_its_memberships(redis_url: str) -> None:
    layer = RedisChannelLayer(hosts=[redis_url], prefix="alive", heartbeat_ttl=0.3)
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    await asyncio.sleep(1.0)  # several heartbeat periods
    await layer.group_send("room", {"type": "still"})
    assert await asyncio.wait_for(layer.receive(channel), 1) == {"type": "still"}
    await layer.flush()
    await layer.close()


async def test_channels_redis_host_forms_are_accepted(redis_servers: Any) -> None:
    server = redis_servers.start("--unixsocket", "SOCKET", "--unixsocketperm", "700")
    socket_path = server.directory / "redis.sock"
    # The fixture cannot know the socket path up front: restart with it.
    server.stop()
    server.extra = ("--unixsocket", str(socket_path), "--unixsocketperm", "700")
    server.start()
    forms: list[Any] = [
        [("127.0.0.1", server.port)],
        [f"redis://127.0.0.1:{server.port}/0"],
        [{"address": f"redis://127.0.0.1:{server.port}", "socket_timeout": 3}],
        [{"host": "127.0.0.1", "port": server.port, "db": 1}],
        [f"unix://{socket_path}"],
    ]
    for hosts in forms:
        layer = RedisChannelLayer(hosts=hosts, prefix="forms", channel_capacity={"big.*": 500})
        await layer.send("big.one", {"type": "m", "hosts": repr(hosts)})
        assert await layer.receive("big.one") == {"type": "m", "hosts": repr(hosts)}
        assert layer.get_capacity("big.one") == 500
        await layer.close()
    with pytest.raises(ValueError, match="list of Redis servers"):
        RedisChannelLayer(hosts="redis://localhost")  # a str is a Sequence: refused at runtime


async def test_queues_of_channels_nobody_uses_any_more_are_forgotten(redis_url: str) -> None:
    """One local queue per channel ever received from would leak in a long-running server."""
    layer = RedisChannelLayer(hosts=[redis_url], prefix="sweep")
    state = layer._state()
    waiting_channel = await layer.new_channel()
    waiting = asyncio.ensure_future(layer.receive(waiting_channel))
    for number in range(1500):
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "m", "n": number})
        assert (await layer.receive(channel))["n"] == number
        plain = f"worker-{number}"  # plain channels: a pop loop each, forgotten too
        await layer.send(plain, {"type": "m", "n": number})
        assert (await layer.receive(plain))["n"] == number
    # 3,001 channels were used; a sweep runs whenever the queues outgrow twice what is live.
    assert len(state.queues) <= 2 * SWEEP_MIN + 1
    assert len(state.pollers) <= 2 * SWEEP_MIN + 1
    await layer.send(waiting_channel, {"type": "still-waiting"})  # its receiver was not swept
    assert (await asyncio.wait_for(waiting, 5))["type"] == "still-waiting"
    await layer.flush()
    await layer.close()
