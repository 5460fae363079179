"""Work queues with leases: the channel layer capability that task queues and cron stand on.

A channel delivers a message at most once and forgets it. A work queue keeps a job until a
worker *acknowledges* it, so a worker that dies mid-job loses nothing. The rules every backend
keeps (``tests/channel_layers/test_queues.py`` runs them on each):

Jobs
    :meth:`QueueStore.enqueue` stores a job: a task ``name``, a ``payload`` dict of the values
    channel layer messages carry (checked by :func:`require_portable` at once, so a bad value
    fails in the caller, never in a worker), a ``priority`` from -100 to 100 (higher first), a
    ``run_at`` wall-clock time before which nobody takes it, ``max_attempts`` and an optional
    ``idempotency_key``: a second enqueue with the same key within ``idempotency_ttl`` seconds
    stores nothing and returns the first job's id.

Leases
    :meth:`QueueStore.take` hands one ready job (highest priority, then oldest) to one caller
    with a lease of ``lease`` seconds and a fresh token (``take_many``: several at once).
    While the lease holds nobody else takes the job; :meth:`~QueueStore.renew` extends it. A
    lease that runs out puts the job back, to be taken again (at least once delivery); a job
    whose lease ran out ``max_lost_leases`` times
    (it kills its workers?) is dead-lettered. ``max_attempts`` is for the worker: it retries a
    failed attempt while ``attempt < max_attempts``. Every call that ends a lease names its
    token; a stale token (the lease ran out and the job was taken again) changes nothing and
    returns False.

Endings
    :meth:`~QueueStore.ack` stores the result; :meth:`~QueueStore.nack` retries after a delay,
    or dead-letters the job when ``delay`` is None; :meth:`~QueueStore.release` puts it back
    at once without counting the attempt (a graceful shutdown). :meth:`~QueueStore.cancel`
    ends a job nobody holds. Finished jobs (done, failed, cancelled) stay readable through
    :meth:`~QueueStore.job` for ``result_ttl`` seconds; dead-lettered ones stay in the
    dead-letter list until retried or purged.

Claims
    :meth:`~QueueStore.claim` takes a named key for ``ttl`` seconds, atomically across every
    process on the layer (once-per-cluster cron ticks, non-overlapping runs).

Times are wall-clock seconds (``time.time()``), so that several machines agree on ``run_at``.
The in-memory store serves one process; the Redis store is shared and durable.
"""

from __future__ import annotations

import abc
import datetime
import decimal
import os
import uuid
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from channel_layers.base import InvalidMessage, find_unsupported, load_capability

if TYPE_CHECKING:
    from channel_layers.base import BaseChannelLayer

__all__ = [
    "MAX_PRIORITY",
    "Enqueued",
    "JobInfo",
    "JobState",
    "Leased",
    "NewJob",
    "QueueCounts",
    "QueueStore",
    "find_unportable",
    "new_job_id",
    "register_store",
    "require_portable",
    "store_for",
]

#: Priorities run from -MAX_PRIORITY to MAX_PRIORITY (Django's Tasks use the same range).
MAX_PRIORITY = 100

#: scheduled: waits for run_at; pending: ready to take; running: leased; done, failed
#: (dead-lettered), cancelled: finished.
JobState = Literal["scheduled", "pending", "running", "done", "failed", "cancelled"]
FINISHED_STATES: frozenset[str] = frozenset({"done", "failed", "cancelled"})


@dataclass(frozen=True)
class NewJob:
    """What :meth:`QueueStore.enqueue` stores."""

    name: str
    payload: dict[str, Any]
    priority: int = 0
    #: Wall-clock time before which the job is not taken (None: now).
    run_at: float | None = None
    #: Runs (first one plus retries) the worker may spend on failures.
    max_attempts: int = 1
    #: Leases that may run out (the worker died) before the job is dead-lettered.
    max_lost_leases: int = 3
    idempotency_key: str | None = None
    idempotency_ttl: float = 86400.0
    #: Chosen by the store when empty.
    job_id: str = ""


@dataclass(frozen=True)
class Enqueued:
    """The outcome of an enqueue: the job's id, and False when it was a duplicate."""

    job_id: str
    created: bool


