"""The work-queue capability (channel_layers/queues.py), run on every backend that has it.

Adding a backend is one entry in ``QUEUE_BACKENDS``: a function that builds its layer. Lease and
schedule tests wait on the store's own timed wake-ups (a take that blocks until a job is due), so
their durations are the semantics under test, not guesses about scheduling.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from channel_layers.base import BaseChannelLayer, InvalidMessage
from channel_layers.memory import InMemoryChannelLayer
from channel_layers.memory_queues import MemoryQueueStore
from channel_layers.queues import NewJob, QueueStore, store_for
from tests.channel_layers.conftest import make_redis_cluster_layer, make_redis_tls_layer

LayerMaker = Callable[[pytest.FixtureRequest], Awaitable[BaseChannelLayer]]


async def memory_layer(request: pytest.FixtureRequest) -> BaseChannelLayer:
    """The in-memory layer."""
    return InMemoryChannelLayer()


async def redis_layer(request: pytest.FixtureRequest) -> BaseChannelLayer:
    """RedisChannelLayer on the test Redis, under a prefix of its own."""
    from channel_layers.redis import RedisChannelLayer

    url = request.getfixturevalue("redis_url")
    return RedisChannelLayer(hosts=[url], prefix=f"test-{os.urandom(4).hex()}")


async def redis_tls_layer(request: pytest.FixtureRequest) -> BaseChannelLayer:
    """RedisChannelLayer on redis-py over TLS (the contract suite's secure Redis)."""
    return await make_redis_tls_layer(request, {})


async def redis_cluster_layer(request: pytest.FixtureRequest) -> BaseChannelLayer:
    """RedisChannelLayer on redis-py's RedisCluster (each queue and claim in one slot)."""
    return await make_redis_cluster_layer(request, {})


#: The lean client (redis://) and redis-py (TLS, Cluster), as in the layer contract suite.
QUEUE_BACKENDS: dict[str, LayerMaker] = {
    "memory": memory_layer,
    "redis": redis_layer,
    "redis_tls": redis_tls_layer,
    "redis_cluster": redis_cluster_layer,
}


@pytest.fixture(params=list(QUEUE_BACKENDS))
async def store(request: pytest.FixtureRequest) -> AsyncIterator[QueueStore]:
    """The queue store of a fresh layer of each backend."""
    layer = await QUEUE_BACKENDS[request.param](request)
    yield layer.queue_store()
    await layer.flush()
    await layer.close()


@pytest.fixture
def queue() -> str:
    """A queue name no other test uses."""
    return f"q-{os.urandom(4).hex()}"


def job(name: str = "t", **fields: object) -> NewJob:
    payload = fields.pop("payload", {"args": [1, "two"], "kwargs": {}})
    return NewJob(name, payload, **fields)  # type: ignore[arg-type]


# --- enqueue and take -------------------------------------------------------------------------


async def test_a_taken_job_carries_its_payload_and_is_taken_once(
    store: QueueStore, queue: str
) -> None:
    enqueued = await store.enqueue(queue, job(payload={"data": b"\x00", "n": [1, {"a": None}]}))
    assert enqueued.created
    leased = await store.take(queue, lease=30, timeout=1)
    assert leased is not None
    assert (leased.job_id, leased.name, leased.attempt) == (enqueued.job_id, "t", 1)
    assert leased.payload == {"data": b"\x00", "n": [1, {"a": None}]}
    assert await store.take(queue, lease=30, timeout=0.05) is None
    info = await store.job(queue, enqueued.job_id)
    assert info is not None and info.state == "running" and info.attempts == 1


async def test_higher_priority_first_then_oldest(store: QueueStore, queue: str) -> None:
    for number, priority in enumerate([0, 5, 0, -3, 5]):
        await store.enqueue(queue, job(payload={"n": number}, priority=priority))
    order = []
    for _ in range(5):
        leased = await store.take(queue, lease=30, timeout=1)
        assert leased is not None
        order.append(leased.payload["n"])
    assert order == [1, 4, 0, 2, 3]


async def test_a_waiting_take_gets_a_later_enqueue(store: QueueStore, queue: str) -> None:
    taking = asyncio.ensure_future(store.take(queue, lease=30, timeout=5))
    await asyncio.sleep(0.05)
    assert not taking.done()
    enqueued = await store.enqueue(queue, job())
    leased = await asyncio.wait_for(taking, 5)
    assert leased is not None and leased.job_id == enqueued.job_id


async def test_concurrent_takers_never_share_a_job(store: QueueStore, queue: str) -> None:
    for number in range(60):
        await store.enqueue(queue, job(payload={"n": number}))
    seen: list[int] = []

    async def taker() -> None:
        while (leased := await store.take(queue, lease=30, timeout=0.2)) is not None:
            seen.append(leased.payload["n"])
            assert await store.ack(queue, leased.job_id, leased.token, None, 60)

    await asyncio.gather(*(taker() for _ in range(6)))
    assert sorted(seen) == list(range(60))


async def test_take_many_leases_several_best_first(store: QueueStore, queue: str) -> None:
    for number, priority in enumerate([0, 0, 9, 0]):
        await store.enqueue(queue, job(payload={"n": number}, priority=priority))
    taken = await store.take_many(queue, lease=30, timeout=1, limit=3)
    assert [leased.payload["n"] for leased in taken] == [2, 0, 1]
    assert len({leased.token for leased in taken}) == 3
    for leased in taken:
        assert await store.ack(queue, leased.job_id, leased.token, None, 60)
    last = await store.take_many(queue, lease=30, timeout=1, limit=3)
    assert [leased.payload["n"] for leased in last] == [3]
    assert await store.take_many(queue, lease=30, timeout=0.05, limit=3) == []


async def test_run_at_holds_a_job_back_until_due(store: QueueStore, queue: str) -> None:
    # Two seconds: a blocking pop on redis-py opens a connection (a TLS handshake), which a
    # loaded machine can make last longer than a short delay.
    due = time.time() + 2
    await store.enqueue(queue, job(run_at=due))
    assert await store.take(queue, lease=30, timeout=0.05) is None
    info = (await store.counts(queue))["t"]
    assert (info.scheduled, info.pending) == (1, 0)
    leased = await store.take(queue, lease=30, timeout=10)  # wakes when due, not at timeout
    assert leased is not None
    assert due <= time.time() < due + 3


async def test_the_payload_is_checked_and_copied_at_enqueue(store: QueueStore, queue: str) -> None:
    with pytest.raises(InvalidMessage, match=r"payload\['when'\]\[0\] has type object"):
        await store.enqueue(queue, job(payload={"when": [object()]}))
    payload = {"items": [1, 2]}
    await store.enqueue(queue, job(payload=payload))
    payload["items"].append(3)
    leased = await store.take(queue, lease=30, timeout=1)
    assert leased is not None and leased.payload == {"items": [1, 2]}
    assert await store.queues() == [queue] or queue in await store.queues()


# --- leases --------------------------------------------------------------------------------


async def test_a_lapsed_lease_gives_the_job_to_the_next_taker(
    store: QueueStore, queue: str
) -> None:
    await store.enqueue(queue, job(max_attempts=3))
    first = await store.take(queue, lease=0.3, timeout=1)
    assert first is not None
    second = await store.take(queue, lease=30, timeout=5)
    assert second is not None and second.job_id == first.job_id
    assert second.attempt == 2 and second.token != first.token
    # The first holder is stale now: nothing it does counts.
    assert not await store.ack(queue, first.job_id, first.token, "late", 60)
    assert not await store.renew(queue, first.job_id, first.token, 30)
    assert await store.ack(queue, second.job_id, second.token, "ok", 60)


async def test_renewing_keeps_the_lease(store: QueueStore, queue: str) -> None:
    await store.enqueue(queue, job(max_attempts=3))
    leased = await store.take(queue, lease=0.4, timeout=1)
    assert leased is not None
    # Renewed until 0.8 s, so held until 1.2 s: a taker giving up at 1.0 s gets nothing.
    other = asyncio.ensure_future(store.take(queue, lease=30, timeout=1.0))
    for progress in (0.25, 0.5, 0.75, 1.0):
        await asyncio.sleep(0.2)
        assert await store.renew(queue, leased.job_id, leased.token, 0.4, progress=progress)
    assert await other is None
    info = await store.job(queue, leased.job_id)
    assert info is not None and info.progress == 1.0 and info.state == "running"


async def test_a_job_whose_leases_keep_lapsing_is_dead_lettered(
    store: QueueStore, queue: str
) -> None:
    enqueued = await store.enqueue(queue, job(max_lost_leases=2))
    for _ in range(2):
        assert await store.take(queue, lease=0.2, timeout=5) is not None
    info = await store.wait(queue, enqueued.job_id, timeout=5)
    assert info is not None and info.state == "failed"
    assert info.error == "lease lost 2 times (worker died?)"
    assert [dead.job_id for dead in await store.dead_letters(queue)] == [enqueued.job_id]


async def test_release_puts_the_job_back_without_counting(store: QueueStore, queue: str) -> None:
    await store.enqueue(queue, job())
    leased = await store.take(queue, lease=30, timeout=1)
    assert leased is not None
    assert await store.release(queue, leased.job_id, leased.token)
    again = await store.take(queue, lease=30, timeout=1)
    assert again is not None and again.attempt == 1


# --- endings -------------------------------------------------------------------------------


async def test_ack_keeps_the_result_and_wakes_a_waiter(store: QueueStore, queue: str) -> None:
    enqueued = await store.enqueue(queue, job())
    waiting = asyncio.ensure_future(store.wait(queue, enqueued.job_id, timeout=5))
    leased = await store.take(queue, lease=30, timeout=1)
    assert leased is not None
    assert await store.ack(queue, leased.job_id, leased.token, {"frames": [1, 2]}, 60)
    info = await asyncio.wait_for(waiting, 5)
    assert info is not None and info.state == "done" and info.result == {"frames": [1, 2]}
    assert info.finished and info.finished_at is not None
    assert not await store.ack(queue, leased.job_id, leased.token, None, 60)


async def test_results_expire_after_their_ttl(store: QueueStore, queue: str) -> None:
    enqueued = await store.enqueue(queue, job())
    leased = await store.take(queue, lease=30, timeout=1)
    assert leased is not None
    await store.ack(queue, leased.job_id, leased.token, 1, result_ttl=0.2)
    assert await store.job(queue, enqueued.job_id) is not None
    await asyncio.sleep(0.4)
    assert await store.job(queue, enqueued.job_id) is None


async def test_nack_with_a_delay_retries_later(store: QueueStore, queue: str) -> None:
    await store.enqueue(queue, job(max_attempts=2))
    leased = await store.take(queue, lease=30, timeout=1)
    assert leased is not None
    nacked_at = time.time()
    assert await store.nack(queue, leased.job_id, leased.token, "boom", delay=0.3)
    info = await store.job(queue, leased.job_id)
    assert info is not None and info.state == "scheduled" and info.error == "boom"
    again = await store.take(queue, lease=30, timeout=5)
    assert again is not None and again.attempt == 2
    assert time.time() >= nacked_at + 0.3


async def test_a_job_records_when_it_started_and_which_workers_took_it(
    store: QueueStore, queue: str
) -> None:
    enqueued = await store.enqueue(queue, job(max_attempts=2))
    fresh = await store.job(queue, enqueued.job_id)
    assert fresh is not None and fresh.started_at is None and fresh.worker_ids == ()
    before = time.time()
    first = await store.take(queue, lease=30, timeout=1, worker="host-a:11")
    assert first is not None
    assert await store.nack(queue, first.job_id, first.token, "boom", delay=0.05)
    again = await store.take(queue, lease=30, timeout=5, worker="host-b:22")
    assert again is not None and again.attempt == 2
    info = await store.job(queue, enqueued.job_id)
    assert info is not None and info.worker_ids == ("host-a:11", "host-b:22")
    assert info.started_at is not None and info.last_attempted_at is not None
    # The server's clock may differ from ours by a millisecond's rounding.
    assert before - 0.01 <= info.started_at <= info.last_attempted_at - 0.05 + 0.01
    assert info.last_attempted_at <= time.time() + 0.01
    assert await store.ack(queue, again.job_id, again.token, "ok", 60)
    done = await store.job(queue, enqueued.job_id)
    assert done is not None and done.worker_ids == info.worker_ids
    assert done.started_at == info.started_at


async def test_dead_letters_can_be_listed_retried_and_purged(store: QueueStore, queue: str) -> None:
    ids = [(await store.enqueue(queue, job(payload={"n": n}))).job_id for n in range(3)]
    for _ in ids:
        leased = await store.take(queue, lease=30, timeout=1)
        assert leased is not None
        assert await store.nack(queue, leased.job_id, leased.token, "bad", delay=None)
    dead = await store.dead_letters(queue)
    assert [info.job_id for info in dead] == ids
    assert all(info.state == "failed" and info.error == "bad" for info in dead)
    assert (await store.counts(queue))["t"].failed == 3
    assert await store.retry_dead(queue, [ids[0]]) == 1
    leased = await store.take(queue, lease=30, timeout=1)
    assert leased is not None and leased.job_id == ids[0] and leased.attempt == 1
    assert await store.purge_dead(queue) == 2
    assert await store.dead_letters(queue) == []
    assert await store.job(queue, ids[1]) is None


async def test_cancel_ends_a_pending_job_but_not_a_running_one(
    store: QueueStore, queue: str
) -> None:
    pending = await store.enqueue(queue, job(run_at=time.time() + 60))
    running = await store.enqueue(queue, job())
    leased = await store.take(queue, lease=30, timeout=1)
    assert leased is not None and leased.job_id == running.job_id
    assert await store.cancel(queue, pending.job_id, result_ttl=60)
    assert not await store.cancel(queue, running.job_id, result_ttl=60)
    assert not await store.cancel(queue, "no-such-job", result_ttl=60)
    info = await store.wait(queue, pending.job_id, timeout=1)
    assert info is not None and info.state == "cancelled"
    counts = (await store.counts(queue))["t"]
    assert (counts.scheduled, counts.running, counts.cancelled) == (0, 1, 1)


# --- idempotency, counts, claims -------------------------------------------------------------


async def test_an_idempotency_key_drops_duplicates_within_its_ttl(
    store: QueueStore, queue: str
) -> None:
    first = await store.enqueue(queue, job(idempotency_key="mail-42", idempotency_ttl=0.3))
    again = await store.enqueue(queue, job(idempotency_key="mail-42", idempotency_ttl=0.3))
    assert again.job_id == first.job_id and not again.created
    assert (await store.counts(queue))["t"].pending == 1
    await asyncio.sleep(0.4)
    later = await store.enqueue(queue, job(idempotency_key="mail-42"))
    assert later.created and later.job_id != first.job_id


async def test_counts_are_per_task_name(store: QueueStore, queue: str) -> None:
    await store.enqueue(queue, job("a"))
    await store.enqueue(queue, job("a"))
    await store.enqueue(queue, job("b", run_at=time.time() + 60))
    counts = await store.counts(queue)
    assert (counts["a"].pending, counts["b"].scheduled) == (2, 1)
    assert await store.wait(queue, "unknown", timeout=0.01) is None


async def test_a_claim_belongs_to_one_owner_until_it_lapses(store: QueueStore) -> None:
    key = f"tick-{os.urandom(4).hex()}"
    assert await store.claim(key, "a", ttl=0.3)
    assert not await store.claim(key, "b", ttl=0.3)
    assert await store.claim(key, "a", ttl=0.3)  # renewal
    results = await asyncio.gather(*(store.claim(key + "x", f"o{n}", 30) for n in range(10)))
    assert results.count(True) == 1
    await asyncio.sleep(0.4)
    assert await store.claim(key, "b", ttl=30)
    assert not await store.release_claim(key, "a")
    assert await store.release_claim(key, "b")
    assert await store.claim(key, "a", ttl=30)


# --- the in-memory store's own rules ---------------------------------------------------------


async def test_memory_enqueue_from_another_thread_wakes_a_taker() -> None:
    store = store_for(InMemoryChannelLayer())
    taking = asyncio.ensure_future(store.take("q", lease=30, timeout=5))
    await asyncio.sleep(0.05)
    thread = threading.Thread(target=asyncio.run, args=(store.enqueue("q", job()),))
    thread.start()
    leased = await asyncio.wait_for(taking, 5)
    thread.join()
    assert leased is not None


async def test_jobs_of_one_priority_come_out_in_enqueue_order(
    store: QueueStore, queue: str
) -> None:
    for number in range(200):  # many per millisecond: the order cannot come from a clock
        await store.enqueue(queue, job(payload={"n": number}))
    taken = []
    for _ in range(200):
        leased = await store.take(queue, lease=30, timeout=1)
        assert leased is not None
        taken.append(leased.payload["n"])
    assert taken == list(range(200))


async def test_memory_forgets_expired_idempotency_keys() -> None:
    store = store_for(InMemoryChannelLayer())
    assert isinstance(store, MemoryQueueStore)
    for number in range(1023):
        await store.enqueue("q", job(idempotency_key=f"k{number}", idempotency_ttl=0.01))
    await asyncio.sleep(0.05)
    assert len(store._queues["q"].idempotency) == 1023
    await store.enqueue("q", job(idempotency_key="last"))  # the 1024th key: a sweep
    assert list(store._queues["q"].idempotency) == ["last"]
