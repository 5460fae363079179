"""Subscription and registration meta events once per cluster (consumers/wamp/
cluster_lifecycle.py): two routers on one in-memory layer, then real server processes on a
private Redis with autobahn-python clients, one of them killed, one stopped past the TTL."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest

from channel_layers.memory import InMemoryChannelLayer
from consumers.wamp import Realm, Router
from tests.wamp._autobahn import ApplicationError, RegisterOptions
from tests.wamp.test_cluster import BOUND, HEARTBEAT, SYNC, router_process, until, wamp_at
from tests.wamp.test_meta import Recorder
from tests.wamp.test_meta_cluster import join_announced, join_seen, prefix, recorded, sid, watch

__all__ = ["prefix"]  # the fixture, shared with test_meta_cluster.py

pytestmark = pytest.mark.transports("asyncio")

SUBSCRIPTION = [f"wamp.subscription.on_{e}" for e in ("create", "subscribe", "unsubscribe")]
REGISTRATION = [f"wamp.registration.on_{e}" for e in ("create", "register", "unregister")]
LIFECYCLE = [
    *SUBSCRIPTION,
    "wamp.subscription.on_delete",
    *REGISTRATION,
    "wamp.registration.on_delete",
]
SESSION = ["wamp.session.on_join", "wamp.session.on_leave"]


def about(recorder: Recorder, item: int, session: int | None = None) -> list[str]:
    """The topics of the recorded events about ``item`` (by ``session``), in arrival order."""
    found = []
    for topic, args in recorder.events:
        if topic.endswith("on_create"):
            item_id = args[1]["id"]
        elif topic.startswith("wamp.session."):
            continue
        else:
            item_id = args[1]
        if item_id == item and (session is None or args[0] == session):
            found.append(topic.rsplit(".on_", 1)[1])
    return found


def joins(recorder: Recorder, session_id: int) -> int:
    """How many times ``session_id`` was announced as joined."""
    return sum(
        1
        for topic, args in recorder.events
        if topic == "wamp.session.on_join" and args[0]["session"] == session_id
    )


async def settled(recorder: Recorder, item: int, expected: list[str]) -> None:
    """Wait until the events about ``item`` are ``expected``, then a while longer (a second
    on_create or on_delete from another node would arrive by then) and check again."""
    deadline = time.monotonic() + 10
    while sorted(about(recorder, item)) != sorted(expected):
        assert time.monotonic() < deadline, (about(recorder, item), expected)
        recorder.changed.clear()
        await asyncio.wait([asyncio.ensure_future(recorder.changed.wait())], timeout=0.2)
    await asyncio.sleep(SYNC * 4)
    assert sorted(about(recorder, item)) == sorted(expected)


async def test_two_routers_announce_a_shared_pattern_once() -> None:
    layer = InMemoryChannelLayer()
    a = Router([Realm("realm1")], channel_layer=layer, sync_interval=SYNC)
    b = Router([Realm("realm1")], channel_layer=layer, sync_interval=SYNC)
    watcher, on_a, on_b = a.join("realm1"), a.join("realm1"), b.join("realm1")
    recorder = Recorder()
    try:
        for topic in LIFECYCLE:
            watcher.subscribe(topic, recorder.on(topic))
        realm_b = b.realm("realm1")
        assert realm_b is not None and realm_b.cluster is not None
        cluster_b = realm_b.cluster
        await until(lambda: all(cluster_b.interest.matching(t) for t in LIFECYCLE))
        topic_id = on_a.subscribe("com.t", lambda: None)
        assert on_b.subscribe("com.t", lambda: None) == topic_id
        on_a.register("com.rr", lambda: "a", invoke="roundrobin")
        on_b.register("com.rr", lambda: "b", invoke="roundrobin")
        await until(lambda: len(about(recorder, topic_id)) == 3)
        procedure = await on_a.call("wamp.registration.lookup", "com.rr")
        await settled(recorder, topic_id, ["create", "subscribe", "subscribe"])
        await settled(recorder, procedure, ["create", "register", "register"])
        on_b.leave()  # the pattern and the procedure stay: on A
        await settled(recorder, topic_id, ["create", "subscribe", "subscribe", "unsubscribe"])
        on_a.leave()
        both = ["create", "subscribe", "subscribe", "unsubscribe", "unsubscribe", "delete"]
        await settled(recorder, topic_id, both)
        assert about(recorder, topic_id)[-2:] == ["unsubscribe", "delete"]
        both = ["create", "register", "register", "unregister", "unregister", "delete"]
        await settled(recorder, procedure, both)
    finally:
        for router in (a, b):
            assert router.node is not None
            router.node.stop()


async def test_a_router_whose_entries_were_purged_claims_them_again() -> None:
    """What a late process does when it runs again, without stopping one: B's entries are
    taken out of the registry behind its back (as a sweep of a process taken for dead does)."""
    layer = InMemoryChannelLayer()
    a = Router([Realm("realm1")], channel_layer=layer, sync_interval=SYNC)
    # No periodic read on B: one between the purge and B's count below would claim the entries
    # back before the count (seen as a count of 2 on a loaded machine). B's count is a read of
    # its own, and that read is what claims them back.
    b = Router([Realm("realm1")], channel_layer=layer, sync_interval=3600)
    watcher, on_b = a.join("realm1"), b.join("realm1")
    recorder = Recorder()
    try:
        for topic in [*LIFECYCLE, *SESSION]:
            watcher.subscribe(topic, recorder.on(topic))
        realm_b = b.realm("realm1")
        assert realm_b is not None and realm_b.cluster is not None
        cluster_b = realm_b.cluster
        await until(lambda: all(cluster_b.interest.matching(t) for t in LIFECYCLE))
        topic_id = on_b.subscribe("com.b", lambda: None)
        await settled(recorder, topic_id, ["create", "subscribe"])
        registry, node = cluster_b.node.registry, cluster_b.node.channel
        for space in (cluster_b.session_space, cluster_b.sub_space):
            await registry.leave(space, node)
        assert on_b.id not in await watcher.call("wamp.session.list")
        assert await on_b.call("wamp.session.count") == 1  # B's read: its own session is gone
        await until(lambda: joins(recorder, on_b.id) == 1, timeout=10)
        assert on_b.id in await watcher.call("wamp.session.list")
        await settled(recorder, topic_id, ["create", "subscribe", "create", "subscribe"])
        await until(lambda: cluster_b.node.channel in set().union(*_interest(a, "com.b")))
    finally:
        for router in (a, b):
            assert router.node is not None
            router.node.stop()


def _interest(router: Router, topic: str) -> list[set[str]]:
    realm = router.realm("realm1")
    assert realm is not None and realm.cluster is not None
    return realm.cluster.interest.matching(topic)


async def test_the_same_pattern_on_two_processes_is_created_and_deleted_once(
    redis_url: str, prefix: str
) -> None:
    with (
        router_process(redis_url, prefix) as (port_a, _),
        router_process(redis_url, prefix) as (port_b, _),
    ):
        wamp_a, wamp_b = wamp_at(port_a), wamp_at(port_b)
        try:
            watcher = await wamp_a.connect()
            recorder = await watch(watcher, [*LIFECYCLE, *SESSION])
            b = await join_seen(wamp_b, recorder)
            a = await wamp_a.connect()
            await recorded(a, b)
            shared = RegisterOptions(invoke="roundrobin")
            on_a = await a.subscribe(lambda: None, "com.news")
            on_b = await b.subscribe(lambda: None, "com.news")
            reg_a = await a.register(lambda: "a", "com.work", options=shared)
            reg_b = await b.register(lambda: "b", "com.work", options=shared)
            assert (on_a.id, reg_a.id) == (on_b.id, reg_b.id)
            await settled(recorder, on_a.id, ["create", "subscribe", "subscribe"])
            await settled(recorder, reg_a.id, ["create", "register", "register"])
            await on_a.unsubscribe()
            await reg_b.unregister()
            await settled(recorder, on_a.id, ["create", "subscribe", "subscribe", "unsubscribe"])
            await on_b.unsubscribe()
            await reg_a.unregister()
            gone = ["create", "subscribe", "subscribe", "unsubscribe", "unsubscribe", "delete"]
            await settled(recorder, on_a.id, gone)
            gone = ["create", "register", "register", "unregister", "unregister", "delete"]
            await settled(recorder, reg_a.id, gone)
        finally:
            await wamp_a.close()
            await wamp_b.close()


async def test_a_killed_process_unsubscribes_and_unregisters_its_sessions_once(
    redis_url: str, prefix: str
) -> None:
    with (
        router_process(redis_url, prefix) as (port_a, _),
        router_process(redis_url, prefix) as (port_b, process_b),
        router_process(redis_url, prefix) as (port_c, _),
    ):
        wamps = [wamp_at(port) for port in (port_a, port_b, port_c)]
        try:
            watchers = [await wamps[i].connect() for i in (0, 2)]
            recorders = [await watch(w, [*LIFECYCLE, *SESSION]) for w in watchers]
            doomed = await join_seen(wamps[1], recorders[0])
            await join_announced(recorders[1], sid(doomed))
            survivor = await wamps[0].connect()
            alone = await doomed.subscribe(lambda: None, "com.alone")
            shared = await doomed.subscribe(lambda: None, "com.shared")
            await survivor.subscribe(lambda: None, "com.shared")
            procedure = await doomed.register(lambda: 1, "com.doomed")
            for recorder in recorders:
                await settled(recorder, procedure.id, ["create", "register"])
            process_b.kill()
            doomed_id = sid(doomed)
            for recorder in recorders:
                await recorder.wait_for("wamp.session.on_leave", 1, doomed_id)
                await settled(recorder, alone.id, ["create", "subscribe", "unsubscribe", "delete"])
                whole = ["create", "register", "unregister", "delete"]
                await settled(recorder, procedure.id, whole)
                shared_events = ["create", "subscribe", "subscribe", "unsubscribe"]
                await settled(recorder, shared.id, shared_events)  # the survivor holds it
                # Each of the session's events came before its on_leave, from the one sweeper.
                mine = [
                    topic
                    for topic, args in recorder.events
                    if topic != "wamp.session.on_join" and args and args[0] == doomed_id
                ]
                assert mine[-1] == "wamp.session.on_leave" and mine.count(mine[-1]) == 1, mine
                assert mine.index("wamp.subscription.on_delete") > mine.index(
                    "wamp.subscription.on_unsubscribe"
                )
            with pytest.raises(ApplicationError):
                await survivor.call("wamp.registration.get", procedure.id)
            assert await survivor.call("wamp.subscription.count_subscribers", shared.id) == 1
        finally:
            for wamp in wamps:
                await wamp.close()


async def test_a_process_stopped_past_the_ttl_claims_its_sessions_again(
    redis_url: str, prefix: str
) -> None:
    with (
        router_process(redis_url, prefix) as (port_a, _),
        router_process(redis_url, prefix) as (port_b, process_b),
    ):
        wamp_a, wamp_b = wamp_at(port_a), wamp_at(port_b)
        try:
            watcher = await wamp_a.connect()
            recorder = await watch(watcher, [*LIFECYCLE, *SESSION])
            late = await join_seen(wamp_b, recorder)
            late_id = sid(late)
            events: asyncio.Queue[Any] = asyncio.Queue()
            topic = await late.subscribe(lambda *args: events.put_nowait(args), "com.late")
            taken = await late.register(lambda: "late", "com.single")
            kept = await late.register(lambda: "kept", "com.kept")
            await settled(recorder, kept.id, ["create", "register"])
            process_b.send_signal(signal.SIGSTOP)
            stopped = time.monotonic()
            try:
                await recorder.wait_for("wamp.session.on_leave", 1, late_id)
                await settled(recorder, taken.id, ["create", "register", "unregister", "delete"])
                took = time.monotonic() - stopped
                thief = await wamp_a.connect()
                stolen = await thief.register(lambda: "thief", "com.single")
            finally:
                process_b.send_signal(signal.SIGCONT)
            resumed = time.monotonic()
            # Back: B finds its sessions purged and claims them again, announced again.
            while late_id not in await watcher.call("wamp.session.list"):
                assert time.monotonic() - resumed < BOUND * 3, "the late session stayed out"
                await asyncio.sleep(0.05)
            back_after = time.monotonic() - resumed
            await until(lambda: joins(recorder, late_id) == 2)
            back = ["create", "subscribe", "unsubscribe", "delete", "create", "subscribe"]
            await settled(recorder, topic.id, back)
            back = ["create", "register", "unregister", "delete", "create", "register"]
            await settled(recorder, kept.id, back)
            assert await watcher.call("com.kept") == "kept"  # routed to B again
            assert await watcher.call("com.single") == "thief"  # B's callee lost it
            assert await late.call("com.single") == "thief"  # B forgot its own
            assert await watcher.call("wamp.registration.list_callees", stolen.id) == [sid(thief)]
            with pytest.raises(ApplicationError):
                await watcher.call("wamp.registration.get", taken.id)
            callees = await watcher.call("wamp.registration.list_callees", kept.id)
            assert callees == [late_id]
            subscribers = await watcher.call("wamp.subscription.list_subscribers", topic.id)
            assert subscribers == [late_id]
            await watcher.publish("com.late", "again", options=_acknowledged())
            assert await asyncio.wait_for(events.get(), 5) == ("again",)
            print(
                f"purged after {took:.2f}s stopped (heartbeat_ttl {HEARTBEAT}s), "
                f"listed again {back_after:.2f}s after SIGCONT"
            )
        finally:
            await wamp_a.close()
            await wamp_b.close()


def _acknowledged() -> Any:
    from tests.wamp._autobahn import PublishOptions

    return PublishOptions(acknowledge=True, exclude_me=False)
