"""with_workers(): task workers in the web server's own process, on the in-memory layer: a
request enqueues a task and answers with its result, through a real server."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import httpx

from channel_layers.memory import InMemoryChannelLayer
from consumers.tasks import Queue, Scheduler, TaskContext
from consumers.tasks.embed import with_workers
from tests.conftest import RunningServer

RunServer = Callable[..., contextlib.AbstractContextManager[RunningServer]]


def make_app(videos: Queue) -> Any:
    """A bare ASGI app: GET /<n> enqueues square(n) and answers with the result."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        handle = await videos.enqueue("square", int(scope["path"].strip("/")))
        body = str(await handle.result(timeout=10)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


async def test_requests_and_embedded_workers_share_an_in_memory_queue(
    run_server: RunServer,
) -> None:
    videos = Queue("videos", layer=InMemoryChannelLayer())
    ran: list[int] = []

    @videos.task("square")
    def square(ctx: TaskContext, number: int) -> int:
        ran.append(number)
        return number * number

    application = with_workers(make_app(videos), videos, concurrency=2, scheduler=Scheduler())
    with run_server(application, lifespan="on") as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            answers = [(await client.get(f"/{n}")).text for n in range(5)]
    assert answers == ["0", "1", "4", "9", "16"]
    assert ran == [0, 1, 2, 3, 4]
