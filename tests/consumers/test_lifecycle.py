"""The end of a connection and opt-in concurrency: disconnect() exactly once under a vanishing
client (channels#1466), the stuck-consumer timeout and its warning (channels#1119), and
max_concurrent_handlers with its ordering guarantees."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from channel_layers import BaseChannelLayer, get_channel_layer
from consumers import (
    AsyncConsumer,
    AsyncWebsocketConsumer,
    ClientDisconnected,
    StopConsumer,
    WebsocketConsumer,
)
from consumers.serial_loop import LINGER_PERIOD
from consumers.testing import WebsocketCommunicator


class Streamer(AsyncWebsocketConsumer):
    """Streams ticks forever once asked; counts its disconnects and how the loop ended."""

    disconnects: list[int] = []
    loop_endings: list[str] = []

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            while True:
                await self.send(text_data="tick")
                await asyncio.sleep(0.005)
        except ClientDisconnected:
            self.loop_endings.append("client gone")
            raise

    async def disconnect(self, code: int) -> None:
        await self.close()  # harmless after the client left: dropped quietly
        self.disconnects.append(code)


async def test_disconnect_once_when_client_vanishes_mid_send_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    Streamer.disconnects, Streamer.loop_endings = [], []
    # A 30 s disconnect timeout, and 2 s to finish: it must end at the loop's next send.
    communicator = WebsocketCommunicator(Streamer.as_asgi(disconnect_timeout=30), "/ws/")
    await communicator.connect()
    await communicator.send_to(text_data="go")
    assert await communicator.receive_from() == "tick"
    await communicator.disconnect(code=1001, timeout=2)
    assert Streamer.disconnects == [1001]
    assert Streamer.loop_endings == ["client gone"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class SyncStreamer(WebsocketConsumer):
    """The same loop in a worker thread."""

    disconnects: list[int] = []

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        while True:
            self.send(text_data="tick")
            time.sleep(0.005)

    def disconnect(self, code: int) -> None:
        self.close()  # dropped quietly here too: the context crosses the thread hops
        self.disconnects.append(code)


async def test_sync_disconnect_once_when_client_vanishes_mid_send_loop() -> None:
    SyncStreamer.disconnects = []
    communicator = WebsocketCommunicator(SyncStreamer.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_to(text_data="go")
    assert await communicator.receive_from() == "tick"
    await communicator.disconnect(code=1006, timeout=2)
    assert SyncStreamer.disconnects == [1006]


class Stuck(AsyncWebsocketConsumer):
    """A handler that waits forever and never sends: only the timeout can end it."""

    disconnects: list[int] = []
    disconnect_timeout = 0.2

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data="waiting")
        await asyncio.Event().wait()  # STUCK-HERE

    async def disconnect(self, code: int) -> None:
        self.disconnects.append(code)


@pytest.mark.parametrize("queued", [0, 5])
async def test_stuck_consumer_is_cancelled_with_a_warning_naming_where(
    caplog: pytest.LogCaptureFixture, queued: int
) -> None:
    """Also when the client sent more messages before leaving: its disconnect queues behind
    them, and is still noticed while the handler is stuck."""
    Stuck.disconnects = []
    communicator = WebsocketCommunicator(Stuck.as_asgi(), "/ws/stuck/")
    await communicator.connect()
    await communicator.send_to(text_data="go")
    assert await communicator.receive_from() == "waiting"
    for number in range(queued):
        await communicator.send_to(text_data=f"unread {number}")
    with caplog.at_level(logging.WARNING, logger="consumers"):
        await communicator.disconnect(code=1001, timeout=2)
    assert Stuck.disconnects == [1001]  # disconnect() still ran, once, after the cancel
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if queued:
        assert f"dropping {queued} unhandled message(s) (websocket.receive)" in warnings.pop(0)
    assert len(warnings) == 1
    lines = Path(__file__).read_text().splitlines()
    stuck_line = next(i for i, line in enumerate(lines, 1) if "# STUCK-HERE" in line)
    assert "Stuck (websocket /ws/stuck/)" in warnings[0]
    assert "0.2s" in warnings[0] and "'websocket.receive'" in warnings[0]
    assert f'{__file__}", line {stuck_line}, in receive' in warnings[0]
    assert "await asyncio.Event().wait()" in warnings[0]


class Stubborn(AsyncWebsocketConsumer):
    """Its disconnect() itself hangs: it is cancelled too, and the consumer still ends."""

    disconnect_timeout = 0.1

    async def disconnect(self, code: int) -> None:
        await asyncio.sleep(3600)


async def test_stuck_disconnect_handler_is_cancelled(caplog: pytest.LogCaptureFixture) -> None:
    communicator = WebsocketCommunicator(Stubborn.as_asgi(), "/ws/")
    await communicator.connect()
    with caplog.at_level(logging.WARNING, logger="consumers"):
        await communicator.disconnect(timeout=2)
    assert any("in disconnect" in r.getMessage() for r in caplog.records)


class Gate(AsyncWebsocketConsumer):
    """A client message that waits for a layer event: deadlocks unless they may overlap."""

    async def connect(self) -> None:
        self.opened = asyncio.Event()
        await self.accept()
        await self.send(text_data=self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.opened.wait()
        await self.send(text_data="passed")

    async def gate_open(self, event: dict[str, Any]) -> None:
        self.opened.set()
        await self.send(text_data="opened")


@pytest.mark.parametrize("limit", [1, 2])
async def test_concurrency_is_opt_in(limit: int, memory_layer: BaseChannelLayer) -> None:
    communicator = WebsocketCommunicator(
        Gate.as_asgi(max_concurrent_handlers=limit, disconnect_timeout=0.1), "/ws/"
    )
    await communicator.connect()
    channel = await communicator.receive_from()
    await communicator.send_to(text_data="let me through")
    await asyncio.sleep(0.02)  # let the client message start first
    await memory_layer.send(str(channel), {"type": "gate.open"})
    if limit == 1:
        # One at a time (Channels' behaviour): the layer event waits behind the client message.
        assert await communicator.receive_nothing(timeout=0.2)
    else:
        assert await communicator.receive_from() == "opened"
        assert await communicator.receive_from() == "passed"
    await communicator.disconnect(timeout=2)


class Ordered(AsyncWebsocketConsumer):
    """Layer events whose handling takes as long as they ask; reports when each finishes."""

    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data=self.channel_name)

    async def work_item(self, event: dict[str, Any]) -> None:
        await asyncio.sleep(event["seconds"])
        await self.send(text_data=event["name"])


class Unordered(Ordered):
    def handler_order_key(self, message: dict[str, Any], source: str) -> None:
        return None  # any two messages may overlap


@pytest.mark.parametrize(("consumer", "expected"), [(Ordered, "AB"), (Unordered, "BA")])
async def test_ordering_key_keeps_a_stream_in_order(
    consumer: type[Ordered], expected: str, memory_layer: BaseChannelLayer
) -> None:
    communicator = WebsocketCommunicator(consumer.as_asgi(max_concurrent_handlers=4), "/ws/")
    await communicator.connect()
    channel = str(await communicator.receive_from())
    await memory_layer.send(channel, {"type": "work.item", "name": "A", "seconds": 0.15})
    await memory_layer.send(channel, {"type": "work.item", "name": "B", "seconds": 0})
    finished = [await communicator.receive_from(), await communicator.receive_from()]
    assert "".join(map(str, finished)) == expected
    await communicator.disconnect()


def test_invalid_concurrency_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="Ordered: max_concurrent_handlers must be 1 or more"):
        Ordered.as_asgi(max_concurrent_handlers=0)


def task_factory_recording(started: list[str]) -> Any:
    """A task factory that appends the qualified name of each task's coroutine to ``started``."""

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        started.append(getattr(coro, "__qualname__", ""))
        return asyncio.Task(coro, loop=loop, **kwargs)

    return factory


