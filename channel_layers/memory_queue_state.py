"""The in-memory work queues' state: jobs, per-queue heaps, and waiters on any event loop."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from channel_layers.memory import copy_value
from channel_layers.queues import JobInfo, JobState

__all__ = ["Job", "QueueState", "Waiter", "job_info"]


@dataclass
class Job:
    """One job and everything the store knows of it."""

    job_id: str
    name: str
    payload: dict[str, Any]
    priority: int
    max_attempts: int
    max_lost_leases: int
    enqueued_at: float
    run_at: float
    state: JobState
    attempts: int = 0
    lost_leases: int = 0
    version: int = 0
    token: str = ""
    result: Any = None
    error: str | None = None
    progress: float | None = None
    finished_at: float | None = None
    started_at: float | None = None
    attempted_at: float | None = None
    workers: list[str] = field(default_factory=list)

    def record_take(self, now: float, worker: str) -> None:
        """Note a take: its time and the worker that made it."""
        self.started_at = now if self.started_at is None else self.started_at
        self.attempted_at = now
        self.workers.append(worker)


@dataclass
class QueueState:
    """One queue: its jobs and the heaps of their ids (see memory_queues)."""

    jobs: dict[str, Job] = field(default_factory=dict)
    ready: list[tuple[int, float, int, str]] = field(default_factory=list)
    scheduled: list[tuple[float, int, str]] = field(default_factory=list)
    leases: list[tuple[float, int, str]] = field(default_factory=list)
    expiries: list[tuple[float, int, str]] = field(default_factory=list)
    dead: dict[str, None] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, float]] = field(default_factory=dict)
    #: Size at which expired idempotency keys are swept (doubles with the live ones).
    idempotency_sweep: int = 1024
    takers: list[Waiter] = field(default_factory=list)
    watchers: dict[str, list[Waiter]] = field(default_factory=dict)


class Waiter:
    """A future on some event loop, settable from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[None] = self.loop.create_future()

    def wake(self) -> None:
        """Wake the waiter, from any thread. A closed loop raises RuntimeError: nobody waits
        there any more."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._set)

    def _set(self) -> None:
        if not self.future.done():
            self.future.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Until woken, or ``timeout`` s."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.future), max(0.0, timeout))


def job_info(queue: str, job: Job) -> JobInfo:
    """A snapshot of ``job`` (copies: the caller may change it)."""
    return JobInfo(
        job_id=job.job_id,
        queue=queue,
        name=job.name,
        state=job.state,
        attempts=job.attempts,
        priority=job.priority,
        enqueued_at=job.enqueued_at,
        run_at=job.run_at,
        result=copy_value(job.result),
        error=job.error,
        progress=job.progress,
        finished_at=job.finished_at,
        payload=copy_value(job.payload),
        started_at=job.started_at,
        last_attempted_at=job.attempted_at,
        worker_ids=tuple(job.workers),
    )
