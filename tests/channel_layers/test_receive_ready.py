"""The receive-readiness capability (``BaseChannelLayer.receive_ready``), run on every backend.

Every backend in conftest.py offers it; a third-party layer that does not returns None (the
consumer then keeps a reader task: tests/consumers/test_serial_loop_fallback.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from channel_layers.base import BaseChannelLayer, InvalidChannelName


def ready_of(layer: BaseChannelLayer, channel: str) -> asyncio.Future[None]:
    ready = layer.receive_ready(channel)
    assert ready is not None, f"{type(layer).__name__} has no receive_ready()"
    return ready


async def test_ready_completes_on_a_send_and_the_message_stays_for_receive(
    layer: BaseChannelLayer,
) -> None:
    channel = await layer.new_channel()
    ready = ready_of(layer, channel)
    await asyncio.sleep(0.05)
    assert not ready.done()  # nothing sent: it waits
    await layer.send(channel, {"type": "m", "n": 1})
    await asyncio.wait_for(ready, 2)
    assert ready.result() is None
    # Only a signal: the message is still queued, and receive() returns it without waiting.
    receiving = asyncio.ensure_future(layer.receive(channel))
    assert await asyncio.wait_for(receiving, 2) == {"type": "m", "n": 1}
    again = ready_of(layer, channel)
    await asyncio.sleep(0.05)
    assert not again.done()  # the channel is empty again
    again.cancel()


async def test_ready_is_done_at_once_when_a_message_waits(layer: BaseChannelLayer) -> None:
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "m"})
    # Over a network the message first has to reach this process: wait for readiness once,
    # without taking the message, then a new readiness must be done at once.
    await asyncio.wait_for(ready_of(layer, channel), 2)
    assert ready_of(layer, channel).done()
    assert await asyncio.wait_for(layer.receive(channel), 2) == {"type": "m"}


async def test_group_sends_complete_readiness(layer: BaseChannelLayer) -> None:
    channel = await layer.new_channel()
    await layer.group_add("room", channel)
    ready = ready_of(layer, channel)
    await layer.group_send("room", {"type": "hello"})
    await asyncio.wait_for(ready, 2)
    assert await asyncio.wait_for(layer.receive(channel), 2) == {"type": "hello"}


async def test_cancelled_readiness_loses_no_message(layer: BaseChannelLayer) -> None:
    """Cancel readiness at every point of the race with sends: every message is received once,
    in order, and a cancelled readiness leaves nothing behind that swallows a later one."""
    channel = await layer.new_channel()
    got: list[int] = []
    for number in range(30):
        ready = ready_of(layer, channel)
        for _ in range(number % 3):
            await asyncio.sleep(0)
        await layer.send(channel, {"type": "m", "n": number})
        for _ in range(number // 3 % 4):
            await asyncio.sleep(0)
        ready.cancel()
        got.append((await asyncio.wait_for(layer.receive(channel), 2))["n"])
    assert got == list(range(30))
    ready = ready_of(layer, channel)
    await layer.send(channel, {"type": "m", "n": 30})
    await asyncio.wait_for(ready, 2)
    assert await asyncio.wait_for(layer.receive(channel), 2) == {"type": "m", "n": 30}


async def test_a_waiting_readiness_and_a_receive_share_the_messages(
    layer: BaseChannelLayer,
) -> None:
    """Readiness waits among the receivers: two messages for a waiting readiness and a waiting
    receive() reach both (neither is lost, none is delivered twice)."""
    channel = await layer.new_channel()
    ready = ready_of(layer, channel)
    receiving = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.05)
    await layer.send(channel, {"type": "m", "n": 1})
    await layer.send(channel, {"type": "m", "n": 2})
    await asyncio.wait_for(ready, 2)
    first = await asyncio.wait_for(receiving, 2)
    second = await asyncio.wait_for(layer.receive(channel), 2)
    assert sorted([first["n"], second["n"]]) == [1, 2]


@pytest.mark.layer_needs("storage")  # pub/sub refuses nothing: receive() subscribes anything
async def test_readiness_on_an_invalid_name_raises_now(layer: BaseChannelLayer) -> None:
    bad: Any = "not valid!?"
    with pytest.raises(InvalidChannelName):
        layer.receive_ready(bad)


def test_a_layer_without_the_capability_says_so() -> None:
    """The default: None, so callers know to await receive() in a task instead."""

    class Minimal(BaseChannelLayer):
        async def send(self, channel: str, message: dict[str, Any]) -> None: ...

        async def receive(self, channel: str) -> dict[str, Any]:
            return {}

        async def new_channel(self, prefix: str = "specific") -> str:
            return "x!y"

        async def group_add(self, group: str, channel: str) -> None: ...

        async def group_discard(self, group: str, channel: str) -> None: ...

        async def group_send(self, group: str, message: dict[str, Any]) -> None: ...

        async def flush(self) -> None: ...

        async def close(self) -> None: ...

    assert Minimal().receive_ready("x!y") is None