@dataclass(frozen=True)
class Leased:
    """A job handed to one worker: run it, then ack, nack or release it with ``token``."""

    job_id: str
    name: str
    payload: dict[str, Any]
    #: This take's number, from 1; > 1 means a retry or a lost lease.
    attempt: int
    max_attempts: int
    token: str
    priority: int
    enqueued_at: float


@dataclass(frozen=True)
class JobInfo:
    """Everything a store knows about one job, for results and status pages."""

    job_id: str
    queue: str
    name: str
    state: JobState
    attempts: int
    priority: int
    enqueued_at: float
    run_at: float
    #: The value given to ack (done).
    result: Any = None
    #: The last error given to nack (retried or failed), or the reason for a lost lease.
    error: str | None = None
    #: The last progress reported by renew (0.0 to 1.0), None when none was.
    progress: float | None = None
    finished_at: float | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    #: When the first take started it, and when the last one did (None before any).
    started_at: float | None = None
    last_attempted_at: float | None = None
    #: The ``worker`` given to each take, in order (one per take, "" when none was given).
    worker_ids: tuple[str, ...] = ()

    @property
    def finished(self) -> bool:
        """True once the job is done, failed or cancelled."""
        return self.state in FINISHED_STATES


@dataclass
class QueueCounts:
    """Jobs of one task name in one queue, by state (finished ones while their TTL lasts)."""

    scheduled: int = 0
    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0

    def add(self, state: str, amount: int = 1) -> None:
        """Count ``amount`` more jobs in ``state``."""
        setattr(self, state, getattr(self, state) + amount)


def new_job_id() -> str:
    """A fresh job id: 24 hex digits, unique without coordination."""
    return os.urandom(12).hex()


class QueueStore(abc.ABC):
    """The work-queue capability of one channel layer (rules in the module docstring).

    Queue names follow the layer's group-name rules. Every method is a coroutine; the Redis
    store spends one round trip on each, except the waits.
    """

    @abc.abstractmethod
    async def enqueue(self, queue: str, job: NewJob) -> Enqueued:
        """Store ``job`` (or find its duplicate by idempotency key) and wake one taker."""

    @abc.abstractmethod
    async def take_many(
        self, queue: str, lease: float, timeout: float, limit: int, worker: str = ""
    ) -> list[Leased]:
        """Lease up to ``limit`` ready jobs, best first, each for ``lease`` s; wait up to
        ``timeout`` s for the first one (an empty list when none came). Each job records the
        take's time (``started_at`` on the first, ``last_attempted_at``) and ``worker`` (an id
        without newlines) in its ``worker_ids``."""

    async def take(
        self, queue: str, lease: float, timeout: float, worker: str = ""
    ) -> Leased | None:
        """Lease the best ready job for ``lease`` s, waiting up to ``timeout`` s; None if none."""
        taken = await self.take_many(queue, lease, timeout, 1, worker)
        return taken[0] if taken else None

    @abc.abstractmethod
    async def renew(
        self, queue: str, job_id: str, token: str, lease: float, progress: float | None = None
    ) -> bool:
        """Extend a lease to ``lease`` s from now (and record ``progress``); False if lost."""

    @abc.abstractmethod
    async def ack(
        self, queue: str, job_id: str, token: str, result: Any, result_ttl: float
    ) -> bool:
        """Finish the job as done with ``result``, kept ``result_ttl`` s; False if lost."""

    @abc.abstractmethod
    async def nack(
        self,
        queue: str,
        job_id: str,
        token: str,
        error: str,
        delay: float | None,
    ) -> bool:
        """Retry the job after ``delay`` s, or dead-letter it when ``delay`` is None."""

    @abc.abstractmethod
    async def release(self, queue: str, job_id: str, token: str) -> bool:
        """Put a leased job back, ready at once, without counting this attempt."""

    @abc.abstractmethod
    async def cancel(self, queue: str, job_id: str, result_ttl: float) -> bool:
        """Cancel a scheduled or pending job; False when it is running, finished or unknown."""

    @abc.abstractmethod
    async def job(self, queue: str, job_id: str) -> JobInfo | None:
        """The job's current record, or None when unknown or expired."""

    @abc.abstractmethod
    async def wait(self, queue: str, job_id: str, timeout: float) -> JobInfo | None:
        """The job's record once it is finished; None when it is not within ``timeout`` s."""

    @abc.abstractmethod
    async def running(self, queue: str, limit: int = 100) -> list[JobInfo]:
        """The leased jobs (with their progress), soonest lease deadline first."""

    @abc.abstractmethod
    async def dead_letters(self, queue: str, limit: int = 100) -> list[JobInfo]:
        """The dead-lettered jobs, oldest first, at most ``limit``."""

    @abc.abstractmethod
    async def retry_dead(self, queue: str, job_ids: list[str] | None = None) -> int:
        """Make dead-lettered jobs (all, or those named) pending again with fresh attempts."""

    @abc.abstractmethod
    async def purge_dead(self, queue: str, job_ids: list[str] | None = None) -> int:
        """Forget dead-lettered jobs (all, or those named); returns how many."""

    @abc.abstractmethod
    async def counts(self, queue: str) -> dict[str, QueueCounts]:
        """Jobs per task name, by state."""

    @abc.abstractmethod
    async def queues(self) -> list[str]:
        """The names of the queues that hold or held jobs, sorted."""

    @abc.abstractmethod
    async def claim(self, key: str, owner: str, ttl: float) -> bool:
        """Take ``key`` for ``owner`` for ``ttl`` s if free or already ``owner``'s (renewal)."""

    @abc.abstractmethod
    async def release_claim(self, key: str, owner: str) -> bool:
        """Free ``key`` if ``owner`` holds it."""

    @abc.abstractmethod
    async def purge(self, queue: str) -> None:
        """Forget every job of ``queue`` (tests, resets)."""


