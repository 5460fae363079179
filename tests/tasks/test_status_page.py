"""The JSON status app on a real server, showing a worker process's running task and its
progress (which the worker also sends to the queue's progress group)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import httpx

from consumers.tasks.status import status_app
from tests.conftest import RunningServer
from tests.tasks.conftest import TaskCluster
from tests.tasks.test_workers import queue_of

RunServer = Callable[..., contextlib.AbstractContextManager[RunningServer]]


async def test_the_status_page_shows_running_tasks_and_their_progress(
    cluster: TaskCluster, run_server: RunServer
) -> None:
    progress = await cluster.layer.new_channel()
    await cluster.layer.group_add("video-progress", progress)
    cluster.start()
    videos = queue_of(cluster)
    handle = await videos.enqueue("hold", 600)
    message: dict[str, Any] = await asyncio.wait_for(cluster.layer.receive(progress), 20)
    assert message["job_id"] == handle.id and message["progress"] == 0.5
    with run_server(status_app(cluster.layer)) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await client.get("/any/path")
            page = await client.get("/", headers={"accept": "text/html,*/*"})
            refused = await client.post("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    report = response.json()["queues"]["videos"]
    assert report["running"] == [{"id": handle.id, "name": "hold", "attempt": 1, "progress": 0.5}]
    assert report["tasks"]["hold"]["running"] == 1 and report["dead"] == 0
    assert refused.status_code == 405
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert f"running hold {handle.id} attempt 1 50%" in page.text
