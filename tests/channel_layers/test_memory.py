"""InMemoryChannelLayer's own behaviour, beyond the contract: copying, counters, housekeeping."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from channel_layers.base import InvalidMessage
from channel_layers.memory import InMemoryChannelLayer, copy_value


async def test_every_receiver_gets_a_distinct_object() -> None:
    layer = InMemoryChannelLayer()
    message = {"type": "flat", "text": "hi"}
    await layer.send("one", message)
    received = await layer.receive("one")
    assert received == message and received is not message


async def test_nested_and_unusual_values_are_deep_copied() -> None:
    layer = InMemoryChannelLayer()
    nested = {"coordinates": [1, 2]}
    buffer = bytearray(b"ab")
    pair = ([1], "x")
    await layer.send("one", {"type": "m", "point": nested, "buffer": buffer, "pair": pair})
    nested["coordinates"].append(3)
    buffer.extend(b"c")
    pair[0].append(2)
    received = await layer.receive("one")
    assert received["point"] == {"coordinates": [1, 2]}
    assert received["buffer"] == bytearray(b"ab")
    assert received["pair"] == ([1], "x")


async def test_values_no_serializer_carries_are_refused_like_redis_refuses_them() -> None:
    """Custom objects were deep-copied here and refused by Redis (issue 17, item 6); a key msgpack
    packs but cannot unpack (a tuple) is refused here too."""
    layer = InMemoryChannelLayer()
    with pytest.raises(InvalidMessage, match=r"message\['by'\] key \(1, 2\) has type tuple"):
        await layer.send("one", {"type": "m", "by": {(1, 2): "pair"}})
    with pytest.raises(InvalidMessage, match=r"message\['when'\] has type object"):
        await layer.send("one", {"type": "m", "when": object()})
    assert layer.channels == {}


def test_copy_value_shares_only_immutable_values() -> None:
    value: dict[str, Any] = {"s": "text", "b": b"x", "n": 1, "f": 1.5, "t": True, "z": None}
    value["list"] = [{"k": [1]}]
    copied = copy_value(value)
    assert copied == value
    assert copied["list"] is not value["list"]
    assert copied["list"][0]["k"] is not value["list"][0]["k"]
    assert copied["s"] is value["s"]


async def test_group_members_do_not_share_nested_state() -> None:
    layer = InMemoryChannelLayer()
    for member in ("a", "b"):
        await layer.group_add("room", member)
    await layer.group_send("room", {"type": "m", "point": {"xy": [1]}, "items": [{"n": 1}]})
    first, second = await layer.receive("a"), await layer.receive("b")
    first["point"]["xy"].append(2)
    first["items"][0]["n"] = 99
    assert second["point"] == {"xy": [1]} and second["items"] == [{"n": 1}]


async def test_group_send_never_suspends() -> None:
    """Fan-out is one synchronous pass: no task per member and no interleaving with members."""
    layer = InMemoryChannelLayer()
    members = [await layer.new_channel() for _ in range(1000)]
    for member in members:
        await layer.group_add("big", member)
    sending = layer.group_send("big", {"type": "m"})
    with pytest.raises(StopIteration):
        sending.send(None)  # finished in its first step
    for member in members:
        assert await layer.receive(member) == {"type": "m"}


async def test_stats_count_what_happened() -> None:
    layer = InMemoryChannelLayer(expiry=0.05, capacity=1)
    await layer.group_add("room", "a")
    await layer.group_add("room", "b")
    await layer.send("a", {"type": "direct"})
    await layer.group_send("room", {"type": "news"})  # a is full: 1 delivered, 1 dropped
    assert await layer.receive("a") == {"type": "direct"}
    await asyncio.sleep(0.1)
    await layer.send("b", {"type": "fresh"})  # the news to b expired meanwhile
    assert await layer.receive("b") == {"type": "fresh"}
    stats = layer.stats
    assert (stats.sent, stats.received, stats.group_sends) == (2, 2, 1)
    assert (stats.group_deliveries, stats.dropped_full, stats.expired) == (1, 1, 1)


async def test_receive_touches_only_its_own_channel() -> None:
    """Expiry is lazy: receive() on one channel does nothing to the others (Channels cleans
    every channel on every receive, which makes it quadratic)."""
    layer = InMemoryChannelLayer(expiry=0.05)
    for number in range(100):
        await layer.send(f"other-{number}", {"type": "m"})
    await asyncio.sleep(0.1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive("quiet"), 0.01)
    assert layer.stats.expired == 0
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive("other-7"), 0.01)
    assert layer.stats.expired == 1


async def test_idle_channels_and_stale_memberships_are_forgotten() -> None:
    """Channels nobody receives from and groups nobody sends to do not pin memory forever."""
    layer = InMemoryChannelLayer(expiry=0.05, group_expiry=0.05)
    for number in range(100):
        await layer.send(f"abandoned-{number}", {"type": "m"})
        await layer.group_add(f"group-{number}", f"abandoned-{number}")
    await asyncio.sleep(0.1)
    await layer.send("alive", {"type": "m"})  # a send past the sweep interval sweeps
    assert set(layer._channels) == {"alive"}
    assert layer._groups == {}
    assert layer.stats.expired == 100


async def test_a_channel_is_released_when_its_last_receiver_leaves() -> None:
    """8,000 consumers that came and went leave no channel entries behind (issue 17, item 7);
    a receiver that comes straight back (a consumer's loop restarting its wait) keeps its own."""
    layer = InMemoryChannelLayer()
    names = [await layer.new_channel() for _ in range(8000)]
    receivers = [asyncio.ensure_future(layer.receive(name)) for name in names]
    await asyncio.sleep(0)
    assert len(layer._channels) == 8000
    for receiver in receivers:
        receiver.cancel()
    await asyncio.gather(*receivers, return_exceptions=True)
    restarted = asyncio.ensure_future(layer.receive(names[0]))  # back before the release runs
    await asyncio.sleep(0.01)
    assert list(layer._channels) == [names[0]]
    await layer.send(names[0], {"type": "m"})
    assert await asyncio.wait_for(restarted, 1) == {"type": "m"}
    # A channel holding messages is kept for its next receiver, whoever leaves.
    waiting = asyncio.ensure_future(layer.receive("mailbox"))
    await asyncio.sleep(0)
    waiting.cancel()
    await layer.send("mailbox", {"type": "kept"})
    await asyncio.sleep(0.01)
    assert await asyncio.wait_for(layer.receive("mailbox"), 1) == {"type": "kept"}


async def test_a_channel_is_released_when_its_last_readiness_is_cancelled() -> None:
    """Idle consumers wait by receive_ready(): 8,000 that came and went leave no channel entries
    behind either, and a channel holding messages is kept for its next receiver."""
    layer = InMemoryChannelLayer()
    names = [await layer.new_channel() for _ in range(8000)]
    readies = [layer.receive_ready(name) for name in names]
    assert len(layer._channels) == 8000
    for ready in readies:
        ready.cancel()
    assert layer._channels == {}
    ready = layer.receive_ready("mailbox")
    await layer.send("mailbox", {"type": "kept"})
    assert ready.done() and not ready.cancel()
    assert await asyncio.wait_for(layer.receive("mailbox"), 1) == {"type": "kept"}


def test_a_waiter_from_a_closed_event_loop_is_skipped() -> None:
    """A cached layer can outlive an event loop (one per test); its dead waiters are skipped."""
    layer = InMemoryChannelLayer()
    first_loop = asyncio.new_event_loop()
    try:
        stranded = first_loop.create_task(layer.receive("shared"))
        first_loop.run_until_complete(asyncio.sleep(0))  # the receive parks
    finally:
        first_loop.close()  # closed with the receive still parked
    stranded._log_destroy_pending = False  # type: ignore[attr-defined]  # stranded on purpose

    async def in_the_next_loop() -> Any:
        await layer.send("shared", {"type": "m"})
        return await asyncio.wait_for(layer.receive("shared"), 1)

    assert asyncio.run(in_the_next_loop()) == {"type": "m"}
    assert not stranded.done()


async def test_flush_empties_but_keeps_parked_receivers() -> None:
    layer = InMemoryChannelLayer()
    await layer.send("queued", {"type": "old"})
    waiting = asyncio.ensure_future(layer.receive("parked"))
    await asyncio.sleep(0)
    await layer.flush()
    assert set(layer._channels) == {"parked"}
    await layer.send("parked", {"type": "new"})
    assert await asyncio.wait_for(waiting, 1) == {"type": "new"}


def test_options_are_checked_like_channels() -> None:
    layer = InMemoryChannelLayer(expiry=5, group_expiry=10, capacity=7, channel_capacity={"a*": 2})
    assert (layer.expiry, layer.group_expiry, layer.capacity) == (5, 10, 7)
    assert layer.get_capacity("abc") == 2 and layer.get_capacity("xyz") == 7
    with pytest.raises(TypeError, match="hosts"):
        InMemoryChannelLayer(hosts=["redis://"])  # type: ignore[call-arg]


async def test_an_idle_channel_holds_no_queue_of_its_own() -> None:
    """Issue 18: an empty deque is ~700 bytes per idle consumer's channel. Empty channels share
    one queue that is never written to; a message gets its channel a queue, which goes back
    once drained, and no message is lost or shared on the way."""
    layer = InMemoryChannelLayer()
    first, second = await layer.new_channel(), await layer.new_channel()
    for channel in (first, second):
        await layer.group_add("room", channel)
    waiting = asyncio.ensure_future(layer.receive(first))
    await asyncio.sleep(0)
    shared = layer._channels[first].queue  # private: read for this test only
    assert not shared and type(shared).__name__ == "deque"
    await layer.group_send("room", {"type": "news", "n": 1})
    await layer.send(second, {"type": "own", "n": 2})
    assert len(layer._channels[second].queue) == 2 and not shared
    assert (await waiting)["n"] == 1
    assert [(await layer.receive(second))["n"] for _ in range(2)] == [1, 2]
    assert layer._channels[first].queue is shared and layer._channels[second].queue is shared