# --- finding a layer's store ----------------------------------------------------------------

#: Layer class ("module.Class") -> its store class ("module.Class"), searched along the MRO.
_STORE_CLASSES: dict[str, str] = {
    "channel_layers.memory.InMemoryChannelLayer": "channel_layers.memory_queues.MemoryQueueStore",
    # RedisChannelLayer's __module__ is its public home, channel_layers.redis.
    "channel_layers.redis.RedisChannelLayer": "channel_layers.redis.queues.RedisQueueStore",
}
_stores: weakref.WeakKeyDictionary[BaseChannelLayer, QueueStore] = weakref.WeakKeyDictionary()


def register_store(layer_class: str, store_class: str) -> None:
    """Declare that layers of ``layer_class`` keep their queues in ``store_class`` (paths)."""
    _STORE_CLASSES[layer_class] = store_class


def store_for(layer: BaseChannelLayer) -> QueueStore:
    """The queue store of ``layer`` (one per layer object), or NotImplementedError."""
    store: QueueStore | None = load_capability(layer, _STORE_CLASSES, _stores)
    if store is not None:
        return store
    raise NotImplementedError(
        f"{type(layer).__name__} has no work queues (it stores nothing, or nobody wrote them); "
        "use the in-memory layer or RedisChannelLayer for task queues and cron"
    )


# --- what a payload may hold ------------------------------------------------------------------

_SCALARS = (str, bytes, int, float, bool, type(None), datetime.date, datetime.time)
_EXTRAS = (datetime.timedelta, decimal.Decimal, uuid.UUID)


def find_unportable(value: object, path: str) -> tuple[str, str] | None:
    """The (path, type name) of the first value the layer serializers cannot carry, else None.

    The Redis serializers' rules, but with str keys only (JSON's), checked on every backend so
    that code tried on the in-memory layer does not break on Redis.
    """
    return find_unsupported(value, path, (str,), _SCALARS + _EXTRAS)


def require_portable(value: object, what: str) -> None:
    """Raise InvalidMessage naming the first value of ``what`` no layer serializer carries."""
    found = find_unportable(value, what)
    if found is not None:
        raise InvalidMessage(
            f"{found[0]} has type {found[1]}, which a channel layer cannot carry; pass only "
            "dict (str keys), list, tuple, str, bytes, int, float, bool, None, datetime, date, "
            "time, timedelta, Decimal and UUID (e.g. a model's primary key, not the model)"
        )
