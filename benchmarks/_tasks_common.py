"""What the task-queue benchmark's drivers share (standard library and redis-py only, so that
both virtualenvs can import it): the completion list, pacing, and the summary line.

Every no-op task does one thing: RPUSH how long it waited (start - enqueue, seconds) to
``bench:lat``. The producer counts completions with LLEN on that list and reads the waits at
the end; the extra RPUSH per task is the same for every system.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis

LATENCIES = "bench:lat"


Send = Callable[[int], Awaitable[None] | None]


def wait_for_completions(
    client: redis.Redis, count: int, timeout: float = 120.0
) -> tuple[float, int]:
    """Poll LLEN every 2 ms until ``count`` tasks reported: (that moment, polls made)."""
    deadline = time.monotonic() + timeout
    polls = 1
    while client.llen(LATENCIES) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {client.llen(LATENCIES)} of {count} tasks ran")
        time.sleep(0.002)
        polls += 1
    return time.perf_counter(), polls


async def paced(count: int, rate: float | None, send: Send) -> float:
    """Call ``send(i)`` (sync or async) ``count`` times, at ``rate`` per second (None: as fast
    as one producer goes); returns the seconds it took."""
    started = time.perf_counter()
    for number in range(count):
        if rate:
            delay = started + number / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        sent = send(number)
        if inspect.isawaitable(sent):
            await sent
    return time.perf_counter() - started


def commands(client: redis.Redis) -> int:
    """Commands the server has processed so far."""
    return int(client.info("stats")["total_commands_processed"])


def round_trips(client: redis.Redis) -> int:
    """EVALSHA and BLPOP calls so far: our store's round trips (no script calls either)."""
    stats = client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "blpop")
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run_phases(url: str, count: int, rate: float | None, enqueue: Send) -> None:
    """Throughput (``count`` tasks as fast as one producer goes), then latency (``count`` tasks
    at ``rate``/s, when given); prints one JSON line."""
    client = redis.Redis.from_url(url)
    client.delete(LATENCIES)
    await paced(50, None, enqueue)  # warm up: connections, scripts, imports
    wait_for_completions(client, 50)
    client.delete(LATENCIES)
    before, trips = commands(client), round_trips(client)
    started = time.perf_counter()
    enqueue_seconds = await paced(count, None, enqueue)
    finished, polls = wait_for_completions(client, count)
    # Not the system's own: our LLEN polls, the tasks' RPUSHes, the INFO that read `before`.
    own = commands(client) - before - polls - count - 2
    trips = round_trips(client) - trips
    client.delete(LATENCIES)
    result: dict[str, Any] = {
        "tasks_per_s": count / (finished - started),
        "enqueue_per_s": count / enqueue_seconds,
        "commands_per_task": own / count,
        "round_trips_per_task": trips / count,
    }
    if not rate:
        print(json.dumps(result))
        return
    await paced(count, rate, enqueue)
    wait_for_completions(client, count)
    waits = [float(value) * 1e6 for value in client.lrange(LATENCIES, 0, -1)]
    result.update(
        rate=rate,
        latency_p50_us=statistics.median(waits),
        latency_p99_us=percentile(waits, 0.99),
    )
    client.delete(LATENCIES)
    print(json.dumps(result))
    sys.stdout.flush()
