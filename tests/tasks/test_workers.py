"""Real worker processes (``python -m consumers.worker --tasks``) on the private Redis."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

from consumers.tasks import Queue
from tests.tasks.conftest import APPS, ROOT, TaskCluster


async def next_event(cluster: TaskCluster, kind: str, timeout: float = 20) -> dict[str, Any]:
    """The next event of ``kind`` the tasks reported (others of other kinds are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            message: dict[str, Any] = await cluster.layer.receive(cluster.events)
            if message["kind"] == kind:
                return message


def queue_of(cluster: TaskCluster, lease: float = 30) -> Queue:
    """The test's view of the workers' queue, on the same layer."""
    return Queue("videos", layer=cluster.layer, lease=lease)


async def test_a_worker_process_runs_sync_and_async_tasks(cluster: TaskCluster) -> None:
    cluster.start("--concurrency", "4")
    videos = queue_of(cluster)
    handles = [await videos.enqueue("encode.video", f"/tmp/{n}.mov") for n in range(20)]
    handles.append(await videos.enqueue("hold", 0))
    results = [await handle.result(timeout=20) for handle in handles]
    assert [result["path"] for result in results[:20]] == [f"/tmp/{n}.mov" for n in range(20)]
    assert results[20]["attempt"] == 1
    status = await handles[0].status()
    assert status is not None and status.state == "done"


async def test_a_task_of_a_sigkilled_worker_completes_elsewhere_once(
    cluster: TaskCluster,
) -> None:
    lease = "2"
    first = cluster.start("--concurrency", "2", TASK_LEASE=lease)
    videos = queue_of(cluster, lease=2)
    handle = await videos.enqueue("hold", 600)
    started = await next_event(cluster, "started")
    assert (started["pid"], started["attempt"]) == (first.pid, 1)
    first.kill()
    second = cluster.start("--concurrency", "2", TASK_LEASE=lease)
    result = await handle.result(timeout=20)
    assert result == {"pid": second.pid, "attempt": 2}
    restarted = await next_event(cluster, "started")
    assert (restarted["pid"], restarted["attempt"]) == (second.pid, 2)
    # Exactly one more start and one finish: the events channel holds nothing else.
    finished = await next_event(cluster, "finished")
    assert finished["pid"] == second.pid
    queued = await cluster.layer.queue_store().counts("videos")
    assert queued["hold"].done == 1 and queued["hold"].pending == 0
    info = await handle.status()
    assert info is not None and info.attempts == 2


async def test_two_workers_share_the_work_and_run_each_job_once(cluster: TaskCluster) -> None:
    cluster.start("--concurrency", "3")
    cluster.start("--concurrency", "3")
    videos = queue_of(cluster)
    handles = [await videos.enqueue("encode.video", f"/v/{n}", seconds=0.01) for n in range(60)]
    results = [await handle.result(timeout=30) for handle in handles]
    assert len({result["path"] for result in results}) == 60
    starts = [await next_event(cluster, "started") for _ in range(60)]
    assert sorted(event["job"] for event in starts) == sorted(handle.id for handle in handles)
    assert all(event["attempt"] == 1 for event in starts)


async def test_sigterm_lets_a_running_task_finish(cluster: TaskCluster) -> None:
    worker = cluster.start("--shutdown-timeout", "20")
    videos = queue_of(cluster)
    handle = await videos.enqueue("encode.video", "/tmp/long.mov", seconds=1.0)
    await next_event(cluster, "started")
    assert worker.terminate() == 0
    assert (await handle.result(timeout=0.5))["pid"] == worker.pid


async def test_sigterm_requeues_a_task_that_overruns_the_shutdown_timeout(
    cluster: TaskCluster,
) -> None:
    worker = cluster.start("--shutdown-timeout", "0.5")
    videos = queue_of(cluster)
    handle = await videos.enqueue("hold", 600)
    await next_event(cluster, "started")
    assert worker.terminate() == 0
    info = await handle.status()
    assert info is not None and (info.state, info.attempts) == ("pending", 0)
    assert any("Released hold" in line for line in worker.lines)
    # Released, not lost: the next worker takes it at once, as a first attempt.
    second = cluster.start()
    restarted = await next_event(cluster, "started", timeout=10)
    assert (restarted["pid"], restarted["attempt"]) == (second.pid, 1)


async def test_the_status_command_shows_queues_tasks_and_dead_letters(
    cluster: TaskCluster,
) -> None:
    videos = queue_of(cluster)
    await videos.enqueue("encode.video", "/a")
    await videos.enqueue("hold", 1, priority=3)
    environment = {**os.environ, "CHANNEL_LAYERS_URL": cluster.url, "PYTHONPATH": str(ROOT)}

    def tasks_command(*args: str) -> str:
        command = [sys.executable, "-m", "consumers.tasks", *args]
        done = subprocess.run(
            command, cwd=APPS, env=environment, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    report = json.loads(tasks_command("status", "--json"))
    tasks = report["queues"]["videos"]["tasks"]
    assert tasks["encode.video"]["pending"] == 1 and tasks["hold"]["pending"] == 1
    table = tasks_command("status")
    assert "encode.video" in table and "pending" in table
    assert tasks_command("dead", "list", "videos").strip() == "(no dead letters)"
