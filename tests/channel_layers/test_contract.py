"""The channel layer contract (channel_layers/base.py), run on every backend in conftest.py."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import logging
import re
import threading
import uuid
from typing import Any

import pytest

from channel_layers.base import (
    BaseChannelLayer,
    ChannelFull,
    ChannelLayerError,
    InvalidChannelName,
    InvalidMessage,
)

MakeLayer = Any  # conftest's factory: await make_layer(**options) -> BaseChannelLayer


async def receive_soon(layer: BaseChannelLayer, channel: str, timeout: float = 0.2) -> Any:
    """The next message on ``channel``, or None when none comes within ``timeout``."""
    try:
        return await asyncio.wait_for(layer.receive(channel), timeout)
    except TimeoutError:
        return None


# --- sending and receiving ---------------------------------------------------------------


@pytest.mark.layer_needs("storage")  # pub/sub: a send before any receive is lost
async def test_send_then_receive_returns_the_message(layer: BaseChannelLayer) -> None:
    message = {"type": "chat.message", "text": "héllo", "n": 3, "data": b"\x00\xff", "ok": True}
    await layer.send("chat.room", message)
    assert await layer.receive("chat.room") == message


async def test_receive_waits_for_a_later_send(layer: BaseChannelLayer) -> None:
    receiving = asyncio.ensure_future(layer.receive("late"))
    await asyncio.sleep(0.01)
    assert not receiving.done()
    await layer.send("late", {"type": "m"})
    assert await asyncio.wait_for(receiving, 2) == {"type": "m"}


@pytest.mark.layer_needs("storage")  # pub/sub: a send before any receive is lost
async def test_messages_arrive_in_the_order_sent(layer: BaseChannelLayer) -> None:
    for number in range(20):
        await layer.send("ordered", {"type": "m", "n": number})
    received = [(await layer.receive("ordered"))["n"] for _ in range(20)]
    assert received == list(range(20))


@pytest.mark.layer_needs("storage")  # pub/sub: a send before any receive is lost
async def test_channels_are_independent(layer: BaseChannelLayer) -> None:
    await layer.send("one", {"type": "m", "to": "one"})
    await layer.send("two", {"type": "m", "to": "two"})
    assert (await layer.receive("two"))["to"] == "two"
    assert (await layer.receive("one"))["to"] == "one"
    assert await receive_soon(layer, "one", 0.05) is None


async def test_new_channel_names_are_process_local_and_unique(layer: BaseChannelLayer) -> None:
    names = {await layer.new_channel() for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert name.startswith("specific.") and name.count("!") == 1
        assert len(name) < 100 and layer.valid_channel_name(name)
    custom = await layer.new_channel("chat-worker_1")
    assert custom.startswith("chat-worker_1.")
    await layer.send(custom, {"type": "m"})
    assert await layer.receive(custom) == {"type": "m"}


@pytest.mark.layer_needs("storage")  # pub/sub: a send before any receive is lost
async def test_receivers_get_copies_not_the_senders_objects(layer: BaseChannelLayer) -> None:
    message: dict[str, Any] = {"type": "m", "items": [1, {"deep": [2]}], "meta": {"k": "v"}}
    await layer.send("copies", message)
    message["items"][1]["deep"].append(3)
    message["meta"]["k"] = "changed"
    received = await layer.receive("copies")
    assert received == {"type": "m", "items": [1, {"deep": [2]}], "meta": {"k": "v"}}


@pytest.mark.layer_needs("storage")
async def test_one_message_reaches_exactly_one_of_several_receivers(
    layer: BaseChannelLayer,
) -> None:
    receivers = [asyncio.ensure_future(layer.receive("workers")) for _ in range(3)]
    await asyncio.sleep(0.01)
    for number in range(2):
        await layer.send("workers", {"type": "job", "n": number})
    done, pending = await asyncio.wait(receivers, timeout=0.3)
    assert sorted(task.result()["n"] for task in done) == [0, 1]
    assert len(pending) == 1
    for task in pending:
        task.cancel()


# --- names and messages are checked at once ----------------------------------------------

BAD_NAMES: list[Any] = [
    "",
    "has space",
    "ünïcode",
    "x" * 100,
    "a!b!c",
    "slash/",
    None,
    5,
    b"b",
    ["x"],
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
async def test_invalid_channel_names_raise_at_once(layer: BaseChannelLayer, name: Any) -> None:
    with pytest.raises(InvalidChannelName) as error:
        await layer.send(name, {"type": "m"})
    assert isinstance(error.value, TypeError) and isinstance(error.value, ChannelLayerError)
    assert "name" in str(error.value)
    with pytest.raises(InvalidChannelName):
        await layer.receive(name)
    with pytest.raises(InvalidChannelName):
        await layer.group_add("group", name)
    with pytest.raises(InvalidChannelName):
        await layer.group_discard("group", name)


@pytest.mark.parametrize("name", [*BAD_NAMES, "local!name"], ids=repr)
async def test_invalid_group_names_raise_at_once(layer: BaseChannelLayer, name: Any) -> None:
    with pytest.raises(InvalidChannelName):
        await layer.group_add(name, "channel")
    with pytest.raises(InvalidChannelName):
        await layer.group_discard(name, "channel")
    with pytest.raises(InvalidChannelName):
        await layer.group_send(name, {"type": "m"})


@pytest.mark.layer_needs("storage")  # pub/sub: a send before any receive is lost
async def test_names_may_use_the_whole_allowed_alphabet(layer: BaseChannelLayer) -> None:
    name = "Az09-_." + "x" * 92  # 99 characters: the longest allowed
    await layer.send(name, {"type": "m"})
    assert await layer.receive(name) == {"type": "m"}
    await layer.group_add(name, name)
    await layer.group_send(name, {"type": "g"})
    assert await layer.receive(name) == {"type": "g"}


async def test_new_channel_rejects_an_invalid_prefix(layer: BaseChannelLayer) -> None:
    with pytest.raises(InvalidChannelName):
        await layer.new_channel("bad prefix")


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        (["type", "m"], "must be a dict"),
        ("text", "must be a dict"),
        ({"text": "no type"}, "'type'"),
        ({"type": 5}, "'type'"),
    ],
    ids=["list", "str", "no-type", "int-type"],
)
async def test_invalid_messages_raise_at_once(
    layer: BaseChannelLayer, message: Any, complaint: str
) -> None:
    await layer.group_add("members", "member")
    for call in (layer.send("target", message), layer.group_send("members", message)):
        with pytest.raises(InvalidMessage, match=complaint) as error:
            await call
        assert isinstance(error.value, TypeError)
    assert await receive_soon(layer, "target", 0.05) is None
    assert await receive_soon(layer, "member", 0.05) is None


async def test_a_message_the_layer_cannot_carry_raises_and_reaches_nobody(
    layer: BaseChannelLayer,
) -> None:
    await layer.group_add("members", "member")
    message = {"type": "m", "lock": threading.Lock()}
    with pytest.raises(InvalidMessage):
        await layer.send("target", message)
    with pytest.raises(InvalidMessage):
        await layer.group_send("members", message)
    with pytest.raises(InvalidMessage):
        await layer.group_send("nobody-yet", message)  # checked even without members
    assert await receive_soon(layer, "member", 0.05) is None


class Point:
    """A custom object: no serializer carries it."""

    x = 1


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ({1, 2}, r"message\['tags'\] has type set"),
        (frozenset({1}), r"message\['tags'\] has type frozenset"),
        (Point(), r"message\['tags'\] has type Point"),
        ([1, {"deep": {2}}], r"message\['tags'\]\[1\]\['deep'\] has type set"),
        (2**64, r"message\['tags'\] has type int beyond 64 bits"),
    ],
    ids=["set", "frozenset", "custom-object", "nested-set", "huge-int"],
)
async def test_every_backend_refuses_what_redis_cannot_serialize(
    layer: BaseChannelLayer, value: Any, complaint: str
) -> None:
    """The in-memory layer refuses what Redis refuses, naming where the value sits, so code
    developed on memory does not first fail in production (issue 17, item 6)."""
    await layer.group_add("members", "member")
    message = {"type": "m", "tags": value}
    with pytest.raises(InvalidMessage, match=complaint):
        await layer.send("target", message)
    with pytest.raises(InvalidMessage, match=complaint):
        await layer.group_send("members", message)
    assert await receive_soon(layer, "member", 0.05) is None


@pytest.mark.layer_needs("storage")  # pub/sub: a send before any receive is lost
async def test_every_backend_carries_the_serializers_extra_types(layer: BaseChannelLayer) -> None:
    message = {
        "type": "m",
        "when": datetime.datetime(2026, 12, 4, 18, 0, tzinfo=datetime.UTC),
        "day": datetime.date(2026, 12, 4),
        "at": datetime.time(18, 0),
        "took": datetime.timedelta(seconds=1.5),
        "price": decimal.Decimal("1.10"),
        "id": uuid.UUID(int=7),
        "by_number": {1: "int keys", 2: [b"\x00", None, 2**63]},
    }
    await layer.send("typed", message)
    assert await layer.receive("typed") == message


# --- capacity ------------------------------------------------------------------------------


@pytest.mark.layer_needs("storage")
async def test_send_to_a_full_channel_raises_channel_full(make_layer: MakeLayer) -> None:
    layer = await make_layer(capacity=3)
    for number in range(3):
        await layer.send("small", {"type": "m", "n": number})
    with pytest.raises(ChannelFull, match="capacity"):
        await layer.send("small", {"type": "m", "n": 3})
    assert (await layer.receive("small"))["n"] == 0
    await layer.send("small", {"type": "m", "n": 4})  # room again
    assert [(await layer.receive("small"))["n"] for _ in range(3)] == [1, 2, 4]


@pytest.mark.layer_needs("storage")
async def test_channel_capacity_by_name_glob_and_regex(make_layer: MakeLayer) -> None:
    layer = await make_layer(
        capacity=2,
        channel_capacity={"big.*": 5, re.compile(r"^tiny"): 1, "exact": 3},
    )
    for channel, expected in [("big.one", 5), ("tiny-q", 1), ("exact", 3), ("other", 2)]:
        for number in range(expected):
            await layer.send(channel, {"type": "m", "n": number})
        with pytest.raises(ChannelFull):
            await layer.send(channel, {"type": "m"})


async def test_constructor_rejects_nonsense_options(make_layer: MakeLayer) -> None:
    for options in ({"capacity": 0}, {"expiry": -1}, {"group_expiry": 0}, {"capacity": "9"}):
        with pytest.raises(ValueError, match="must be a positive"):
            await make_layer(**options)


@pytest.mark.layer_needs("storage")
async def test_group_send_skips_full_members_and_says_so_once(
    make_layer: MakeLayer, caplog: pytest.LogCaptureFixture
) -> None:
    layer = await make_layer(capacity=1)
    for member in ("full-1", "full-2", "free"):
        await layer.group_add("room", member)
    await layer.send("full-1", {"type": "old"})
    await layer.send("full-2", {"type": "old"})
    with caplog.at_level(logging.WARNING, logger="channel_layers"):
        await layer.group_send("room", {"type": "news"})  # never raises ChannelFull
    assert await layer.receive("free") == {"type": "news"}
    assert await layer.receive("full-1") == {"type": "old"}
    assert await receive_soon(layer, "full-1", 0.05) is None
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "'room'" in warnings[0].getMessage() and " 2 of 3 " in warnings[0].getMessage()
    assert layer.stats.dropped_full == 2 and layer.dropped_messages == 2


# --- groups --------------------------------------------------------------------------------


async def test_group_send_reaches_every_member_with_its_own_copy(layer: BaseChannelLayer) -> None:
    members = [await layer.new_channel() for _ in range(5)]
    for member in members:
        await layer.group_add("room", member)
    await layer.group_send("room", {"type": "news", "items": [1, 2]})
    received = [await layer.receive(member) for member in members]
    assert all(message == {"type": "news", "items": [1, 2]} for message in received)
    received[0]["items"].append(3)
    assert received[1]["items"] == [1, 2]


async def test_group_add_twice_delivers_once(layer: BaseChannelLayer) -> None:
    await layer.group_add("room", "member")
    await layer.group_add("room", "member")
    await layer.group_send("room", {"type": "m"})
    assert await layer.receive("member") == {"type": "m"}
    assert await receive_soon(layer, "member", 0.05) is None


async def test_group_discard_stops_delivery_and_tolerates_strangers(
    layer: BaseChannelLayer,
) -> None:
    await layer.group_add("room", "stays")
    await layer.group_add("room", "leaves")
    await layer.group_discard("room", "leaves")
    await layer.group_discard("room", "never-joined")
    await layer.group_discard("no-such-group", "leaves")
    await layer.group_send("room", {"type": "m"})
    assert await layer.receive("stays") == {"type": "m"}
    assert await receive_soon(layer, "leaves", 0.05) is None


async def test_group_send_to_an_empty_group_is_fine(layer: BaseChannelLayer) -> None:
    await layer.group_send("nobody-here", {"type": "m"})
    await layer.group_add("emptied", "member")
    await layer.group_discard("emptied", "member")
    await layer.group_send("emptied", {"type": "m"})
    assert await receive_soon(layer, "member", 0.05) is None


async def test_extensions_advertise_groups_and_flush(layer: BaseChannelLayer) -> None:
    assert {"groups", "flush"} <= set(layer.extensions)


# --- expiry --------------------------------------------------------------------------------


def give_fresh_messages_time(layer: BaseChannelLayer) -> None:
    """Give messages sent from now on a minute to live (a deadline is fixed at send): with
    ``time_unit`` left, a loaded machine let the fresh message expire on its way to the
    waiting receive(), which then waited for ever (seen once in CI, on redis_unix)."""
    layer.expiry = 60


@pytest.mark.layer_needs("storage", "expiry")
async def test_expired_messages_are_dropped_not_delivered(
    make_layer: MakeLayer, time_unit: float
) -> None:
    layer = await make_layer(expiry=time_unit)
    await layer.send("slow", {"type": "stale"})
    await asyncio.sleep(time_unit * 3)
    give_fresh_messages_time(layer)
    await layer.send("slow", {"type": "fresh"})
    assert await layer.receive("slow") == {"type": "fresh"}
    assert await receive_soon(layer, "slow", 0.05) is None


@pytest.mark.layer_needs("storage", "expiry")
async def test_expired_messages_free_capacity(make_layer: MakeLayer, time_unit: float) -> None:
    layer = await make_layer(expiry=time_unit, capacity=1)
    await layer.send("slow", {"type": "stale"})
    await asyncio.sleep(time_unit * 3)
    give_fresh_messages_time(layer)
    await layer.send("slow", {"type": "fresh"})  # does not raise ChannelFull
    assert await layer.receive("slow") == {"type": "fresh"}


@pytest.mark.layer_needs("group_expiry")
async def test_stale_memberships_are_dropped(make_layer: MakeLayer, time_unit: float) -> None:
    layer = await make_layer(group_expiry=time_unit)
    await layer.group_add("room", "member")
    await asyncio.sleep(time_unit * 3)
    await layer.group_send("room", {"type": "too-late"})
    assert await receive_soon(layer, "member", 0.05) is None


@pytest.mark.layer_needs("group_expiry")
async def test_group_add_refreshes_a_membership(make_layer: MakeLayer, time_unit: float) -> None:
    layer = await make_layer(group_expiry=time_unit * 10)
    await layer.group_add("room", "member")
    await asyncio.sleep(time_unit * 6)
    await layer.group_add("room", "member")
    await asyncio.sleep(time_unit * 6)  # 12 units after the first add, 6 after the refresh
    await layer.group_send("room", {"type": "still-here"})
    assert await receive_soon(layer, "member", 1) == {"type": "still-here"}


# --- cancellation --------------------------------------------------------------------------


async def test_cancelled_receives_lose_no_message(layer: BaseChannelLayer) -> None:
    """Cancel receives at every point of the race with sends; nothing is lost or duplicated."""
    channel = await layer.new_channel()
    got: list[int] = []
    cancelled = 0
    for number in range(60):
        receiving = asyncio.ensure_future(layer.receive(channel))
        for _ in range(number % 3):  # 0, 1 or 2 turns: not started, waiting, or settled
            await asyncio.sleep(0)
        await layer.send(channel, {"type": "m", "n": number})
        for _ in range(number // 3 % 4):  # then let the woken receiver run 0 to 3 turns
            await asyncio.sleep(0)
        receiving.cancel()
        try:
            got.append((await receiving)["n"])
        except asyncio.CancelledError:
            cancelled += 1
            got.append((await asyncio.wait_for(layer.receive(channel), 1))["n"])
    assert got == list(range(60))
    assert cancelled > 0  # the race was exercised
    assert await receive_soon(layer, channel, 0.05) is None


async def test_a_cancelled_receiver_passes_its_wake_up_on(layer: BaseChannelLayer) -> None:
    channel = await layer.new_channel()
    first = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.01)
    await layer.send(channel, {"type": "m"})
    first.cancel()  # woken, but (on most backends) cancelled before it could take the message
    await asyncio.wait([first], timeout=1)
    if first.cancelled():
        assert await asyncio.wait_for(second, 1) == {"type": "m"}
    else:
        # Over a network the first receiver may have finished before the cancel landed: then
        # the message is its own, and the second receiver must not get it too.
        assert first.result() == {"type": "m"}
        await asyncio.sleep(0.05)
        assert not second.done()
        second.cancel()


# --- flush and close -----------------------------------------------------------------------


async def test_flush_drops_messages_and_memberships(layer: BaseChannelLayer) -> None:
    await layer.send("queued", {"type": "m"})
    await layer.group_add("room", "member")
    await layer.flush()
    await layer.group_send("room", {"type": "after"})
    assert await receive_soon(layer, "queued", 0.05) is None
    assert await receive_soon(layer, "member", 0.05) is None


async def test_a_receiver_waiting_across_flush_still_gets_later_messages(
    layer: BaseChannelLayer,
) -> None:
    channel = await layer.new_channel()
    receiving = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.01)
    await layer.flush()
    await layer.send(channel, {"type": "after-flush"})
    assert await asyncio.wait_for(receiving, 1) == {"type": "after-flush"}


@pytest.mark.layer_needs("storage")
async def test_close_is_idempotent_and_a_closed_layer_reopens(make_layer: MakeLayer) -> None:
    layer = await make_layer()
    async with layer:
        await layer.send("c", {"type": "m", "n": 1})
    await layer.close()
    await layer.send("c", {"type": "m", "n": 2})
    assert [(await layer.receive("c"))["n"] for _ in range(2)] == [1, 2]
