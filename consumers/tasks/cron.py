"""Cron: functions (or tasks) run on a schedule, once per cluster.

Every process that runs a :class:`Scheduler` (``python -m consumers.worker --tasks ...``) wakes
at each tick; the first to claim the tick on the channel layer (``QueueStore.claim`` on a key
naming the job and the tick) runs it, the others skip it. So with four processes a tick runs
once, and it still runs when the process that ran the last one has died. Ticks are computed
from wall-clock time alone (``every=`` counts from the Unix epoch), so all processes agree.

Missed ticks: a scheduler that starts (or wakes late) runs the latest tick it missed, if it
is at most ``grace`` old, and only that one: missed ticks are coalesced into one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import inspect
import logging
import math
import os
import socket
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from asgiref.sync import sync_to_async

from channel_layers.queues import QueueStore

from .queue import Task

__all__ = ["CronJob", "Scheduler", "cron", "default_scheduler"]

logger = logging.getLogger("consumers.tasks.cron")


class Schedule(Protocol):
    """When a job's ticks fall, as Unix timestamps."""

    def latest(self, now: float) -> float | None:
        """The last tick at or before ``now``, or None."""

    def following(self, now: float) -> float | None:
        """The first tick after ``now``, or None when there is none (a one-off that ran)."""


@dataclass(frozen=True)
class Every:
    """A tick every ``interval`` seconds, counted from the Unix epoch."""

    interval: float

    def latest(self, now: float) -> float | None:
        return math.floor(now / self.interval) * self.interval

    def following(self, now: float) -> float | None:
        return (math.floor(now / self.interval) + 1) * self.interval


@dataclass(frozen=True)
class Expression:
    """A cron expression (5 fields, or 6 with seconds) in a time zone, read by croniter."""

    expression: str
    zone: datetime.tzinfo

    def _iterator(self, at: float) -> Any:
        from croniter import croniter  # type: ignore[import-untyped]

        return croniter(self.expression, datetime.datetime.fromtimestamp(at, self.zone))

    def latest(self, now: float) -> float | None:
        previous: float = self._iterator(now).get_prev(datetime.datetime).timestamp()
        # croniter steps strictly before its start: a tick exactly at ``now`` counts too.
        following = self.following(previous)
        return following if following is not None and following <= now else previous

    def following(self, now: float) -> float | None:
        following: float = self._iterator(now).get_next(datetime.datetime).timestamp()
        return following


@dataclass(frozen=True)
class Once:
    """A single tick at a moment."""

    at: float

    def latest(self, now: float) -> float | None:
        return self.at if self.at <= now else None

    def following(self, now: float) -> float | None:
        return self.at if self.at > now else None


@dataclass
class CronJob:
    """A function or Task run at a schedule's ticks."""

    name: str
    target: Callable[..., Any] | Task
    schedule: Schedule
    #: False: a tick is skipped while the previous run is still going (anywhere in the cluster).
    overlap: bool
    #: Seconds after its time that a missed tick is still run.
    grace: float

    async def fire(self, due: float) -> None:
        """Run the tick due at ``due``: enqueue the Task (once per tick, by idempotency key),
        or call the function (sync ones in a thread) with the tick's time if it takes one."""
        tick = datetime.datetime.fromtimestamp(due, datetime.UTC)
        if isinstance(self.target, Task):
            await self.target.enqueue(idempotency_key=f"cron.{self.name}.{due:.3f}")
            return
        args = (tick,) if _takes_an_argument(self.target) else ()
        if inspect.iscoroutinefunction(self.target):
            await self.target(*args)
        else:
            await sync_to_async(self.target, thread_sensitive=False)(*args)


