"""consumers.tasks on the in-memory layer: a TaskWorker in the test's own process.

The in-memory layer's queues live in one process, so these tests run the worker on the test's
event loop (as a development server would); tests/tasks/test_workers.py runs real worker
processes on Redis.
"""

from __future__ import annotations

import asyncio
import datetime
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from channel_layers.base import InvalidMessage
from channel_layers.memory import InMemoryChannelLayer
from consumers.tasks import (
    Queue,
    TaskCancelled,
    TaskContext,
    TaskFailed,
    TaskHandle,
    TaskWorker,
    backoff_delay,
)

StartWorker = Callable[..., TaskWorker]


@pytest.fixture
def videos() -> Queue:
    """A queue on a fresh in-memory layer, with a short lease."""
    return Queue("videos", layer=InMemoryChannelLayer(), lease=1.0, result_ttl=60)


@pytest.fixture
async def start_worker() -> AsyncIterator[StartWorker]:
    """``start_worker(queue, concurrency=...)`` runs a TaskWorker until the test ends."""
    stop = asyncio.Event()
    runs: list[asyncio.Future[None]] = []

    def start(*queues: Queue, **options: Any) -> TaskWorker:
        worker = TaskWorker(list(queues), poll_interval=0.1, **options)
        runs.append(asyncio.ensure_future(worker.run(stop)))
        return worker

    yield start
    stop.set()
    await asyncio.wait_for(asyncio.gather(*runs), 10)


async def test_sync_and_async_tasks_return_their_results(
    videos: Queue, start_worker: StartWorker
) -> None:
    threads: list[str] = []

    @videos.task("encode.video", retries=3, timeout=600)
    def encode(ctx: TaskContext, path: str, scale: int = 1) -> dict[str, Any]:
        threads.append(threading.current_thread().name)
        return {"path": path, "scale": scale, "attempt": ctx.attempt}

    @videos.task("probe")
    async def probe(ctx: TaskContext, path: str) -> str:
        return f"probed {path}"

    start_worker(videos)
    first = await videos.enqueue("encode.video", "/tmp/b.mov", scale=2)
    second = await probe.enqueue("/tmp/c.mov")
    assert await first.result(timeout=5) == {"path": "/tmp/b.mov", "scale": 2, "attempt": 1}
    assert await second.result(timeout=5) == "probed /tmp/c.mov"
    assert threads[0].startswith("task")  # the worker's thread pool, not the loop's thread
    status = await first.status()
    assert status is not None and status.state == "done" and status.attempts == 1


async def test_append_from_a_thread(videos: Queue, start_worker: StartWorker) -> None:
    @videos.task("add")
    def add(ctx: TaskContext, a: int, b: int) -> int:
        return a + b

    start_worker(videos)
    handle = await asyncio.to_thread(videos.append, "add", 2, 3)
    assert await handle.result(timeout=5) == 5
    with pytest.raises(RuntimeError, match=r"await queue\.enqueue"):
        videos.append("add", 1, 1)


async def test_a_bad_argument_fails_at_enqueue(videos: Queue) -> None:
    bad = r"cannot enqueue 'encode\.video': keyword argument 'lock' has type lock"
    with pytest.raises(InvalidMessage, match=bad):
        await videos.enqueue("encode.video", "/tmp/a.mov", lock=threading.Lock())
    with pytest.raises(ValueError, match="between -100 and 100"):
        await videos.enqueue("encode.video", priority=101)
    assert (await videos.store.counts("videos")) == {}


async def test_failures_are_retried_with_backoff_then_dead_lettered(
    videos: Queue, start_worker: StartWorker
) -> None:
    attempts: list[float] = []

    @videos.task("flaky", retries=2, backoff=0.2)
    async def flaky(ctx: TaskContext) -> None:
        attempts.append(time.monotonic())
        raise RuntimeError(f"attempt {ctx.attempt} failed")

    start_worker(videos)
    handle = await flaky.enqueue()
    with pytest.raises(TaskFailed, match="RuntimeError: attempt 3 failed"):
        await handle.result(timeout=10)
    assert len(attempts) == 3
    # Retry n waits between half and all of backoff * 2**(n-1).
    assert attempts[1] - attempts[0] >= 0.1
    assert attempts[2] - attempts[1] >= 0.2
    dead = await videos.dead_letters()
    assert [info.job_id for info in dead] == [handle.id]
    assert await videos.purge_dead() == 1


