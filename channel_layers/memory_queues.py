"""The work queues of the in-memory layer: one process, any thread, any event loop.

Each queue keeps its jobs in a dict and three heaps of ids: ready (priority, then age),
scheduled (by ``run_at``) and leases (by deadline). Heap entries are never removed in place:
each carries the job's ``version`` at push time and is skipped when the job has moved on since,
which keeps every operation O(log n). A lock guards the state because ``Queue.append()`` may be
called from a thread (a sync view) while a worker's event loop takes jobs; waiters are woken on
their own loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import heapq
import threading
import time
from typing import Any

from channel_layers.base import BaseChannelLayer
from channel_layers.memory import copy_value
from channel_layers.memory_queue_state import Job, QueueState, Waiter, job_info
from channel_layers.queues import (
    FINISHED_STATES,
    Enqueued,
    JobInfo,
    JobState,
    Leased,
    NewJob,
    QueueCounts,
    QueueStore,
    new_job_id,
    require_portable,
)

__all__ = ["MemoryQueueStore"]


class MemoryQueueStore(QueueStore):
    """Work queues inside this process (see :mod:`channel_layers.queues` for the rules)."""

    def __init__(self, layer: BaseChannelLayer) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, QueueState] = {}
        self._claims: dict[str, tuple[str, float]] = {}
        self._counter = 0

    def _queue(self, name: str) -> QueueState:
        state = self._queues.get(name)
        if state is None:
            state = self._queues[name] = QueueState()
        return state

    def _bump(self, job: Job) -> int:
        self._counter += 1
        job.version = self._counter
        return self._counter

    # --- moving jobs between states (call with the lock held) -----------------------------------

    def _make_ready(self, queue: QueueState, job: Job, now: float) -> None:
        job.state = "pending"
        job.token = ""
        version = self._bump(job)
        heapq.heappush(queue.ready, (-job.priority, now, version, job.job_id))
        for waiter in queue.takers:
            waiter.wake()
        queue.takers.clear()

    def _schedule(self, queue: QueueState, job: Job, run_at: float, now: float) -> None:
        job.run_at = run_at
        if run_at <= now:
            self._make_ready(queue, job, now)
            return
        job.state = "scheduled"
        job.token = ""
        heapq.heappush(queue.scheduled, (run_at, self._bump(job), job.job_id))
        for waiter in queue.takers:  # a taker may now wait less long
            waiter.wake()
        queue.takers.clear()

    def _finish(self, queue: QueueState, job: Job, state: JobState, ttl: float | None) -> None:
        job.state = state
        job.token = ""
        job.finished_at = now = time.time()
        version = self._bump(job)
        if ttl is not None:
            heapq.heappush(queue.expiries, (now + ttl, version, job.job_id))
        for waiter in queue.watchers.pop(job.job_id, []):
            waiter.wake()

    def _dead_letter(self, queue: QueueState, job: Job, error: str) -> None:
        job.error = error
        queue.dead[job.job_id] = None
        self._finish(queue, job, "failed", None)

    def _advance(self, queue: QueueState, now: float) -> None:
        """Due scheduled jobs become ready, lapsed leases come back, old results go."""
        while queue.scheduled and queue.scheduled[0][0] <= now:
            _, version, job_id = heapq.heappop(queue.scheduled)
            job = queue.jobs.get(job_id)
            if job is not None and job.version == version:
                self._make_ready(queue, job, job.run_at)
        while queue.leases and queue.leases[0][0] <= now:
            _, version, job_id = heapq.heappop(queue.leases)
            job = queue.jobs.get(job_id)
            if job is None or job.version != version:
                continue
            job.lost_leases += 1
            if job.lost_leases >= job.max_lost_leases:
                self._dead_letter(queue, job, f"lease lost {job.lost_leases} times (worker died?)")
            else:
                job.error = "lease lost (worker died or stalled?)"
                self._make_ready(queue, job, now)
        while queue.expiries and queue.expiries[0][0] <= now:
            _, version, job_id = heapq.heappop(queue.expiries)
            job = queue.jobs.get(job_id)
            if job is not None and job.version == version:
                del queue.jobs[job_id]

    def _held(self, queue: str, job_id: str, token: str) -> tuple[QueueState, Job] | None:
        state = self._queue(queue)
        self._advance(state, time.time())
        job = state.jobs.get(job_id)
        if job is None or job.state != "running" or not token or job.token != token:
            return None
        return state, job

    # --- the contract -----------------------------------------------------------------------

    async def enqueue(self, queue: str, job: NewJob) -> Enqueued:
        """Store a copy of ``job`` unless its idempotency key was seen within its TTL."""
        require_portable(job.payload, "payload")
        payload = copy_value(job.payload)
        now = time.time()
        with self._lock:
            state = self._queue(queue)
            key = job.idempotency_key
            if key is not None:
                seen = state.idempotency.get(key)
                if seen is not None and seen[1] > now:
                    return Enqueued(seen[0], created=False)
            job_id = job.job_id or new_job_id()
            if key is not None:
                state.idempotency[key] = (job_id, now + job.idempotency_ttl)
                if len(state.idempotency) >= state.idempotency_sweep:
                    _sweep_keys(state, now)
            record = Job(
                job_id,
                job.name,
                payload,
                job.priority,
                job.max_attempts,
                job.max_lost_leases,
                now,
                now,
                "pending",
            )
            state.jobs[job_id] = record
            self._schedule(state, record, job.run_at or now, now)
        return Enqueued(job_id, created=True)

    async def take_many(
        self, queue: str, lease: float, timeout: float, limit: int, worker: str = ""
    ) -> list[Leased]:
        """Lease up to ``limit`` ready jobs, waiting up to ``timeout`` s for the first."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                state = self._queue(queue)
                now = time.time()
                self._advance(state, now)
                taken: list[Leased] = []
                while len(taken) < limit and (job := self._take_ready(state, lease, now, worker)):
                    taken.append(job)
                wait = deadline - time.monotonic()
                if taken or wait <= 0:
                    return taken
                for heap in (state.scheduled, state.leases):
                    if heap:
                        wait = min(wait, heap[0][0] - now)
                waiter = Waiter()
                state.takers.append(waiter)
            await waiter.wait(wait)
            with self._lock:
                if waiter in state.takers:
                    state.takers.remove(waiter)

    def _take_ready(
        self, state: QueueState, lease: float, now: float, worker: str
    ) -> Leased | None:
        while state.ready:
            _, _, version, job_id = heapq.heappop(state.ready)
            job = state.jobs.get(job_id)
            if job is None or job.version != version:
                continue
            job.state = "running"
            job.attempts += 1
            job.record_take(now, worker)
            job.token = new_job_id()
            heapq.heappush(state.leases, (now + lease, self._bump(job), job_id))
            return Leased(
                job_id,
                job.name,
                copy_value(job.payload),
                job.attempts,
                job.max_attempts,
                job.token,
                job.priority,
                job.enqueued_at,
            )
        return None

    async def renew(
        self, queue: str, job_id: str, token: str, lease: float, progress: float | None = None
    ) -> bool:
        """Extend the lease; False when it was lost."""
        with self._lock:
            held = self._held(queue, job_id, token)
            if held is None:
                return False
            state, job = held
            if progress is not None:
                job.progress = progress
            heapq.heappush(state.leases, (time.time() + lease, self._bump(job), job_id))
            return True

    async def ack(
        self, queue: str, job_id: str, token: str, result: Any, result_ttl: float
    ) -> bool:
        """Finish as done with a copy of ``result``."""
        with self._lock:
            held = self._held(queue, job_id, token)
            if held is None:
                return False
            held[1].result = copy_value(result)
            self._finish(*held, "done", result_ttl)
            return True

    async def nack(
        self, queue: str, job_id: str, token: str, error: str, delay: float | None
    ) -> bool:
        """Retry after ``delay`` s, or dead-letter when ``delay`` is None."""
        with self._lock:
            held = self._held(queue, job_id, token)
            if held is None:
                return False
            state, job = held
            if delay is None:
                self._dead_letter(state, job, error)
            else:
                job.error = error
                now = time.time()
                self._schedule(state, job, now + delay, now)
            return True

    async def release(self, queue: str, job_id: str, token: str) -> bool:
        """Back to ready at once; this attempt does not count."""
        with self._lock:
            held = self._held(queue, job_id, token)
            if held is None:
                return False
            held[1].attempts -= 1
            self._make_ready(*held, time.time())
            return True

    async def cancel(self, queue: str, job_id: str, result_ttl: float) -> bool:
        """Cancel a job that nobody holds and that has not finished."""
        with self._lock:
            state = self._queue(queue)
            self._advance(state, time.time())
            job = state.jobs.get(job_id)
            if job is None or job.state not in ("scheduled", "pending"):
                return False
            self._finish(state, job, "cancelled", result_ttl)
            return True

    async def job(self, queue: str, job_id: str) -> JobInfo | None:
        """A snapshot of the job, or None."""
        with self._lock:
            state = self._queue(queue)
            self._advance(state, time.time())
            job = state.jobs.get(job_id)
            return None if job is None else job_info(queue, job)

    async def wait(self, queue: str, job_id: str, timeout: float) -> JobInfo | None:
        """The job once finished, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                state = self._queue(queue)
                self._advance(state, time.time())
                job = state.jobs.get(job_id)
                if job is None:
                    return None
                if job.state in FINISHED_STATES:
                    return job_info(queue, job)
                wait = deadline - time.monotonic()
                if wait <= 0:
                    return None
                if state.leases:  # a lapsed lease may dead-letter the job
                    wait = min(wait, state.leases[0][0] - time.time())
                waiter = Waiter()
                state.watchers.setdefault(job_id, []).append(waiter)
            await waiter.wait(wait)

    async def running(self, queue: str, limit: int = 100) -> list[JobInfo]:
        """Leased jobs, soonest deadline first."""
        with self._lock:
            state = self._queue(queue)
            self._advance(state, time.time())
            live = [
                (deadline, job_id)
                for deadline, version, job_id in state.leases
                if state.jobs.get(job_id) is not None and state.jobs[job_id].version == version
            ]
            return [job_info(queue, state.jobs[job_id]) for _, job_id in sorted(live)[:limit]]

    async def dead_letters(self, queue: str, limit: int = 100) -> list[JobInfo]:
        """Dead-lettered jobs, oldest first."""
        with self._lock:
            state = self._queue(queue)
            self._advance(state, time.time())
            return [job_info(queue, state.jobs[job_id]) for job_id in list(state.dead)[:limit]]

    async def retry_dead(self, queue: str, job_ids: list[str] | None = None) -> int:
        """Make dead-lettered jobs pending again, their attempts reset."""
        with self._lock:
            state = self._queue(queue)
            taken = _take_dead(state, job_ids)
            for job in taken:
                job.attempts = job.lost_leases = 0
                job.finished_at = None
                self._make_ready(state, job, time.time())
            return len(taken)

    async def purge_dead(self, queue: str, job_ids: list[str] | None = None) -> int:
        """Forget dead-lettered jobs."""
        with self._lock:
            state = self._queue(queue)
            taken = _take_dead(state, job_ids)
            for job in taken:
                del state.jobs[job.job_id]
            return len(taken)

    async def counts(self, queue: str) -> dict[str, QueueCounts]:
        """Jobs per task name by state."""
        with self._lock:
            state = self._queue(queue)
            self._advance(state, time.time())
            counts: dict[str, QueueCounts] = {}
            for job in state.jobs.values():
                counts.setdefault(job.name, QueueCounts()).add(job.state)
            return counts

    async def queues(self) -> list[str]:
        """Names of the queues this store has seen."""
        with self._lock:
            return sorted(self._queues)

    async def claim(self, key: str, owner: str, ttl: float) -> bool:
        """Take ``key`` if free, expired or already ``owner``'s."""
        now = time.time()
        with self._lock:
            held = self._claims.get(key)
            if held is not None and held[0] != owner and held[1] > now:
                return False
            self._claims[key] = (owner, now + ttl)
            return True

    async def release_claim(self, key: str, owner: str) -> bool:
        """Free ``key`` if ``owner`` holds it."""
        with self._lock:
            held = self._claims.get(key)
            if held is None or held[0] != owner:
                return False
            del self._claims[key]
            return True

    async def purge(self, queue: str) -> None:
        """Forget the queue; its waiters wake and find nothing."""
        with self._lock:
            state = self._queues.pop(queue, None)
            if state is not None:
                for waiter in state.takers:
                    waiter.wake()
                for waiters in state.watchers.values():
                    for waiter in waiters:
                        waiter.wake()


def _sweep_keys(state: QueueState, now: float) -> None:
    """Forget expired idempotency keys; sweep again once the live ones have doubled."""
    live = {key: seen for key, seen in state.idempotency.items() if seen[1] > now}
    state.idempotency = live
    state.idempotency_sweep = max(1024, 2 * len(live))


def _take_dead(state: QueueState, job_ids: list[str] | None) -> list[Job]:
    """Take the chosen jobs (all when None) off the dead-letter list; ids not on it are ignored."""
    chosen = list(state.dead) if job_ids is None else job_ids
    taken = []
    for job_id in chosen:
        if job_id in state.dead:
            del state.dead[job_id]
            taken.append(state.jobs[job_id])
    return taken
