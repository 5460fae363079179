"""The session meta API across router processes (consumers/wamp/cluster_sessions.py and
meta_cluster.py): real server processes on a private Redis, autobahn-python clients on each."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from functools import partial
from typing import Any

import pytest

from channel_layers.memory import InMemoryChannelLayer
from consumers.wamp import Realm, Router
from consumers.wamp.ids import pattern_id
from consumers.wamp.state import LocalRoutingState
from tests.wamp._autobahn import ApplicationError, SubscribeOptions
from tests.wamp.conftest import Client, Wamp
from tests.wamp.test_cluster import BOUND, SYNC, router_process, until, wamp_at
from tests.wamp.test_meta import Recorder

pytestmark = pytest.mark.transports("asyncio")


async def test_two_routers_on_one_memory_layer_share_the_meta_api() -> None:
    layer = InMemoryChannelLayer()
    a = Router([Realm("realm1")], channel_layer=layer, sync_interval=SYNC)
    b = Router([Realm("realm1")], channel_layer=layer, sync_interval=SYNC)
    on_a, on_b = a.join("realm1"), b.join("realm1")
    try:
        leaves: asyncio.Queue[Any] = asyncio.Queue()
        on_a.subscribe("wamp.session.on_leave", lambda *args: leaves.put_nowait(args))
        realm_b = b.realm("realm1")
        assert realm_b is not None and realm_b.cluster is not None
        cluster_b = realm_b.cluster
        await until(lambda: cluster_b.interest.matching("wamp.session.on_leave"))
        assert await on_b.call("wamp.session.list") == [on_a.id, on_b.id]
        assert await on_a.call("wamp.session.list") == [on_a.id, on_b.id]
        on_a.subscribe("com.t", lambda: None)
        on_b.subscribe("com.t", lambda: None)
        await asyncio.gather(on_a.settled(), on_b.settled())  # SUBSCRIBED on both
        topic_a = pattern_id("realm1", "com.t", "exact")
        for router in (a, b):  # one subscription ID for the pattern on both nodes
            realm = router.realm("realm1")
            assert realm is not None
            assert [s.id for s in realm.state.subscriptions_matching("com.t")] == [topic_a]
        for caller in (on_a, on_b):
            subscribers = await caller.call("wamp.subscription.list_subscribers", topic_a)
            assert sorted(subscribers) == sorted([on_a.id, on_b.id])
        b_id = on_b.id
        assert await on_a.call("wamp.session.kill_by_authrole", "trusted") == [b_id]
        leave = await asyncio.wait_for(leaves.get(), 5)
        assert (leave[0], leave[2]) == (b_id, "trusted")
        assert await on_a.call("wamp.session.count") == 1
    finally:
        for router in (a, b):
            assert router.node is not None
            router.node.stop()


@pytest.fixture
def prefix() -> str:
    return f"wamp-meta-{os.urandom(4).hex()}"


def sid(client: Client) -> int:
    return int(client._session_id)


async def recorded(*clients: Client) -> None:
    """Return once each client's node has recorded it in the registry: its own node answers
    its meta calls after that (the record is written just after WELCOME)."""
    for client in clients:
        assert (await client.call("wamp.session.get", sid(client)))["session"] == sid(client)


async def answers(clients: list[Client], procedure: str, *args: Any) -> Any:
    """The answer to ``procedure``, asserted to be the same from a client of every process."""
    results = [await client.call(procedure, *args) for client in clients]
    assert all(result == results[0] for result in results), results
    return results[0]


async def watch(watcher: Client, topics: list[str]) -> Recorder:
    recorder = Recorder()
    for topic in topics:
        await watcher.subscribe(recorder.on(topic), topic)
    return recorder


async def join_announced(recorder: Recorder, session_id: int) -> dict[str, Any]:
    """The on_join of ``session_id`` (its one argument is the session's details)."""
    while True:
        for topic, args in recorder.events:
            if topic == "wamp.session.on_join" and args[0]["session"] == session_id:
                return dict(args[0])
        recorder.changed.clear()
        await recorder.changed.wait()


async def join_seen(wamp: Wamp, recorder: Recorder, timeout: float = 5.0) -> Client:
    """A client of ``wamp``'s process, once the watcher's node announces its on_join (so the
    watcher's meta subscriptions have reached that process)."""
    deadline = time.monotonic() + timeout
    while True:
        client = await wamp.connect()
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await asyncio.wait_for(join_announced(recorder, sid(client)), 0.5)
            return client
        assert time.monotonic() < deadline, "no on_join crossed the processes"
        client.leave()


async def test_sessions_are_counted_listed_got_and_killed_across_processes(
    redis_url: str, prefix: str
) -> None:
    with (
        router_process(redis_url, prefix) as (port_a, _),
        router_process(redis_url, prefix) as (port_b, _),
    ):
        wamp_a, wamp_b = wamp_at(port_a), wamp_at(port_b)
        try:
            a, b = await wamp_a.connect(), await wamp_b.connect()
            await recorded(a, b)
            both = [a, b]
            assert await answers(both, "wamp.session.count", ["anonymous"]) == 2
            listed = await answers(both, "wamp.session.list")
            assert {sid(a), sid(b)} <= set(listed)
            assert await answers(both, "wamp.session.count") == len(listed)
            assert await answers(both, "wamp.session.list", ["anonymous"]) == [sid(a), sid(b)]
            details = await answers(both, "wamp.session.get", sid(b))
            assert details["authid"] == (await b.joined).authid
            assert details["authrole"] == "anonymous" and details["authmethod"] == "anonymous"
            assert details["transport"]["peer"] == "127.0.0.1"
            with pytest.raises(ApplicationError) as unknown:
                await a.call("wamp.session.get", 12345)
            assert unknown.value.error == "wamp.error.no_such_session"

            b_id = sid(b)
            await a.call("wamp.session.kill", b_id, reason="com.example.bye", message="go")
            left = await asyncio.wait_for(b.left, 5)
            assert (left.reason, left.message) == ("com.example.bye", "go")
            with pytest.raises(ApplicationError) as gone:
                await a.call("wamp.session.kill", b_id)
            assert gone.value.error == "wamp.error.no_such_session"
            b = await wamp_b.connect()
            await recorded(b)
            assert await answers([a, b], "wamp.session.count", ["anonymous"]) == 2

            b2 = await wamp_b.connect()
            await recorded(b2)
            b2_id = sid(b2)
            killed = await a.call("wamp.session.kill_by_authid", (await b2.joined).authid)
            assert killed == [b2_id]
            assert (await asyncio.wait_for(b2.left, 5)).reason == "wamp.close.killed"

            a2 = await wamp_a.connect()
            await recorded(a2)
            victims = sorted([sid(a2), sid(b)])
            killed = await a.call("wamp.session.kill_by_authrole", "anonymous", "com.example.all")
            assert sorted(killed) == victims  # not the caller
            for victim in (a2, b):
                assert (await asyncio.wait_for(victim.left, 5)).reason == "com.example.all"
            b = await wamp_b.connect()
            await recorded(b)
            assert await answers([a, b], "wamp.session.list", ["anonymous"]) == [sid(a), sid(b)]
        finally:
            await wamp_a.close()
            await wamp_b.close()


async def test_subscribers_and_callees_across_processes(redis_url: str, prefix: str) -> None:
    with (
        router_process(redis_url, prefix) as (port_a, _),
        router_process(redis_url, prefix) as (port_b, _),
    ):
        wamp_a, wamp_b = wamp_at(port_a), wamp_at(port_b)
        try:
            a, b = await wamp_a.connect(), await wamp_b.connect()
            await recorded(a, b)
            both = [a, b]
            prefix_match = SubscribeOptions(match="prefix")
            on_a = await a.subscribe(lambda *args: None, "com.news", options=prefix_match)
            on_b = await b.subscribe(lambda *args: None, "com.news", options=prefix_match)
            assert on_a.id == on_b.id  # one subscription, whichever process holds a subscriber
            subscription = on_a.id
            assert subscription in (await answers(both, "wamp.subscription.list"))["prefix"]
            lookup = await answers(
                both, "wamp.subscription.lookup", "com.news", {"match": "prefix"}
            )
            assert lookup == subscription
            assert await answers(both, "wamp.subscription.match", "com.news.x") == [subscription]
            assert (await answers(both, "wamp.subscription.get", subscription))["uri"] == "com.news"
            subscribers = await answers(both, "wamp.subscription.list_subscribers", subscription)
            assert sorted(subscribers) == sorted([sid(a), sid(b)])
            assert await answers(both, "wamp.subscription.count_subscribers", subscription) == 2

            reg_a = await a.register(lambda: "a", "com.work", options=_roundrobin())
            reg_b = await b.register(lambda: "b", "com.work", options=_roundrobin())
            assert reg_a.id == reg_b.id
            registration = reg_a.id
            assert registration in (await answers(both, "wamp.registration.list"))["exact"]
            assert await answers(both, "wamp.registration.lookup", "com.work") == registration
            assert await answers(both, "wamp.registration.match", "com.work") == registration
            got = await answers(both, "wamp.registration.get", registration)
            assert (got["uri"], got["invoke"]) == ("com.work", "roundrobin")
            callees = await answers(both, "wamp.registration.list_callees", registration)
            assert sorted(callees) == sorted([sid(a), sid(b)])
            assert await answers(both, "wamp.registration.count_callees", registration) == 2

            await on_b.unsubscribe()
            assert await answers(both, "wamp.subscription.count_subscribers", subscription) == 1
            await reg_a.unregister()
            assert await answers(both, "wamp.registration.list_callees", registration) == [sid(b)]
            b.leave()
            await asyncio.wait_for(b.closed.wait(), 5)
            with pytest.raises(ApplicationError) as gone:
                await a.call("wamp.registration.get", registration)
            assert gone.value.error == "wamp.error.no_such_registration"
        finally:
            await wamp_a.close()
            await wamp_b.close()


def _roundrobin() -> Any:
    from tests.wamp._autobahn import RegisterOptions

    return RegisterOptions(invoke="roundrobin")


async def test_meta_events_reach_subscribers_on_other_processes(
    redis_url: str, prefix: str
) -> None:
    with (
        router_process(redis_url, prefix) as (port_a, _),
        router_process(redis_url, prefix) as (port_b, _),
    ):
        wamp_a, wamp_b = wamp_at(port_a), wamp_at(port_b)
        try:
            watcher = await wamp_a.connect()
            recorder = await watch(watcher, ["wamp.session.on_join", "wamp.session.on_leave"])
            for kind in ("subscription", "registration"):
                await watcher.subscribe(
                    recorder.on(kind),
                    f"wamp.{kind}.",
                    options=SubscribeOptions(match="prefix", details_arg=None),
                )
            actor = await join_seen(wamp_b, recorder)
            actor_id = sid(actor)
            joined = await join_announced(recorder, actor_id)
            # The on_join left the actor's process after the actor's record: listed everywhere.
            assert actor_id in await watcher.call("wamp.session.list")
            assert joined["authrole"] == "anonymous"
            subscription = await actor.subscribe(lambda: None, "com.news")
            registration = await actor.register(lambda: 1, "com.add")
            actor.leave()
            subscription_events = await recorder.wait_for("subscription", 4, actor_id)
            assert subscription_events[0][1]["uri"] == "com.news"
            assert [args[1] for args in subscription_events[1:]] == [subscription.id] * 3
            registration_events = await recorder.wait_for("registration", 4, actor_id)
            assert [args[1] for args in registration_events[1:]] == [registration.id] * 3
            [leave] = await recorder.wait_for("wamp.session.on_leave", 1, actor_id)
            assert leave[0] == actor_id
            with pytest.raises(ApplicationError) as gone:
                await watcher.call("wamp.session.get", actor_id)
            assert gone.value.error == "wamp.error.no_such_session"
        finally:
            await wamp_a.close()
            await wamp_b.close()


async def test_a_killed_process_takes_its_sessions_out_and_each_leaves_once(
    redis_url: str, prefix: str
) -> None:
    with (
        router_process(redis_url, prefix) as (port_a, _),
        router_process(redis_url, prefix) as (port_b, process_b),
        router_process(redis_url, prefix) as (port_c, _),
    ):
        wamp_a, wamp_b, wamp_c = wamp_at(port_a), wamp_at(port_b), wamp_at(port_c)
        try:
            on_a, on_c = await wamp_a.connect(), await wamp_c.connect()
            recorders = [
                await watch(w, ["wamp.session.on_join", "wamp.session.on_leave"])
                for w in (on_a, on_c)
            ]
            doomed = [await join_seen(wamp_b, recorders[0])]
            await asyncio.wait_for(join_announced(recorders[1], sid(doomed[0])), 5)
            doomed.append(await wamp_b.connect())
            await recorded(*doomed)
            leaver = await wamp_b.connect()  # leaves by itself: announced by B, not again
            await recorded(leaver)
            leaver_id = sid(leaver)
            leaver.leave()
            for recorder in recorders:
                await recorder.wait_for("wamp.session.on_leave", 1, leaver_id)
            doomed_ids = {sid(d) for d in doomed}
            before = set(await answers([on_a, on_c], "wamp.session.list"))
            process_b.kill()
            killed = time.monotonic()
            while True:
                # (the two reads may straddle the purge: they agree once it has happened)
                seen = [set(await w.call("wamp.session.list")) for w in (on_a, on_c)]
                if all(doomed_ids.isdisjoint(listed) for listed in seen):
                    after = set(await answers([on_a, on_c], "wamp.session.list"))
                    break
                assert time.monotonic() - killed < BOUND, "the dead process's sessions stayed"
                await asyncio.sleep(0.05)
            took = time.monotonic() - killed
            lost = before - after  # the clients and the in-process components of B
            assert doomed_ids <= lost
            for recorder in recorders:
                for session_id in lost:
                    await recorder.wait_for("wamp.session.on_leave", 1, session_id)
            # Every node reads the registry each SYNC: a second announcement would come by then.
            await asyncio.sleep(SYNC * 4)
            for recorder in recorders:
                leaves = [
                    args[0] for topic, args in recorder.events if topic == "wamp.session.on_leave"
                ]
                # (a probe client of join_seen may have left before, announced by B itself)
                assert lost <= set(leaves) and len(leaves) == len(set(leaves)), leaves
            print(f"sessions of the killed process left count/list after {took:.2f}s")
            assert leaver_id in leaves
        finally:
            for wamp in (wamp_a, wamp_b, wamp_c):
                await wamp.close()


def test_one_pattern_has_one_subscription_id_on_every_node() -> None:
    ids = partial(pattern_id, "realm1")
    a, b = LocalRoutingState(subscription_id=ids), LocalRoutingState(subscription_id=ids)
    on_a, on_b = a.subscribe(1, "com.x", "exact"), b.subscribe(2, "com.x", "exact")
    assert on_a.id == on_b.id == pattern_id("realm1", "com.x", "exact")
    assert 1 <= on_a.id <= 2**53
    assert a.subscribe(1, "com.x", "prefix").id != on_a.id  # another match policy
    assert pattern_id("realm2", "com.x", "exact") != on_a.id  # another realm
    # Two patterns with one derived ID (a hash collision): the second gets a random one.
    colliding = LocalRoutingState(subscription_id=lambda topic, match: 7)
    first, second = (
        colliding.subscribe(1, "com.a", "exact"),
        colliding.subscribe(1, "com.b", "exact"),
    )
    assert first.id == 7 and second.id != 7
    assert colliding.subscriptions_matching("com.b") == [second]
    colliding.drop_session(1)
    assert colliding.is_empty()


async def test_a_stopped_process_announces_each_leave_once(redis_url: str, prefix: str) -> None:
    with (
        router_process(redis_url, prefix) as (port_a, _),
        router_process(redis_url, prefix) as (port_b, process_b),
    ):
        wamp_a, wamp_b = wamp_at(port_a), wamp_at(port_b)
        try:
            watcher = await wamp_a.connect()
            recorder = await watch(watcher, ["wamp.session.on_join", "wamp.session.on_leave"])
            client = await join_seen(wamp_b, recorder)
            client_id = sid(client)
            before = set(await watcher.call("wamp.session.list"))
            process_b.send_signal(signal.SIGTERM)  # graceful: its sessions leave, then it ends
            process_b.wait(timeout=15)
            await recorder.wait_for("wamp.session.on_leave", 1, client_id)
            stopped = time.monotonic()
            while client_id in (after := set(await watcher.call("wamp.session.list"))):
                assert time.monotonic() - stopped < BOUND
                await asyncio.sleep(0.05)
            for session_id in before - after:  # B's components too, by B or by A's sweep
                await recorder.wait_for("wamp.session.on_leave", 1, session_id)
            # Past the dead-process bound, A's sweeps would have announced them again by now.
            await asyncio.sleep(BOUND)
            await watcher.call("wamp.session.list")
            leaves = [
                args[0] for topic, args in recorder.events if topic == "wamp.session.on_leave"
            ]
            assert len(leaves) == len(set(leaves)), leaves
        finally:
            await wamp_a.close()
            await wamp_b.close()