async def test_a_dead_letter_can_be_retried(videos: Queue, start_worker: StartWorker) -> None:
    fail = [True]

    @videos.task("once")
    def once(ctx: TaskContext) -> str:
        if fail[0]:
            raise ValueError("not yet")
        return "fine"

    start_worker(videos)
    handle = await once.enqueue()
    with pytest.raises(TaskFailed):
        await handle.result(timeout=5)
    fail[0] = False
    assert await videos.retry_dead() == 1
    assert await handle.result(timeout=5) == "fine"


async def test_a_timeout_fails_the_attempt(videos: Queue, start_worker: StartWorker) -> None:
    @videos.task("slow", timeout=0.2)
    async def slow(ctx: TaskContext) -> None:
        await asyncio.sleep(30)

    start_worker(videos)
    handle = await slow.enqueue()
    with pytest.raises(TaskFailed, match=r"timed out after 0\.2 s"):
        await handle.result(timeout=5)


async def test_priority_delay_and_cancel(videos: Queue, start_worker: StartWorker) -> None:
    order: list[str] = []

    @videos.task("record")
    async def record(ctx: TaskContext, label: str) -> None:
        order.append(label)

    later = await record.enqueue("later", run_after=datetime.timedelta(seconds=0.3))
    cancelled = await record.enqueue("cancelled")
    await record.enqueue("low", priority=-5)
    await record.enqueue("high", priority=5)
    assert await cancelled.cancel()
    start_worker(videos, concurrency=1)
    await later.result(timeout=5)
    assert order == ["high", "low", "later"]
    with pytest.raises(TaskCancelled):
        await cancelled.result(timeout=1)


async def test_idempotency_key_drops_duplicates(videos: Queue) -> None:
    first = await videos.enqueue("mail", "a@example.com", idempotency_key="welcome-7")
    again = await videos.enqueue("mail", "a@example.com", idempotency_key="welcome-7")
    assert again.id == first.id and first.created and not again.created


async def test_progress_is_stored_and_sent_to_the_group(start_worker: StartWorker) -> None:
    layer = InMemoryChannelLayer()
    queue = Queue("jobs", layer=layer, lease=3, progress_group="progress")
    channel = await layer.new_channel()
    await layer.group_add("progress", channel)
    proceed = threading.Event()

    @queue.task("steps")
    def steps(ctx: TaskContext) -> None:
        ctx.progress(0.4)
        proceed.wait(5)

    start_worker(queue)
    handle = await steps.enqueue()
    message = await asyncio.wait_for(layer.receive(channel), 5)
    assert message == {
        "type": "task.progress",
        "queue": "jobs",
        "job_id": handle.id,
        "name": "steps",
        "progress": 0.4,
    }
    status = await handle.status()
    assert status is not None and status.progress == 0.4 and status.state == "running"
    proceed.set()
    await handle.result(timeout=5)


async def stop_while_running(
    videos: Queue, name: str, runtime: float, shutdown_timeout: float
) -> TaskHandle:
    """Enqueue a task that takes ``runtime`` seconds and returns "finished", stop the worker
    once the task has started, and return the task's handle after the worker has stopped."""
    started = asyncio.Event()

    @videos.task(name)
    async def task(ctx: TaskContext) -> str:
        started.set()
        await asyncio.sleep(runtime)
        return "finished"

    stop = asyncio.Event()
    worker = TaskWorker([videos], poll_interval=0.1, shutdown_timeout=shutdown_timeout)
    running = asyncio.ensure_future(worker.run(stop))
    handle = await task.enqueue()
    await started.wait()
    stop.set()
    await asyncio.wait_for(running, 5)
    return handle


async def test_shutdown_lets_running_tasks_finish(videos: Queue) -> None:
    handle = await stop_while_running(videos, "short", runtime=0.3, shutdown_timeout=5)
    assert await handle.result(timeout=0) == "finished"


async def test_shutdown_requeues_tasks_that_overrun_it(videos: Queue) -> None:
    handle = await stop_while_running(videos, "long", runtime=30, shutdown_timeout=0.2)
    status = await handle.status()
    assert status is not None and status.state == "pending" and status.attempts == 0


def test_backoff_doubles_with_jitter_up_to_the_cap(videos: Queue) -> None:
    task = videos.task("t", backoff=2, max_backoff=10)(lambda ctx: None)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (4, 10), (9, 10)]:
        delays = [backoff_delay(task, attempt) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1


async def test_result_times_out_or_says_the_job_is_unknown(videos: Queue) -> None:
    handle = await videos.enqueue("nobody.runs.this")
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"did not finish within 0\.2 s"):
        await handle.result(timeout=0.2)
    assert time.monotonic() - started >= 0.2
    with pytest.raises(LookupError, match="no task nope on queue 'videos'"):
        await videos.handle("nope").result(timeout=5)
