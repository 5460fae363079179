"""What SUBSCRIBED and REGISTERED promise across server processes, and retained events of the
whole cluster (consumers/wamp/cluster.py, rounds.py): two real processes on a private Redis,
autobahn-python clients on json, msgpack and cbor. No retries: a race would show as a missed
event or a no_such_procedure."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

from channel_layers.memory import InMemoryChannelLayer
from consumers.wamp import Realm, Router, publish
from consumers.wamp.rounds import newest_per_topic
from consumers.wamp.state import RetainedEvent
from tests.wamp._autobahn import PublishOptions, SubscribeOptions
from tests.wamp.test_cluster import router_process, until, wamp_at

pytestmark = pytest.mark.transports("asyncio")

ROUNDS = 50
ACK = PublishOptions(acknowledge=True)


@pytest.fixture
def prefix() -> str:
    return f"wamp-{os.urandom(4).hex()}"


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
async def test_subscribed_and_registered_hold_across_processes_at_once(
    redis_url: str, prefix: str, serializer: str
) -> None:
    # sync_interval 30 s: only the rounds, not the periodic registry read, can make these pass
    with (
        router_process(redis_url, prefix, sync_interval="30") as (port_a, _),
        router_process(redis_url, prefix, sync_interval="30") as (port_b, _),
    ):
        wamp_a, wamp_b = wamp_at(port_a, serializer), wamp_at(port_b, serializer)
        try:
            a, a2, b = await wamp_a.connect(), await wamp_a.connect(), await wamp_b.connect()
            events: asyncio.Queue[Any] = asyncio.Queue()
            for i in range(ROUNDS):
                topic = f"com.order.t{i}"
                # two subscribers of one new pattern: the first starts the round, the second
                # waits for it; both must hear a publication made the moment they are answered
                await asyncio.gather(
                    a.subscribe(lambda *args: events.put_nowait(("a", *args)), topic),
                    a2.subscribe(lambda *args: events.put_nowait(("a2", *args)), topic),
                )
                await b.publish(topic, i, options=ACK)
                got = {await asyncio.wait_for(events.get(), 5) for _ in range(2)}
                assert got == {("a", i), ("a2", i)}, f"round {i}"

                await b.register(lambda i=i: i, f"com.order.p{i}")
                assert await a.call(f"com.order.p{i}") == i, f"round {i}"
        finally:
            await wamp_a.close()
            await wamp_b.close()


async def test_retained_events_of_every_process_reach_a_new_subscriber(
    redis_url: str, prefix: str
) -> None:
    retain = PublishOptions(retain=True, acknowledge=True)
    exact = SubscribeOptions(get_retained=True, details_arg="details")
    by_prefix = SubscribeOptions(get_retained=True, match="prefix", details_arg="details")
    with (
        router_process(redis_url, prefix, max_retained_events="2") as (port_a, _),
        router_process(redis_url, prefix, max_retained_events="2") as (port_b, _),
    ):
        wamp_a, wamp_b = wamp_at(port_a, "cbor"), wamp_at(port_b, "msgpack")
        try:
            a, b = await wamp_a.connect(), await wamp_b.connect()
            await b.publish("com.kept.status", "from b", options=retain)
            inbox: asyncio.Queue[Any] = asyncio.Queue()

            def received(*args: Any, details: Any) -> None:
                inbox.put_nowait((args, details.topic, bool(details.retained)))

            await a.subscribe(received, "com.kept.status", options=exact)
            assert await asyncio.wait_for(inbox.get(), 5) == (("from b",), "com.kept.status", True)

            # published later on the other process: the newer one wins for a new subscriber
            await a.publish("com.kept.status", "from a", options=retain)
            late = await wamp_b.connect()
            await late.subscribe(received, "com.kept.status", options=exact)
            assert await asyncio.wait_for(inbox.get(), 5) == (("from a",), "com.kept.status", True)

            # each process keeps at most max_retained_events (2) topics: b forgets its oldest
            for topic in ("com.kept.x", "com.kept.y", "com.kept.z"):
                await b.publish(topic, topic, options=retain)
            other = await wamp_a.connect()
            await other.subscribe(received, "com.kept.x", options=exact)
            # a live event queues behind any retained one: it must come first
            await a.publish("com.kept.x", "live", options=ACK)
            assert await asyncio.wait_for(inbox.get(), 5) == (("live",), "com.kept.x", False)
            # and a replay holds at most max_retained_events topics, the latest (a's com.kept
            # .status is older than y and z)
            await other.subscribe(received, "com.kept.", options=by_prefix)
            got = {await asyncio.wait_for(inbox.get(), 5) for _ in range(2)}
            assert got == {
                (("com.kept.y",), "com.kept.y", True),
                (("com.kept.z",), "com.kept.z", True),
            }
            await a.publish("com.kept.w", "live", options=ACK)
            assert await asyncio.wait_for(inbox.get(), 5) == (("live",), "com.kept.w", False)
        finally:
            await wamp_a.close()
            await wamp_b.close()


async def test_a_node_that_stops_answering_delays_one_round_only() -> None:
    layer, interval = InMemoryChannelLayer(), 2.0
    a = Router([Realm("realm1")], channel_layer=layer, sync_interval=interval)
    b = Router([Realm("realm1")], channel_layer=layer, sync_interval=interval)
    a.join("realm1")
    b.join("realm1")
    realm_a, realm_b = a.realm("realm1"), b.realm("realm1")
    assert realm_a is not None and realm_a.cluster is not None and realm_b is not None
    cluster = realm_a.cluster
    await asyncio.gather(a.joined(), b.joined())

    async def subscribe(topic: str) -> float:
        answered = asyncio.Event()
        started = time.monotonic()
        cluster.prepare_subscribe(topic, "exact", False, lambda events: answered.set())
        await asyncio.wait_for(answered.wait(), 3 * interval)
        return time.monotonic() - started

    assert await subscribe("com.one") < interval  # b answered
    assert b.node is not None and a.node is not None
    b.node.stop()  # b hangs: it stays in the registry (the memory registry never purges)
    assert await subscribe("com.two") >= interval  # waited for b, as long as the bound
    assert await subscribe("com.three") < interval  # b is not waited for again
    a.node.stop()


async def test_a_session_that_leaves_before_subscribed_leaves_nothing_behind() -> None:
    layer, interval = InMemoryChannelLayer(), 0.5
    a = Router([Realm("realm1")], channel_layer=layer, sync_interval=interval)
    b = Router([Realm("realm1")], channel_layer=layer, sync_interval=interval)
    a.bind()
    b.bind()
    await asyncio.gather(a.joined(), b.joined())
    assert b.node is not None and a.node is not None
    b.node.stop()  # b never answers: the round below lasts the whole sync_interval
    realm_a = a.realm("realm1")
    assert realm_a is not None and realm_a.cluster is not None
    cluster = realm_a.cluster
    component = a.join("realm1")
    component.subscribe("com.gone", lambda: None)
    assert cluster.subscribing.pending  # SUBSCRIBED is not there yet
    component.leave()
    spaces = a.node.registry
    await until(
        lambda: not cluster.subscribing.pending and not cluster.subscribing.claimed,
        timeout=3 * interval,
    )
    await until_async(lambda: _interest(spaces, cluster.sub_space), timeout=3 * interval)
    assert cluster.is_empty() and realm_a.is_idle()
    a.node.stop()


async def _interest(registry: Any, space: str) -> bool:
    return not await registry.entries(space)


async def until_async(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "the registry kept the interest"
        await asyncio.sleep(0.01)


async def test_publish_from_a_process_that_just_started_reaches_the_others() -> None:
    layer = InMemoryChannelLayer()
    b = Router([Realm("realm1")], channel_layer=layer, sync_interval=30)
    events: asyncio.Queue[Any] = asyncio.Queue()
    b.join("realm1").subscribe("com.early", lambda *args: events.put_nowait(args))
    await b.joined()
    realm_b = b.realm("realm1")
    assert realm_b is not None and realm_b.cluster is not None
    await until(lambda: realm_b.cluster is not None and realm_b.cluster.subscribing.claimed)
    await until(lambda: realm_b.cluster is not None and not realm_b.cluster.subscribing.pending)
    # a starts now; publish() is its first act: it must wait for a's first registry read
    a = Router([Realm("realm1")], channel_layer=layer, sync_interval=30)
    await publish("realm1", "com.early", 1)
    assert await asyncio.wait_for(events.get(), 5) == (1,)
    for router in (a, b):
        assert router.node is not None
        router.node.stop()


def test_newest_per_topic_keeps_the_latest_and_the_bound() -> None:
    def event(topic: str, publication: int, published: float) -> RetainedEvent:
        return RetainedEvent(topic, publication, None, None, published=published)

    events = [event("t.a", 1, 5.0), event("t.a", 2, 7.0), event("t.b", 3, 6.0)]
    assert newest_per_topic(events, 10) == [events[2], events[1]]
    assert newest_per_topic(events, 1) == [events[1]]
    assert newest_per_topic(events, 0) == []
