"""AsyncConsumer and SyncConsumer: dispatch by type, errors, StopConsumer, as_asgi, groups."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from typing import Any

import pytest

from channel_layers import BaseChannelLayer
from consumers import (
    AsyncConsumer,
    InvalidChannelLayerError,
    NoHandlerError,
    StopConsumer,
    SyncConsumer,
    base,
)
from consumers.base import get_handler_name
from consumers.testing import TypedCommunicator

SCOPE = {"type": "custom", "path": "/x/"}


class Echo(AsyncConsumer):
    """Answers 'ping.me' with 'pong' and stops on 'bye.now'."""

    async def ping_me(self, message: dict[str, Any]) -> None:
        await self.send({"type": "pong", "n": message["n"]})

    async def bye_now(self, message: dict[str, Any]) -> None:
        raise StopConsumer()


async def test_dispatch_by_type_and_stop() -> None:
    communicator = TypedCommunicator(Echo.as_asgi(), dict(SCOPE))
    await communicator.send_input({"type": "ping.me", "n": 1})
    await communicator.send_input({"type": "ping.me", "n": 2})
    assert await communicator.receive_output() == {"type": "pong", "n": 1}
    assert await communicator.receive_output() == {"type": "pong", "n": 2}
    await communicator.send_input({"type": "bye.now"})
    await communicator.wait(1)  # returns: StopConsumer ended the consumer cleanly


async def test_unknown_type_names_consumer_type_and_method() -> None:
    communicator = TypedCommunicator(Echo.as_asgi(), dict(SCOPE))
    await communicator.send_input({"type": "chat.mesage"})
    with pytest.raises(NoHandlerError) as info:
        await communicator.wait(1)
    text = str(info.value)
    assert "Echo" in text and "'chat.mesage'" in text and "'chat_mesage'" in text


async def test_leading_underscore_type_is_refused() -> None:
    communicator = TypedCommunicator(Echo.as_asgi(), dict(SCOPE))
    await communicator.send_input({"type": "_private"})
    with pytest.raises(ValueError, match="leading underscore"):
        await communicator.wait(1)


class CountingDispatch(Echo):
    """Echo whose dispatch() counts what passes through it, then dispatches as usual."""

    dispatched: list[str] = []

    async def dispatch(self, message: dict[str, Any]) -> None:
        self.dispatched.append(message["type"])
        await super().dispatch(message)


async def test_a_dispatch_of_ones_own_is_called_however_it_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """_handle calls the handler itself only while dispatch() is AsyncConsumer's own: an
    override in a subclass, a patched class or an as_asgi() keyword is still called."""
    CountingDispatch.dispatched = []
    seen: list[str] = []

    async def patched(self: Any, message: dict[str, Any]) -> None:
        seen.append("class:" + message["type"])
        await self.get_handler(message)(message)

    async def per_instance(message: dict[str, Any]) -> None:
        seen.append("instance:" + message["type"])
        if message["type"] == "bye.now":
            raise StopConsumer()

    class Patched(Echo):
        pass

    monkeypatch.setattr(Patched, "dispatch", patched)
    apps = [CountingDispatch.as_asgi(), Patched.as_asgi(), Echo.as_asgi(dispatch=per_instance)]
    for app, answers in zip(apps, (True, True, False), strict=True):
        communicator = TypedCommunicator(app, dict(SCOPE))
        await communicator.send_input({"type": "ping.me", "n": 1})
        if answers:
            assert await communicator.receive_output() == {"type": "pong", "n": 1}
        await communicator.send_input({"type": "bye.now"})
        await communicator.wait(1)
    assert CountingDispatch.dispatched == ["ping.me", "bye.now"]
    assert seen[:2] == ["class:ping.me", "class:bye.now"]
    assert seen[2:] == ["instance:ping.me", "instance:bye.now"]


def test_handler_names_are_checked_for_every_type_and_their_memo_stays_bounded() -> None:
    for _ in range(2):  # the second time from the memo
        assert get_handler_name({"type": "chat.message"}) == "chat_message"
        with pytest.raises(ValueError, match="leading underscore"):
            get_handler_name({"type": "._private"})
        with pytest.raises(ValueError, match="no string 'type'"):
            get_handler_name({"type": ["chat.message"]})
    for index in range(3000):
        assert get_handler_name({"type": f"room.{index}"}) == f"room_{index}"
    assert len(base._handler_names) <= base._HANDLER_NAMES_MAX
    assert get_handler_name({"type": "chat.message"}) == "chat_message"


async def test_as_asgi_initkwargs_set_attributes_and_reject_unknown() -> None:
    class Greeter(AsyncConsumer):
        greeting = "hello"

        async def greet(self, message: dict[str, Any]) -> None:
            await self.send({"type": "greeting", "text": self.greeting})

    app = Greeter.as_asgi(greeting="bonjour")
    assert app.consumer_class is Greeter  # type: ignore[attr-defined]
    communicator = TypedCommunicator(app, dict(SCOPE))
    await communicator.send_input({"type": "greet"})
    assert (await communicator.receive_output())["text"] == "bonjour"
    communicator.stop()
    with pytest.raises(TypeError, match="greting"):
        Greeter.as_asgi(greting="typo")


async def test_sync_consumer_runs_handlers_in_a_worker_thread() -> None:
    loop_thread = threading.get_ident()

    class Threads(SyncConsumer):
        def where(self, message: dict[str, Any]) -> None:
            self.send({"type": "thread", "in_loop_thread": threading.get_ident() == loop_thread})

    communicator = TypedCommunicator(Threads.as_asgi(), dict(SCOPE))
    await communicator.send_input({"type": "where"})
    assert await communicator.receive_output() == {"type": "thread", "in_loop_thread": False}
    communicator.stop()


async def test_sync_consumer_unknown_type_says_def() -> None:
    communicator = TypedCommunicator(SyncConsumer.as_asgi(), dict(SCOPE))
    await communicator.send_input({"type": "x.y"})
    with pytest.raises(NoHandlerError, match=r"def x_y\(self, message\)"):
        await communicator.wait(1)


class Relay(AsyncConsumer):
    """Joins 'lobby'; forwards layer events to the client; 'who' tells its channel name."""

    groups = ["lobby"]

    async def who(self, message: dict[str, Any]) -> None:
        await self.send({"type": "me", "channel": self.channel_name})

    async def lobby_event(self, message: dict[str, Any]) -> None:
        await self.send({"type": "event", "text": message["text"]})

    async def custom_disconnect(self, message: dict[str, Any]) -> None:
        pass  # the base leaves the groups before this, and stops after it


async def test_layer_messages_reach_the_consumer_and_groups_are_left(
    memory_layer: BaseChannelLayer,
) -> None:
    communicator = TypedCommunicator(Relay.as_asgi(), dict(SCOPE))
    await communicator.send_input({"type": "who"})
    channel = (await communicator.receive_output())["channel"]
    assert channel.startswith("specific.") and "!" in channel
    await memory_layer.send(channel, {"type": "lobby.event", "text": "direct"})
    assert await communicator.receive_output() == {"type": "event", "text": "direct"}
    await memory_layer.group_send("lobby", {"type": "lobby.event", "text": "to all"})
    assert await communicator.receive_output() == {"type": "event", "text": "to all"}
    await communicator.send_input({"type": "custom.disconnect"})
    await communicator.wait(1)
    # Left the group: a group_send no longer reaches the channel.
    await memory_layer.group_send("lobby", {"type": "lobby.event", "text": "late"})
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.1):
            await memory_layer.receive(channel)


async def test_groups_without_a_layer_is_a_clear_error() -> None:
    communicator = TypedCommunicator(Relay.as_asgi(channel_layer_alias=None), dict(SCOPE))
    with pytest.raises(InvalidChannelLayerError, match="configure one"):
        await communicator.wait(1)


async def test_no_layer_means_no_channel_name() -> None:
    class Plain(AsyncConsumer):
        channel_layer_alias = None

        async def who(self, message: dict[str, Any]) -> None:
            await self.send({"type": "me", "channel": self.channel_name})
            raise StopConsumer()

    communicator = TypedCommunicator(Plain.as_asgi(), dict(SCOPE))
    await communicator.send_input({"type": "who"})
    assert await communicator.receive_output() == {"type": "me", "channel": None}
    await communicator.wait(1)


async def test_handler_error_propagates_and_groups_are_still_left(
    memory_layer: BaseChannelLayer,
) -> None:
    class Broken(Relay):
        async def who(self, message: dict[str, Any]) -> None:
            await self.send({"type": "me", "channel": self.channel_name})
            raise RuntimeError("boom")

    communicator = TypedCommunicator(Broken.as_asgi(), dict(SCOPE))
    await communicator.send_input({"type": "who"})
    channel = (await communicator.receive_output())["channel"]
    with pytest.raises(RuntimeError, match="boom"):
        await communicator.wait(1)
    await memory_layer.group_send("lobby", {"type": "lobby.event", "text": "late"})
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.1):
            await memory_layer.receive(channel)


def test_import_consumers_without_django() -> None:
    code = (
        "import sys; sys.modules['django'] = None\n"
        "import consumers, consumers.routing, consumers.security, consumers.middleware\n"
        "import consumers.testing, consumers.worker, consumers.sync, consumers.http\n"
        "from consumers.sync import database_sync_to_async\n"
        "import asyncio\n"
        "print(asyncio.run(database_sync_to_async(lambda: 'ran')()))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ran"


async def test_a_layer_message_without_handler_is_dropped_and_logged_once(
    memory_layer: BaseChannelLayer, caplog: pytest.LogCaptureFixture
) -> None:
    """One bad group_send must not close every member: each drops it, logs once per class and
    type, and goes on handling the good ones."""
    members = [TypedCommunicator(Relay.as_asgi(), dict(SCOPE)) for _ in range(2)]
    for member in members:
        await member.send_input({"type": "who"})
        await member.receive_output()
    with caplog.at_level(logging.ERROR, logger="consumers"):
        for _ in range(3):
            await memory_layer.group_send("lobby", {"type": "lobby.typo", "text": "x"})
        await memory_layer.group_send("lobby", {"type": "lobby.event", "text": "still here"})
        for member in members:
            assert await member.receive_output() == {"type": "event", "text": "still here"}
    # The consumers' own records: asyncio may log a task of an earlier test's closed loop here.
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and r.name.startswith("consumers")
    ]
    assert len(errors) == 1, errors
    assert "Relay has no handler for message type 'lobby.typo'" in errors[0]
    assert "raise_on_unhandled_layer_message" in errors[0]
    for member in members:
        await member.send_input({"type": "custom.disconnect"})
        await member.wait(1)


async def test_unhandled_layer_messages_can_end_the_consumer_as_in_channels(
    memory_layer: BaseChannelLayer,
) -> None:
    strict = Relay.as_asgi(raise_on_unhandled_layer_message=True)
    communicator = TypedCommunicator(strict, dict(SCOPE))
    await communicator.send_input({"type": "who"})
    await communicator.receive_output()
    await memory_layer.group_send("lobby", {"type": "lobby.typo"})
    with pytest.raises(NoHandlerError, match=r"'lobby\.typo'"):
        await communicator.wait(1)
