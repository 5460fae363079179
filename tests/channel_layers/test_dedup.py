"""A send that raised LayerUnavailable may have been delivered; message ids let the receiver
drop the duplicate a retry makes (channel_layers.dedup; the contract in base.py)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from channel_layers.base import LayerUnavailable
from channel_layers.dedup import DuplicateFilter, with_message_id
from channel_layers.memory import InMemoryChannelLayer
from channel_layers.redis import RedisChannelLayer
from tests.conftest import RedisServers


async def test_a_timed_out_send_was_delivered_and_the_retry_is_dropped_as_a_duplicate(
    redis_servers: RedisServers,
) -> None:
    server = redis_servers.start()
    assert server.process is not None
    host = {"address": server.url, "socket_timeout": 0.3}
    layer = RedisChannelLayer(hosts=[host], prefix=f"t{os.urandom(3).hex()}")
    await layer.send("warmup", {"type": "w"})  # connected, script loaded
    message = with_message_id({"type": "order.paid", "order": 42})

    server.process.send_signal(signal.SIGSTOP)  # frozen: the command waits in its socket
    try:
        with pytest.raises(LayerUnavailable):
            await layer.send("billing", message)
    finally:
        server.process.send_signal(signal.SIGCONT)
    await asyncio.sleep(1.0)  # the shard's cooldown after the failure
    await layer.send("billing", message)  # the retry an application makes

    first = await asyncio.wait_for(layer.receive("billing"), 5)
    second = await asyncio.wait_for(layer.receive("billing"), 5)
    assert first == second == message  # delivered twice: "maybe delivered" meant delivered
    seen = DuplicateFilter()
    assert [seen.is_duplicate(first), seen.is_duplicate(second)] == [False, True]
    await layer.flush()
    await layer.close()


def test_the_filter_remembers_a_bounded_number_of_ids() -> None:
    seen = DuplicateFilter(size=2)
    a, b, c = (with_message_id({"type": "t"}) for _ in range(3))
    assert a["message_id"] != b["message_id"]
    assert with_message_id(a) == a  # an id is kept, so every attempt carries the same one
    assert [seen.is_duplicate(m) for m in (a, b, a, c)] == [False, False, True, False]
    assert not seen.is_duplicate(b)  # forgotten: the two most recent are a and c
    assert not seen.is_duplicate({"type": "no id"})
    assert not seen.is_duplicate({"type": "no id"})
    with pytest.raises(ValueError, match="at least 1"):
        DuplicateFilter(size=0)


async def test_message_ids_travel_through_a_layer() -> None:
    layer = InMemoryChannelLayer()
    message = with_message_id({"type": "t"})
    await layer.send("c", message)
    assert (await layer.receive("c"))["message_id"] == message["message_id"]
