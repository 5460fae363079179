"""The registry capability (channel_layers/registry.py) on the memory and Redis layers, then
what only Redis can show: a dead process's members are gone within the heartbeat bound."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from channel_layers.base import BaseChannelLayer
from channel_layers.memory import InMemoryChannelLayer
from channel_layers.registry import Registry


def redis_layer(kind: str, url: str, prefix: str, heartbeat_ttl: float = 30) -> BaseChannelLayer:
    """The durable ("redis") or pub/sub ("pubsub") Redis layer, its registry's heartbeat set."""
    from channel_layers.redis import RedisChannelLayer, RedisPubSubChannelLayer
    from channel_layers.redis.registry import RedisPubSubRegistry

    if kind == "redis":
        return RedisChannelLayer(hosts=[url], prefix=prefix, heartbeat_ttl=heartbeat_ttl)
    layer = RedisPubSubChannelLayer(hosts=[url], prefix=prefix)
    registry = layer.registry()
    assert isinstance(registry, RedisPubSubRegistry)
    registry.heartbeat_ttl = heartbeat_ttl
    return layer


@pytest.fixture(params=["memory", "redis", "pubsub"])
async def layer(request: pytest.FixtureRequest) -> AsyncIterator[BaseChannelLayer]:
    if request.param == "memory":
        made: BaseChannelLayer = InMemoryChannelLayer()
    else:
        url = request.getfixturevalue("redis_url")
        made = redis_layer(request.param, url, f"reg-{os.urandom(4).hex()}")
    yield made
    await made.flush()
    await made.close()


async def test_an_exclusive_claim_is_granted_once(layer: BaseChannelLayer) -> None:
    registry = layer.registry()
    node = await layer.new_channel("wamp")
    first = await registry.claim("s", "com.add", "a", node, exclusive=True, value="17")
    second = await registry.claim("s", "com.add", "b", node, exclusive=True, value="18")
    shared = await registry.claim("s", "com.add", "c", node, exclusive=False, policy="x")
    assert first.granted and not second.granted and not shared.granted
    assert (second.exclusive, second.value) == (True, "17")
    assert [entry.member for entry in await registry.entries("s")] == ["a"]


async def test_shared_claims_need_the_same_policy(layer: BaseChannelLayer) -> None:
    registry = layer.registry()
    node = await layer.new_channel("wamp")
    assert (await registry.claim("s", "k", "a", node, exclusive=False, policy="rr")).granted
    assert (await registry.claim("s", "k", "b", node, exclusive=False, policy="rr")).granted
    other = await registry.claim("s", "k", "c", node, exclusive=False, policy="first")
    assert not other.granted and other.policy == "rr"
    assert not (await registry.claim("s", "k", "b", node, exclusive=False, policy="rr")).granted
    entries = await registry.entries("s")
    assert [entry.member for entry in entries] == ["a", "b"]
    assert entries[0].seq < entries[1].seq and entries[0].node == node


async def test_concurrent_claims_grant_exactly_one(layer: BaseChannelLayer) -> None:
    registry = layer.registry()
    node = await layer.new_channel("wamp")
    claims = [
        registry.claim("s", "race", f"m{i}", node, exclusive=True, value=str(i)) for i in range(20)
    ]
    outcomes = await asyncio.gather(*claims)
    assert sum(claim.granted for claim in outcomes) == 1
    assert len({claim.value for claim in outcomes}) == 1  # every loser saw the winner's value


async def test_release_frees_the_key(layer: BaseChannelLayer) -> None:
    registry = layer.registry()
    node = await layer.new_channel("wamp")
    await registry.claim("s", "k", "a", node, exclusive=True, value="1")
    assert await registry.release("s", "a")
    assert not await registry.release("s", "a")
    again = await registry.claim("s", "k", "b", node, exclusive=True, value="2")
    assert again.granted and again.value == "2"


async def test_release_last_says_whether_the_key_went(layer: BaseChannelLayer) -> None:
    registry = layer.registry()
    node = await layer.new_channel("wamp")
    for member in ("a", "b"):
        assert (await registry.claim("s", "k", member, node, exclusive=False)).granted
    assert await registry.release_last("s", "a") is False  # b still holds k
    assert await registry.release_last("s", "a") is None  # not there any more
    assert await registry.release_last("s", "b") is True  # the last one: k is gone
    again = await registry.claim("s", "k", "c", node, exclusive=False, value="new")
    assert again.granted and again.value == "new"  # a new key: the claimer's value


async def test_the_default_release_last_reads_around_the_release(
    layer: BaseChannelLayer,
) -> None:
    registry = layer.registry()
    node = await layer.new_channel("wamp")
    for member in ("a", "b"):
        await registry.claim("s", "k", member, node, exclusive=False)
    default = Registry.release_last  # what a backend without its own atomic step does
    assert await default(registry, "s", "a") is False
    assert await default(registry, "s", "a") is None
    assert await default(registry, "s", "b") is True


async def test_a_sweep_lists_like_entries(layer: BaseChannelLayer) -> None:
    registry = layer.registry()
    node = await layer.new_channel("wamp")
    await registry.claim("s", "k", "m", node, exclusive=True, value="v")
    live, purged = await registry.sweep("s")
    assert live == await registry.entries("s") and purged == []  # no node died