def _takes_an_argument(function: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(
        p.kind in positional or p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters
    )


class Scheduler:
    """Keeps cron jobs on a channel layer (alias or layer object); run it in every worker."""

    def __init__(self, layer: Any = "default") -> None:
        self.layer = layer
        self.jobs: list[CronJob] = []
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
        self.runs = 0

    @property
    def store(self) -> QueueStore:
        """The layer's work-queue store, which holds the tick claims."""
        layer = self.layer
        if isinstance(layer, str):
            from channel_layers import get_channel_layer

            layer = get_channel_layer(layer)
            if layer is None:
                raise RuntimeError(f"cron: no channel layer is configured for {self.layer!r}")
        store: QueueStore = layer.queue_store()
        return store

    def add(self, job: CronJob) -> CronJob:
        """Keep ``job`` (names are unique: they name the claims)."""
        if any(existing.name == job.name for existing in self.jobs):
            raise ValueError(f"a cron job named {job.name!r} exists; pass name=... to cron()")
        self.jobs.append(job)
        return job

    async def run(self, stop: asyncio.Event) -> None:
        """Keep every job's ticks until ``stop``; runs still going then get 30 s to end."""
        running: set[asyncio.Task[None]] = set()
        loops = [asyncio.ensure_future(self._keep(job, stop, running)) for job in self.jobs]
        logger.info("Cron: %s", ", ".join(job.name for job in self.jobs))
        try:
            await asyncio.gather(*loops)
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            if running:
                await asyncio.wait(running, timeout=30)
                for run in running:
                    run.cancel()

    async def _keep(
        self, job: CronJob, stop: asyncio.Event, running: set[asyncio.Task[None]]
    ) -> None:
        handled: float | None = None
        while not stop.is_set():
            now = time.time()
            due = job.schedule.latest(now)
            if due is not None and due != handled and now - due <= job.grace:
                handled = due
                run = asyncio.ensure_future(self._tick(job, due))
                running.add(run)
                run.add_done_callback(running.discard)
            following = job.schedule.following(now)
            if following is None:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, following - time.time()))

    async def _tick(self, job: CronJob, due: float) -> None:
        """Claim the tick and run it; a layer failure skips the tick (logged)."""
        try:
            await self._claim_and_run(job, due)
        except Exception:
            logger.exception("cron %s: tick at %s not run", job.name, due)

    async def _claim_and_run(self, job: CronJob, due: float) -> None:
        """Claim the tick; the winner runs it (holding the job's run claim if no overlap)."""
        store = self.store
        following = job.schedule.following(due)
        ttl = (following - due if following is not None else 0) + job.grace + 60
        if not await store.claim(f"cron.{job.name}.{due:.3f}", self.owner, ttl):
            return
        run_key = f"cron.{job.name}.running"
        run_owner = f"{self.owner}:{due:.3f}"
        if not job.overlap and not await store.claim(run_key, run_owner, 30):
            logger.info("cron %s: tick skipped, the previous run is still going", job.name)
            return
        keeper = None if job.overlap else asyncio.ensure_future(self._hold(run_key, run_owner))
        try:
            self.runs += 1
            await job.fire(due)
        except Exception:
            logger.exception("cron %s failed", job.name)
        finally:
            if keeper is not None:
                keeper.cancel()
                await store.release_claim(run_key, run_owner)

    async def _hold(self, key: str, owner: str) -> None:
        while True:
            await asyncio.sleep(10)
            await self.store.claim(key, owner, 30)


#: The scheduler ``@cron`` registers on unless given another; workers run it.
default_scheduler = Scheduler()


def cron(
    expression: str | None = None,
    *,
    every: datetime.timedelta | float | None = None,
    when: datetime.datetime | None = None,
    minute: int | str | None = None,
    hour: int | str | None = None,
    day: int | str | None = None,
    month: int | str | None = None,
    day_of_week: int | str | None = None,
    tz: str | datetime.tzinfo = "UTC",
    name: str | None = None,
    overlap: bool = True,
    grace: datetime.timedelta | float | None = None,
    scheduler: Scheduler | None = None,
) -> Callable[[Callable[..., Any] | Task], Any]:
    """Run the decorated function (or enqueue the decorated Task) on a schedule. A function
    that takes an argument gets the tick's time (an aware UTC datetime).

    One of: a cron ``expression`` ("*/5 * * * *"), ``every=timedelta(...)``, fields
    (``hour=7, minute=30, day_of_week=1``: unnamed finer fields are 0, coarser ones "*") or a
    one-off ``when=datetime(...)``; ``tz`` is the zone of expressions, fields and naive
    datetimes. ``grace`` (default: one interval for ``every``, else an hour) bounds how late a
    missed tick may still run. Returns the decorated object unchanged.
    """
    zone = zoneinfo.ZoneInfo(tz) if isinstance(tz, str) else tz
    schedule = _schedule(expression, every, when, (minute, hour, day, month, day_of_week), zone)
    if grace is None:
        grace = schedule.interval if isinstance(schedule, Every) else 3600.0
    grace_seconds = grace.total_seconds() if isinstance(grace, datetime.timedelta) else grace

    def register(target: Callable[..., Any] | Task) -> Any:
        job_name = name or (
            target.name
            if isinstance(target, Task)
            else f"{target.__module__}.{target.__qualname__}"
        )
        job = CronJob(job_name, target, schedule, overlap, float(grace_seconds))
        (scheduler or default_scheduler).add(job)
        return target

    return register


def _schedule(
    expression: str | None,
    every: datetime.timedelta | float | None,
    when: datetime.datetime | None,
    fields: tuple[int | str | None, ...],
    zone: datetime.tzinfo,
) -> Schedule:
    given = [expression is not None, every is not None, when is not None, fields != (None,) * 5]
    if sum(given) != 1:
        raise TypeError(
            "cron() takes one of: an expression ('*/5 * * * *'), every=timedelta(...), "
            "when=datetime(...), or fields (hour=7, minute=30, ...)"
        )
    if every is not None:
        seconds = every.total_seconds() if isinstance(every, datetime.timedelta) else every
        if seconds <= 0:
            raise ValueError(f"every= must be positive, got {every!r}")
        return Every(float(seconds))
    if when is not None:
        moment = when if when.tzinfo is not None else when.replace(tzinfo=zone)
        return Once(moment.timestamp())
    if expression is None:
        expression = _fields_expression(fields)
    from croniter import croniter

    if not croniter.is_valid(expression):
        raise ValueError(f"{expression!r} is not a valid cron expression")
    return Expression(expression, zone)


def _fields_expression(fields: tuple[int | str | None, ...]) -> str:
    """minute hour day month day_of_week: the fields before the first one given are 0."""
    first_given = next(index for index, value in enumerate(fields) if value is not None)
    parts = []
    for index, value in enumerate(fields):
        if value is not None:
            parts.append(str(value))
        else:
            parts.append("0" if index < first_given and index < 2 else "*")
    return " ".join(parts)
