"""The task-queue benchmark's Crossway side: the no-op task (worker) and the producer.

Worker: ``python -m consumers.worker --tasks benchmarks._tasks_crossway:bench --concurrency 16``
with CHANNEL_LAYERS_URL and BENCH_REDIS set; producer: ``python -m benchmarks._tasks_crossway
COUNT RATE``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import redis.asyncio as aioredis

from benchmarks._tasks_common import LATENCIES, run_phases
from consumers.tasks import Queue, TaskContext

bench = Queue("bench")
_client: list[Any] = []


@bench.task("noop")
async def noop(ctx: TaskContext, enqueued_at: float) -> None:
    """Report how long the task waited, and nothing else."""
    if not _client:
        _client.append(aioredis.Redis.from_url(os.environ["BENCH_REDIS"]))
    await _client[0].rpush(LATENCIES, time.time() - enqueued_at)


async def produce(count: int, rate: float | None) -> None:
    async def send(number: int) -> None:
        await bench.enqueue("noop", time.time())

    await run_phases(os.environ["BENCH_REDIS"], count, rate, send)


if __name__ == "__main__":
    asyncio.run(produce(int(sys.argv[1]), float(sys.argv[2]) or None))
