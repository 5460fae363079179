"""Pub/sub through the real server with autobahn-python clients, on json, msgpack and cbor."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consumers.wamp import Limits, Realm, Router
from tests.wamp._autobahn import ApplicationError, PublishOptions, SubscribeOptions

pytestmark = pytest.mark.transports("asyncio")


class Inbox:
    """Collects events (args, kwargs, details) for a subscriber."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[tuple[Any, ...], dict[str, Any], Any]] = asyncio.Queue()

    def __call__(self, *args: Any, details: Any = None, **kwargs: Any) -> None:
        self.queue.put_nowait((args, kwargs, details))

    async def get(self, timeout: float = 2.0) -> tuple[tuple[Any, ...], dict[str, Any], Any]:
        return await asyncio.wait_for(self.queue.get(), timeout)


DETAILS = SubscribeOptions(details_arg="details")


async def sync_point(publisher: Any, inbox: Inbox, topic: str) -> None:
    """Wait until a marker on ``topic`` arrives: everything published before it has been routed."""
    publisher.publish(topic, "marker")
    args, _, _ = await inbox.get()
    assert args == ("marker",)


async def test_publish_subscribe_and_acknowledge(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        a, b = await wamp.connect(), await wamp.connect()
        inbox = Inbox()
        subscription = await a.subscribe(inbox, "com.example.topic", options=DETAILS)
        publication = await b.publish(
            "com.example.topic",
            1,
            "two",
            {"three": 3},
            b"\x00bin",
            flag=True,
            options=PublishOptions(acknowledge=True),
        )
        args, kwargs, details = await inbox.get()
        assert args == (1, "two", {"three": 3}, b"\x00bin") and kwargs == {"flag": True}
        assert details.publication == publication.id and details.subscription.id == subscription.id
        assert details.publisher is None  # not disclosed by default
        await subscription.unsubscribe()
        b.publish("com.example.topic", "after")
        marker = Inbox()
        await a.subscribe(marker, "com.example.marker")
        await sync_point(b, marker, "com.example.marker")
        assert inbox.queue.empty()


async def test_exclude_me_and_exclude_eligible(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        a, b, c = await wamp.connect(), await wamp.connect(), await wamp.connect()
        inboxes = {"a": Inbox(), "b": Inbox(), "c": Inbox()}
        for name, client in zip("abc", (a, b, c), strict=True):
            await client.subscribe(inboxes[name], "com.topic")

        async def receivers(**options: Any) -> set[str]:
            await a.publish("com.topic", "x", options=PublishOptions(acknowledge=True, **options))
            await a.publish(
                "com.topic", "end", options=PublishOptions(acknowledge=True, exclude_me=False)
            )
            got = set()
            for name, inbox in inboxes.items():
                while True:
                    args, _, _ = await inbox.get()
                    if args == ("end",):
                        break
                    got.add(name)
            return got

        assert await receivers() == {"b", "c"}
        assert await receivers(exclude_me=False) == {"a", "b", "c"}
        assert await receivers(exclude=[b._session_id]) == {"c"}
        assert await receivers(eligible=[b._session_id]) == {"b"}
        assert await receivers(exclude_authid=[c._authid]) == {"b"}
        assert await receivers(eligible_authrole=["anonymous"]) == {"b", "c"}
        assert await receivers(exclude_authrole=["anonymous"]) == set()


async def test_pattern_subscriptions_carry_the_topic(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        a, b = await wamp.connect(), await wamp.connect()
        prefix, wildcard = Inbox(), Inbox()
        await a.subscribe(
            prefix, "com.app", options=SubscribeOptions(match="prefix", details_arg="details")
        )
        await a.subscribe(
            wildcard, "com..temp", options=SubscribeOptions(match="wildcard", details_arg="details")
        )
        b.publish("com.app.temp", 21)
        b.publish("com.room.temp", 22)
        args, _, details = await prefix.get()
        assert args == (21,) and details.topic == "com.app.temp"
        got = {(await wildcard.get())[2].topic, (await wildcard.get())[2].topic}
        assert got == {"com.app.temp", "com.room.temp"}


async def test_retained_events(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        publisher = await wamp.connect()
        await publisher.publish(
            "com.status", "old", options=PublishOptions(retain=True, acknowledge=True)
        )
        await publisher.publish(
            "com.status", "new", options=PublishOptions(retain=True, acknowledge=True)
        )
        late = await wamp.connect()
        inbox = Inbox()
        await late.subscribe(
            inbox, "com.status", options=SubscribeOptions(get_retained=True, details_arg="details")
        )
        args, _, details = await inbox.get()
        assert args == ("new",) and details.retained is True
        assert inbox.queue.empty()


async def test_publisher_disclosure_by_realm_policy(wamp_server: Any) -> None:
    router = Router(realms=[Realm("realm1", disclose_publisher=True)])
    async with wamp_server(router) as wamp:
        a, b = await wamp.connect(), await wamp.connect()
        inbox = Inbox()
        await a.subscribe(inbox, "com.topic", options=DETAILS)
        b.publish("com.topic")
        _, _, details = await inbox.get()
        assert details.publisher == b._session_id
        assert details.publisher_authid == b._authid and details.publisher_authrole == "anonymous"


async def test_errors_and_subscription_limit(wamp_server: Any) -> None:
    router = Router(realms=[Realm("realm1")], limits=Limits(max_subscriptions_per_session=2))
    async with wamp_server(router) as wamp:
        client = await wamp.connect()
        await client.subscribe(Inbox(), "com.a")
        await client.subscribe(Inbox(), "com.b")
        with pytest.raises(ApplicationError) as info:
            await client.subscribe(Inbox(), "com.c")
        assert info.value.error == "crossway.error.limit_exceeded"
        with pytest.raises(ApplicationError) as info:
            await client.publish("Bad.Topic", options=PublishOptions(acknowledge=True))
        assert info.value.error == "wamp.error.invalid_uri"
        assert client.is_attached()


async def test_fan_out_to_many_subscribers(wamp_server: Any) -> None:
    async with wamp_server() as wamp:
        subscribers = [await wamp.connect() for _ in range(20)]
        inboxes = [Inbox() for _ in subscribers]
        for client, inbox in zip(subscribers, inboxes, strict=True):
            await client.subscribe(inbox, "com.fan")
        publisher = await wamp.connect()
        for i in range(10):
            publisher.publish("com.fan", i)
        for inbox in inboxes:
            assert [(await inbox.get())[0][0] for _ in range(10)] == list(range(10))  # in order
