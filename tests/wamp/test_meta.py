"""The session meta API through the real server, with autobahn-python clients."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consumers.wamp import Realm, Router
from consumers.wamp.roles import Permission, Role
from tests.wamp._autobahn import ApplicationError, SubscribeOptions

pytestmark = pytest.mark.transports("asyncio")


class Recorder:
    """Collects meta events by topic and lets a test wait for the next one."""

    def __init__(self) -> None:
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.changed = asyncio.Event()

    def on(self, topic: str) -> Any:
        def handler(*args: Any) -> None:
            self.events.append((topic, args))
            self.changed.set()

        return handler

    async def wait_for(
        self, topic: str, count: int = 1, session: int | None = None
    ) -> list[tuple[Any, ...]]:
        """The events on ``topic`` (about ``session`` only, when given), once ``count`` came."""
        for _ in range(500):
            found = [
                args
                for t, args in self.events
                if t == topic and (session is None or args[0] == session)
            ]
            if len(found) >= count:
                return found
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), 5)
        raise AssertionError(f"no {topic}")


async def test_session_events_and_procedures(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        watcher = await wamp.connect()
        recorder = Recorder()
        for topic in ("wamp.session.on_join", "wamp.session.on_leave"):
            await watcher.subscribe(recorder.on(topic), topic)
        other = await wamp.connect()
        [(joined,)] = await recorder.wait_for("wamp.session.on_join")
        assert joined["session"] == other._session_id and joined["authrole"] == "anonymous"
        assert await watcher.call("wamp.session.count") == 2
        assert set(await watcher.call("wamp.session.list")) == {
            watcher._session_id,
            other._session_id,
        }
        assert await watcher.call("wamp.session.count", ["frontend"]) == 0
        details = await watcher.call("wamp.session.get", other._session_id)
        assert details["authid"] == joined["authid"]
        with pytest.raises(ApplicationError) as info:
            await watcher.call("wamp.session.get", 12345)
        assert info.value.error == "wamp.error.no_such_session"
        await watcher.call("wamp.session.kill", other._session_id, reason="com.example.bye")
        left = await asyncio.wait_for(other.left, 5)
        assert left.reason == "com.example.bye"
        [leave] = await recorder.wait_for("wamp.session.on_leave")
        assert leave[0] == joined["session"]
        assert await watcher.call("wamp.session.count") == 1


async def test_subscription_and_registration_meta(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        watcher, actor = await wamp.connect(), await wamp.connect()
        recorder = Recorder()
        for kind in ("subscription", "registration"):
            await watcher.subscribe(
                recorder.on(kind),
                f"wamp.{kind}.",
                options=SubscribeOptions(match="prefix", details_arg=None),
            )
        subscription = await actor.subscribe(
            lambda: None, "com.news", options=SubscribeOptions(match="prefix")
        )
        registration = await actor.register(lambda: 1, "com.add")
        sub_id, reg_id = subscription.id, registration.id
        assert sub_id in (await watcher.call("wamp.subscription.list"))["prefix"]
        assert (
            await watcher.call("wamp.subscription.lookup", "com.news", {"match": "prefix"})
            == sub_id
        )
        assert await watcher.call("wamp.subscription.lookup", "com.news") is None
        assert await watcher.call("wamp.subscription.match", "com.news.today") == [sub_id]
        assert (await watcher.call("wamp.subscription.get", sub_id))["uri"] == "com.news"
        assert await watcher.call("wamp.subscription.list_subscribers", sub_id) == [
            actor._session_id
        ]
        assert await watcher.call("wamp.subscription.count_subscribers", sub_id) == 1
        assert (await watcher.call("wamp.registration.list"))["exact"] == [reg_id]
        assert await watcher.call("wamp.registration.lookup", "com.add") == reg_id
        assert await watcher.call("wamp.registration.match", "com.add") == reg_id
        assert (await watcher.call("wamp.registration.get", reg_id))["invoke"] == "single"
        assert await watcher.call("wamp.registration.list_callees", reg_id) == [actor._session_id]
        assert await watcher.call("wamp.registration.count_callees", reg_id) == 1
        actor_id = actor._session_id
        actor.leave()
        # on_create, on_subscribe, then on the leave on_unsubscribe and on_delete, in order.
        subscription_events = await recorder.wait_for("subscription", 4, actor_id)
        assert len(subscription_events) == 4
        assert subscription_events[0][1]["uri"] == "com.news"
        assert [args[1] for args in subscription_events[1:]] == [sub_id] * 3
        registration_events = await recorder.wait_for("registration", 4, actor_id)
        assert [args[1] for args in registration_events[1:]] == [reg_id] * 3
        with pytest.raises(ApplicationError) as info:
            await watcher.call("wamp.registration.get", reg_id)
        assert info.value.error == "wamp.error.no_such_registration"


async def test_meta_procedures_are_authorized_like_any_call(wamp_server: Any) -> None:
    role = Role("anonymous", [Permission("wamp.session.count", call=True)])
    async with wamp_server(Router(realms=[Realm("realm1", roles=[role])])) as wamp:
        client = await wamp.connect()
        assert await client.call("wamp.session.count") == 1
        with pytest.raises(ApplicationError) as info:
            await client.call("wamp.session.kill_by_authrole", "anonymous")
        assert info.value.error == "wamp.error.not_authorized"
