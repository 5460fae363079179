"""The task-queue benchmark's Celery side (peers venv): the app, the task and the producer.

Worker: ``celery -A benchmarks._tasks_celery worker -P threads -c 16``; producer: ``python -m
benchmarks._tasks_celery COUNT RATE``. Results are ignored (Celery's fastest setting; ours and
arq store theirs).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import redis
from celery import Celery

from benchmarks._tasks_common import LATENCIES, run_phases

app = Celery("bench", broker=os.environ.get("BENCH_REDIS", "redis://localhost"))
app.conf.task_ignore_result = True
app.conf.worker_hijack_root_logger = False
_client = redis.Redis.from_url(os.environ.get("BENCH_REDIS", "redis://localhost"))


@app.task(name="noop")
def noop(enqueued_at: float) -> None:
    """Report how long the task waited, and nothing else."""
    _client.rpush(LATENCIES, time.time() - enqueued_at)


async def produce(count: int, rate: float | None) -> None:
    def send(number: int) -> None:
        noop.delay(time.time())

    await run_phases(os.environ["BENCH_REDIS"], count, rate, send)


if __name__ == "__main__":
    asyncio.run(produce(int(sys.argv[1]), float(sys.argv[2]) or None))
