"""Task progress pushed to a WAMP topic: an autobahn-python subscriber on the real server sees
``ctx.progress()`` of a task run by a worker on another loop of the same process."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from channel_layers.memory import InMemoryChannelLayer
from consumers.tasks import Queue, TaskContext, TaskWorker
from consumers.wamp import Realm, Router
from tests.conftest import RunningServer
from tests.wamp.conftest import Wamp, application

RunServer = Callable[..., contextlib.AbstractContextManager[RunningServer]]


@contextlib.asynccontextmanager
async def running(worker: TaskWorker) -> AsyncIterator[None]:
    stop = asyncio.Event()
    run = asyncio.ensure_future(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(run, 10)


async def test_progress_is_published_to_a_wamp_topic(run_server: RunServer) -> None:
    router = Router(realms=[Realm("tasks-realm")])
    queue = Queue(
        "jobs",
        layer=InMemoryChannelLayer(),
        lease=3,
        progress_topic="com.example.progress",
        progress_realm="tasks-realm",
    )
    proceed = threading.Event()

    @queue.task("steps")
    def steps(ctx: TaskContext) -> str:
        ctx.progress(0.4)
        proceed.wait(5)
        return "done"

    with run_server(application(router)) as server:
        wamp = Wamp(router, f"{server.ws_url}/ws", "127.0.0.1", server.port, "json")
        try:
            subscriber = await wamp.connect("tasks-realm")
            events: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
            await subscriber.subscribe(
                lambda *a, **k: events.put_nowait((a, k)), "com.example.progress"
            )
            async with running(TaskWorker([queue], poll_interval=0.1)):
                handle = await steps.enqueue()
                args, kwargs = await asyncio.wait_for(events.get(), 5)
                assert args == ()
                assert kwargs == {
                    "queue": "jobs",
                    "job_id": handle.id,
                    "name": "steps",
                    "progress": 0.4,
                }
                proceed.set()
                assert await handle.result(timeout=5) == "done"
        finally:
            proceed.set()
            await wamp.close()