class Interleaved(AsyncWebsocketConsumer):
    """Each client message sends the consumer itself a layer event; both are reported."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        assert self.channel_layer is not None and self.channel_name is not None
        await self.channel_layer.send(self.channel_name, {"type": "echo.event", "n": text_data})
        await self.send(text_data=f"client {text_data}")

    async def echo_event(self, event: dict[str, Any]) -> None:
        await self.send(text_data=f"layer {event['n']}")


async def test_client_backlog_does_not_starve_layer_events() -> None:
    """The client is read ahead (to see its disconnect), but its backlog still takes turns
    with the layer: layer events never fall more than a couple of messages behind."""
    communicator = WebsocketCommunicator(Interleaved.as_asgi(), "/ws/")
    await communicator.connect()
    for number in range(12):
        await communicator.send_to(text_data=str(number))
    lag, worst = 0, 0
    for _ in range(24):
        lag += 1 if str(await communicator.receive_from()).startswith("client") else -1
        worst = max(worst, lag)
    assert lag == 0 and worst <= 2
    await communicator.disconnect()


async def wait_for_tasks(before: set[asyncio.Task[Any]], count: int, timeout: float) -> None:
    """Wait until exactly ``count`` tasks exist besides ``before`` (a lingering worker ends
    within two LINGER_PERIODs)."""
    deadline = time.monotonic() + timeout
    while len(asyncio.all_tasks() - before) != count:
        assert time.monotonic() < deadline, asyncio.all_tasks() - before
        await asyncio.sleep(0.01)


async def test_the_default_loop_holds_one_task_and_no_task_per_message() -> None:
    """max_concurrent_handlers = 1: an idle consumer with a layer channel is its application task
    alone (the layer's readiness future stands in for a reader); a burst of work (a client message
    and the layer message its handler sends) starts one worker task, and no task per message. A
    worker that handled a layer message lingers (waits for more work), so the next bursts take
    no task at all; it ends once the consumer was idle for a whole LINGER_PERIOD."""
    loop = asyncio.get_running_loop()
    started: list[str] = []
    counting_factory = task_factory_recording(started)

    before = asyncio.all_tasks()
    communicator = WebsocketCommunicator(Interleaved.as_asgi(), "/ws/")
    await communicator.connect()
    await asyncio.sleep(0.01)
    assert len(asyncio.all_tasks() - before) == 1  # the application's task, nothing else
    loop.set_task_factory(counting_factory)
    try:
        for number in range(10):
            await communicator.send_to(text_data=str(number))
            assert await communicator.receive_from() == f"client {number}"
            assert await communicator.receive_from() == f"layer {number}"
            await asyncio.sleep(0.01)
            assert len(asyncio.all_tasks() - before) == 2  # the worker lingers
        await wait_for_tasks(before, 1, timeout=4 * LINGER_PERIOD)  # idle again
        await communicator.send_to(text_data="10")
        assert await communicator.receive_from() == "client 10"
        assert await communicator.receive_from() == "layer 10"
    finally:
        loop.set_task_factory(None)
    ours = ("Dispatcher", "SerialLoop", "AsyncConsumer", "InMemoryChannelLayer", "Queue")
    mine = [name for name in started if name.startswith(ours)]
    assert mine == ["SerialLoop._work"] * 2, started  # 22 messages, 2 bursts after idling
    await communicator.disconnect()
    await communicator.wait(1)


async def test_a_client_message_and_the_disconnect_interrupt_a_lingering_worker() -> None:
    """A lingering worker is woken by a client message as by the layer's readiness: the message
    is handled at once, in order with the layer's, and the disconnect still ends the consumer
    at once."""
    communicator = WebsocketCommunicator(Interleaved.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_to(text_data="0")
    assert await communicator.receive_from() == "client 0"
    assert await communicator.receive_from() == "layer 0"
    for number in range(1, 4):  # each arrives while the worker lingers
        await asyncio.sleep(0.02)
        await communicator.send_to(text_data=str(number))
        assert await communicator.receive_from() == f"client {number}"
        assert await communicator.receive_from() == f"layer {number}"
    started = time.monotonic()
    await communicator.disconnect()
    await communicator.wait(1)
    assert time.monotonic() - started < LINGER_PERIOD


class Collector(AsyncConsumer):
    """Counts layer events; its client only connects and disconnects."""

    groups = ["burst"]

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        await self.send({"type": "websocket.accept"})
        self.seen: list[int] = []

    async def burst_event(self, event: dict[str, Any]) -> None:
        self.seen.append(event["n"])
        if len(self.seen) == 50:
            await self.send({"type": "websocket.send", "text": ",".join(map(str, self.seen))})

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        raise StopConsumer()


async def test_a_burst_of_layer_messages_to_an_idle_consumer_starts_one_worker() -> None:
    """Messages queued on an idle consumer's channel all at once wake it once: one worker task
    handles them all, in order, and the consumer is back to its one task afterwards."""
    loop = asyncio.get_running_loop()
    started: list[str] = []
    counting_factory = task_factory_recording(started)

    before = asyncio.all_tasks()
    communicator = WebsocketCommunicator(Collector.as_asgi(), "/ws/")
    await communicator.connect()
    await asyncio.sleep(0.01)
    assert len(asyncio.all_tasks() - before) == 1
    layer = get_channel_layer()
    assert layer is not None
    loop.set_task_factory(counting_factory)
    try:
        for number in range(50):
            await layer.group_send("burst", {"type": "burst.event", "n": number})
        assert await communicator.receive_from() == ",".join(map(str, range(50)))
    finally:
        loop.set_task_factory(None)
    assert [name for name in started if name.startswith("SerialLoop")] == ["SerialLoop._work"]
    await wait_for_tasks(before, 1, timeout=4 * LINGER_PERIOD)  # the worker lingered, then ended
    await communicator.disconnect()


user_name: contextvars.ContextVar[str] = contextvars.ContextVar("user_name", default="nobody")


class Remembering(AsyncWebsocketConsumer):
    """Sets a context variable in one handler and reads it in later ones."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data and text_data.startswith("I am "):
            user_name.set(text_data[5:])
            return
        assert self.channel_layer is not None and self.channel_name is not None
        await self.channel_layer.send(self.channel_name, {"type": "who.event"})

    async def who_event(self, event: dict[str, Any]) -> None:
        await self.send(text_data=user_name.get())


async def test_handlers_share_one_context_across_bursts() -> None:
    """A worker task ends when the consumer goes idle, yet what one handler set in a context
    variable is still seen by handlers of later bursts (as when one task ran them all)."""
    before = asyncio.all_tasks()
    communicator = WebsocketCommunicator(Remembering.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_to(text_data="I am ada")
    await asyncio.sleep(0.02)
    assert len(asyncio.all_tasks() - before) == 1  # idle: that worker has ended
    await communicator.send_to(text_data="who?")
    assert await communicator.receive_from() == "ada"
    assert user_name.get() == "nobody"  # the consumer's context, not the caller's
    await communicator.disconnect()