async def test_leave_removes_a_nodes_members_only(layer: BaseChannelLayer) -> None:
    registry = layer.registry()
    one, two = await layer.new_channel("wamp"), await layer.new_channel("wamp")
    await registry.claim("s", "k", "a", one, exclusive=False)
    await registry.claim("s", "k", "b", two, exclusive=False)
    await registry.claim("s", "j", "c", one, exclusive=True)
    assert await registry.leave("s", one) == 2
    assert [(e.key, e.member) for e in await registry.entries("s")] == [("k", "b")]
    assert await registry.alive([one, two]) == {one, two}


async def test_spaces_are_separate_and_values_checked(layer: BaseChannelLayer) -> None:
    registry: Registry = layer.registry()
    node = await layer.new_channel("wamp")
    await registry.claim("s1", "k", "a", node, exclusive=True)
    assert (await registry.claim("s2", "k", "a", node, exclusive=True)).granted
    assert await registry.entries("none") == []
    with pytest.raises(ValueError, match="x1f"):
        await registry.claim("s", "bad\x1fkey", "a", node, exclusive=True)


# --- Redis: members die with their process ------------------------------------------------

HOLDER = """
import asyncio, sys
from tests.channel_layers.test_registry import redis_layer

async def main():
    layer = redis_layer(sys.argv[3], sys.argv[1], sys.argv[2], heartbeat_ttl=0.6)
    node = await layer.new_channel("wamp")
    exclusive = len(sys.argv) < 5  # a fourth argument: a shared claim
    claim = await layer.registry().claim("s", "k", "held", node, exclusive=exclusive, value="1")
    print(node, claim.granted, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.parametrize("kind", ["redis", "pubsub"])
async def test_a_killed_process_loses_its_claims_within_the_heartbeat(
    redis_url: str, kind: str
) -> None:
    prefix = f"reg-{os.urandom(4).hex()}"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), redis_url, prefix, kind],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    layer = redis_layer(kind, redis_url, prefix, heartbeat_ttl=0.6)
    try:
        assert holder.stdout is not None
        node, granted = holder.stdout.readline().decode().split()
        assert granted == "True"
        registry = layer.registry()
        mine = await layer.new_channel("wamp")
        assert not (await registry.claim("s", "k", "late", mine, exclusive=True)).granted
        assert await registry.alive([node, mine]) == {node, mine}
        holder.kill()
        holder.wait()
        killed = time.monotonic()
        while not (await registry.claim("s", "k", "late", mine, exclusive=True)).granted:
            assert time.monotonic() - killed < 0.6 + 1.0, "the dead claim outlived its bound"
            await asyncio.sleep(0.05)
        assert await registry.alive([node, mine]) == {mine}
        assert [entry.member for entry in await registry.entries("s")] == ["late"]
    finally:
        holder.kill()
        await layer.flush()
        await layer.close()


@pytest.mark.parametrize("kind", ["redis", "pubsub"])
async def test_a_sweep_reports_each_dead_member_once(redis_url: str, kind: str) -> None:
    prefix = f"reg-{os.urandom(4).hex()}"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), redis_url, prefix, kind],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    layer = redis_layer(kind, redis_url, prefix, heartbeat_ttl=0.6)
    try:
        assert holder.stdout is not None
        node, _ = holder.stdout.readline().decode().split()
        registry = layer.registry()
        mine = await layer.new_channel("wamp")
        await registry.claim("s", "other", "mine", mine, exclusive=True)
        live, purged = await registry.sweep("s")
        assert [entry.member for entry in live] == ["held", "mine"] and purged == []
        holder.kill()
        holder.wait()
        killed = time.monotonic()
        while not purged:
            assert time.monotonic() - killed < 0.6 + 1.0, "the dead member outlived its bound"
            await asyncio.sleep(0.05)
            live, purged = await registry.sweep("s")
        [dead] = purged  # with its key, node and value: what its claim said
        assert (dead.key, dead.member, dead.node, dead.value) == ("k", "held", node, "1")
        assert [entry.member for entry in live] == ["mine"]
        assert await registry.sweep("s") == (live, [])  # reported once
    finally:
        holder.kill()
        await layer.flush()
        await layer.close()


@pytest.mark.parametrize("kind", ["redis", "pubsub"])
async def test_a_claim_without_purge_leaves_dead_members_to_the_sweep(
    redis_url: str, kind: str
) -> None:
    prefix = f"reg-{os.urandom(4).hex()}"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLDER), redis_url, prefix, kind, "shared"],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
    )
    layer = redis_layer(kind, redis_url, prefix, heartbeat_ttl=0.6)
    try:
        assert holder.stdout is not None
        node, _ = holder.stdout.readline().decode().split()
        registry = layer.registry()
        mine = await layer.new_channel("wamp")
        holder.kill()
        holder.wait()
        killed = time.monotonic()
        while await registry.alive([node]):
            assert time.monotonic() - killed < 0.6 + 1.0, "the dead node outlived its bound"
            await asyncio.sleep(0.05)
        kept = await registry.claim("s", "k", "late", mine, exclusive=False, value="2", purge=False)
        assert kept.granted and kept.value == "1"  # joined the dead member's key, not a new one
        live, purged = await registry.sweep("s")
        assert [entry.member for entry in purged] == ["held"]  # reported, not dropped unseen
        assert [(entry.member, entry.value) for entry in live] == [("late", "1")]
        assert await registry.release_last("s", "late") is True
    finally:
        holder.kill()
        await layer.flush()
        await layer.close()
