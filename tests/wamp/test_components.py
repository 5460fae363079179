"""In-process components and publish/call from anywhere, with autobahn-python clients."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from consumers.wamp import JoinRefused, Realm, Router, call, call_sync, publish, publish_sync
from tests.wamp._autobahn import ApplicationError

pytestmark = pytest.mark.transports("asyncio")


def make_router() -> Router:
    router = Router(realms=[Realm("realm1")])

    @router.register("realm1", "com.local.add")
    async def add(a: int, b: int) -> int:
        return a + b

    @router.register("realm1", "com.local.thread")
    def which_thread() -> list[Any]:  # a sync handler: runs in the thread pool
        return [threading.current_thread().name, router.in_loop_thread()]

    @router.register("realm1", "com.local.refuse")
    def refuse() -> None:
        raise ApplicationError("com.local.error.refused", "no")

    @router.subscribe("realm1", "com.local.inbox")
    async def echo(*args: Any, **kwargs: Any) -> None:
        await publish("realm1", "com.local.outbox", *args, **kwargs)

    @router.subscribe("realm1", "com.local.sync_inbox")
    def sync_echo(*args: Any) -> None:
        publish_sync("realm1", "com.local.outbox", "from a thread", *args)

    return router


async def test_declared_handlers_answer_remote_clients(wamp_server: Any) -> None:
    router = make_router()
    async with wamp_server(router) as wamp:
        client = await wamp.connect()
        assert await client.call("com.local.add", 2, 3) == 5
        name, in_loop = await client.call("com.local.thread")
        assert in_loop is False and name != "asgi-server-under-test"
        with pytest.raises(ApplicationError) as info:
            await client.call("com.local.refuse")
        assert info.value.error == "com.local.error.refused" and info.value.args == ("no",)
        outbox: asyncio.Queue[Any] = asyncio.Queue()
        await client.subscribe(
            lambda *args, **kw: outbox.put_nowait((args, kw)), "com.local.outbox"
        )
        client.publish("com.local.inbox", 1, k="v")
        assert await asyncio.wait_for(outbox.get(), 2) == ((1,), {"k": "v"})
        client.publish("com.local.sync_inbox", 2)
        assert await asyncio.wait_for(outbox.get(), 2) == (("from a thread", 2), {})


async def test_publish_and_call_from_other_threads(wamp_server: Any) -> None:
    router = Router(realms=[Realm("realm1")])
    async with wamp_server(router) as wamp:
        client = await wamp.connect()
        news: asyncio.Queue[Any] = asyncio.Queue()
        await client.subscribe(lambda *args, **kw: news.put_nowait((args, kw)), "com.news")
        await client.register(lambda x: x * 2, "com.double")
        # A Django view (or any sync code in another thread):
        publication = await asyncio.to_thread(publish_sync, "realm1", "com.news", "hi", n=1)
        assert publication >= 1 and await asyncio.wait_for(news.get(), 2) == (("hi",), {"n": 1})
        assert await asyncio.to_thread(call_sync, "realm1", "com.double", 21) == 42
        # In the router's own thread, publish_sync runs directly; call_sync refuses to block it.
        await wamp.run_in_router(lambda: publish_sync("realm1", "com.news", "inside"))
        assert await asyncio.wait_for(news.get(), 2) == (("inside",), {})
        with pytest.raises(RuntimeError, match="would block"):
            await wamp.run_in_router(lambda: call_sync("realm1", "com.double", 1))
        # Async code in the router's loop.
        assert await wamp.run_in_router(lambda: call("realm1", "com.double", 5)) == 10
        with pytest.raises(ApplicationError) as info:
            await wamp.run_in_router(lambda: call("realm1", "com.nothing"))
        assert info.value.error == "wamp.error.no_such_procedure"


async def test_joined_component_with_a_role_and_timeouts(wamp_server: Any) -> None:
    router = Router(realms=[Realm("realm1")])
    async with wamp_server(router) as wamp:
        client = await wamp.connect()
        got: asyncio.Queue[Any] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def deliver(*args: Any) -> None:
            loop.call_soon_threadsafe(got.put_nowait, args)

        component = await wamp.run_in_router(lambda: router.join("realm1", authrole="backend"))
        await wamp.run_in_router(lambda: component.subscribe("com.jobs", deliver))
        client.publish("com.jobs", "for backends")
        from tests.wamp._autobahn import PublishOptions

        await client.publish(
            "com.jobs",
            "not for backends",
            options=PublishOptions(exclude_authrole=["backend"], acknowledge=True),
        )
        client.publish("com.jobs", "again")
        assert await asyncio.wait_for(got.get(), 2) == ("for backends",)
        assert await asyncio.wait_for(got.get(), 2) == ("again",)

        never = asyncio.Event()

        async def hang() -> None:
            await never.wait()

        await client.register(hang, "com.hang")
        with pytest.raises(ApplicationError) as info:
            await wamp.run_in_router(lambda: component.call("com.hang", timeout=0.2))
        assert info.value.error == "wamp.error.timeout"
        await wamp.run_in_router(component.leave)
        assert not component.is_attached
        with pytest.raises(RuntimeError, match="has left"):
            await wamp.run_in_router(lambda: component.publish("com.jobs"))
        with pytest.raises(JoinRefused, match="no_such_realm"):
            await wamp.run_in_router(lambda: router.join("nowhere"))


def test_sync_helpers_need_a_running_router() -> None:
    Router(realms=[Realm("idle-realm")])
    with pytest.raises(RuntimeError, match="not running yet"):
        publish_sync("idle-realm", "com.topic")
    with pytest.raises(LookupError, match="no Router"):
        publish_sync("no-such-realm", "com.topic")


async def test_conflicting_declared_handlers_fail_clearly() -> None:
    router = Router(realms=[Realm("realm1")])
    router.register("realm1", "com.twice")(lambda: 1)
    router.register("realm1", "com.twice")(lambda: 2)
    with pytest.raises(RuntimeError, match="declared handlers could not start"):
        router.bind()
    assert router.loop is None


async def test_plain_event_and_progress_handlers_see_messages_in_delivery_order() -> None:
    """Plain handlers run in the thread pool; each still waits for the ones before it, so a
    slow first event is handled before a quick second one (they once ran side by side, and the
    meta events on_unsubscribe and on_delete could be seen the wrong way round)."""
    router = Router(realms=[Realm("realm1")])
    component = router.join("realm1")
    seen: list[Any] = []
    done = asyncio.Event()
    loop = asyncio.get_running_loop()

    def handler(number: int, pause: float) -> None:
        threading.Event().wait(pause)  # the thread, not the loop, waits
        seen.append(number)
        if len(seen) == 6:
            loop.call_soon_threadsafe(done.set)

    component.subscribe("com.order.a", handler)
    component.subscribe("com.order.b", handler)
    publisher = router.join("realm1")
    for number, topic, pause in [
        (1, "com.order.a", 0.2),
        (2, "com.order.b", 0.0),
        (3, "com.order.a", 0.1),
        (4, "com.order.b", 0.0),
        (5, "com.order.b", 0.05),
        (6, "com.order.a", 0.0),
    ]:
        publisher.publish(topic, number, pause)
    await asyncio.wait_for(done.wait(), 10)
    assert seen == [1, 2, 3, 4, 5, 6]
