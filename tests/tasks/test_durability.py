"""Durability on Redis: a restarted Redis (AOF on) loses no queued task, and a task that runs
longer than its lease stays with its worker (renewed) instead of running twice."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from channel_layers.redis import RedisChannelLayer
from consumers.tasks import Queue
from tests.conftest import get_free_port, redis_command, redis_server_binary
from tests.tasks.conftest import TaskCluster
from tests.tasks.test_workers import next_event, queue_of


class AofRedis:
    """A private redis-server with the append-only file fsynced on every write."""

    def __init__(self, directory: Path) -> None:
        self.port = get_free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.directory), "--save", "", "--appendonly", "yes"]
        args += ["--appendfsync", "always", "--loglevel", "warning"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                # LOADING while it replays the AOF: wait for PONG.
                if redis_command(self.port, "PING").startswith(b"+PONG"):
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to write anything more."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def aof_redis() -> Iterator[AofRedis]:
    with tempfile.TemporaryDirectory(prefix="crossway-aof-") as directory:
        server = AofRedis(Path(directory))
        server.start()
        try:
            yield server
        finally:
            server.kill()


async def test_a_restarted_redis_loses_none_of_1000_queued_tasks(aof_redis: AofRedis) -> None:
    prefix = f"aof-{os.urandom(4).hex()}"
    layer = RedisChannelLayer(hosts=[aof_redis.url], prefix=prefix)
    videos = Queue("videos", layer=layer)
    handles = [await videos.enqueue("noop", number) for number in range(1000)]
    await layer.close()
    aof_redis.kill()
    aof_redis.start()
    layer = RedisChannelLayer(hosts=[aof_redis.url], prefix=prefix)
    cluster = TaskCluster(f"{aof_redis.url}/0?prefix={prefix}", "events", layer)
    try:
        assert (await layer.queue_store().counts("videos"))["noop"].pending == 1000
        cluster.start("--concurrency", "16")
        videos = Queue("videos", layer=layer)
        results = [await videos.handle(handle.id).result(timeout=60) for handle in handles]
        assert results == list(range(1000))
    finally:
        cluster.stop_all()
        await layer.close()


async def test_a_task_longer_than_its_lease_runs_once(cluster: TaskCluster) -> None:
    # Lease 1 s, task 3 s, two idle workers: renewals keep the job with its first worker.
    first = cluster.start("--concurrency", "2", TASK_LEASE="1")
    cluster.start("--concurrency", "2", TASK_LEASE="1")
    videos = queue_of(cluster, lease=1)
    handle = await videos.enqueue("hold", 3)
    started = await next_event(cluster, "started")
    result = await handle.result(timeout=20)
    assert result["attempt"] == 1 and result["pid"] == started["pid"]
    info = await handle.status()
    assert info is not None and info.attempts == 1
    finished = await next_event(cluster, "finished")
    assert finished["pid"] == started["pid"] and first.process.poll() is None
