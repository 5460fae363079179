"""What code written for Channels' in-memory layer and channels_redis reads or calls on a layer:
``channels`` and ``groups`` (tests use them to find a consumer's channel and to check that it
left its groups) and ``close_pools()``. Found by running Channels' own suite on Crossway."""

from __future__ import annotations

import asyncio

from channel_layers.memory import InMemoryChannelLayer


async def test_channels_lists_channels_with_messages_or_a_waiting_receiver() -> None:
    layer = InMemoryChannelLayer()
    assert layer.channels == {}
    await layer.send("queued", {"type": "one"})
    waiting = await layer.new_channel()
    receiver = asyncio.create_task(layer.receive(waiting))
    await asyncio.sleep(0)  # let the receiver park
    assert layer.channels == {"queued": [{"type": "one"}], waiting: []}
    await layer.send(waiting, {"type": "two"})
    assert await receiver == {"type": "two"}
    assert await layer.receive("queued") == {"type": "one"}
    assert layer.channels == {}  # drained and nobody waiting: gone, as in Channels


async def test_channels_is_a_snapshot_that_cannot_break_the_layer() -> None:
    layer = InMemoryChannelLayer()
    await layer.send("queued", {"type": "one"})
    layer.channels.clear()
    layer.channels["queued"].clear()
    assert await layer.receive("queued") == {"type": "one"}


async def test_expired_messages_leave_channels_once_a_receive_gives_up() -> None:
    layer = InMemoryChannelLayer(expiry=0.05)
    await layer.send("late", {"type": "one"})
    await asyncio.sleep(0.06)
    try:
        async with asyncio.timeout(0.05):
            await layer.receive("late")
    except TimeoutError:
        pass
    assert layer.channels == {}


async def test_groups_shows_members_and_forgets_an_emptied_group() -> None:
    layer = InMemoryChannelLayer()
    await layer.group_add("room", "alice")
    await layer.group_add("room", "bob")
    assert {group: set(members) for group, members in layer.groups.items()} == {
        "room": {"alice", "bob"}
    }
    await layer.group_discard("room", "alice")
    await layer.group_discard("room", "bob")
    assert layer.groups == {}


async def test_close_pools_closes_and_the_layer_stays_usable() -> None:
    layer = InMemoryChannelLayer()
    await layer.close_pools()  # channels_redis' name for close()
    await layer.send("after", {"type": "one"})
    assert await layer.receive("after") == {"type": "one"}
