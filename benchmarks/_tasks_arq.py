"""The task-queue benchmark's arq side (peers venv): worker settings and producer.

Worker: ``arq benchmarks._tasks_arq.WorkerSettings``; producer: ``python -m
benchmarks._tasks_arq COUNT RATE``. ``poll_delay`` is 5 ms: arq sleeps that long after every
poll, even when busy, so its 0.5 s default would cap it at ``max_jobs`` jobs per half second.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings

from benchmarks._tasks_common import LATENCIES, run_phases


async def noop(ctx: dict[str, Any], enqueued_at: float) -> None:
    """Report how long the task waited, and nothing else."""
    await ctx["redis"].rpush(LATENCIES, time.time() - enqueued_at)


class WorkerSettings:
    """16 jobs at once, like the others."""

    functions = [noop]
    max_jobs = 16
    poll_delay = 0.005
    redis_settings = RedisSettings.from_dsn(os.environ.get("BENCH_REDIS", "redis://localhost"))


async def produce(count: int, rate: float | None) -> None:
    pool = await create_pool(RedisSettings.from_dsn(os.environ["BENCH_REDIS"]))

    async def send(number: int) -> None:
        await pool.enqueue_job("noop", time.time())

    await run_phases(os.environ["BENCH_REDIS"], count, rate, send)


if __name__ == "__main__":
    asyncio.run(produce(int(sys.argv[1]), float(sys.argv[2]) or None))
