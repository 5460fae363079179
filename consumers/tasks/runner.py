"""TaskWorker: takes jobs from queues and runs their tasks, keeping each lease alive.

Per job: a lease is taken (the queue's visibility timeout), renewed every third of it while the
task runs (with the last progress), and ended by exactly one of ack (result), nack (retry with
exponential backoff and jitter, or dead-letter on the last attempt) or release (shutdown).

Shutdown: stop taking, let running tasks finish for up to ``shutdown_timeout`` seconds, then
cancel the async ones and release every lease still held, so the jobs run again elsewhere at
once without using up an attempt. (A sync task cannot be interrupted in its thread: its late
result is discarded, since its lease token is stale by then.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async

from channel_layers.base import InvalidMessage, LayerUnavailable
from channel_layers.queues import Leased, require_portable

from .context import TaskContext
from .queue import Queue, Task

__all__ = ["TaskWorker", "backoff_delay"]

logger = logging.getLogger("consumers.tasks")


def backoff_delay(task: Task, attempt: int) -> float:
    """Seconds before retry number ``attempt`` (1-based): doubling from ``task.backoff`` up to
    ``task.max_backoff``, then drawn from its upper half so that retries do not stampede."""
    ceiling: float = min(task.max_backoff, task.backoff * 2.0 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)


class TaskWorker:
    """Runs the tasks of ``queues``, at most ``concurrency`` at once in this process."""

    def __init__(
        self,
        queues: list[Queue],
        concurrency: int = 8,
        shutdown_timeout: float = 30.0,
        poll_interval: float = 1.0,
    ) -> None:
        if not queues:
            raise ValueError("give the worker at least one Queue")
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.queues = queues
        self.concurrency = concurrency
        self.shutdown_timeout = shutdown_timeout
        self.poll_interval = poll_interval
        self.executor = ThreadPoolExecutor(concurrency, thread_name_prefix="task")
        self.running: dict[asyncio.Task[None], tuple[Queue, Leased]] = {}
        self.finished = 0
        #: Slots not running or reserved for a take in flight.
        self.free = concurrency
        self.slot_freed = asyncio.Event()
        #: Given to each take, so a job's record names the workers that ran it.
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"

    async def run(self, stop: asyncio.Event) -> None:
        """Take and run jobs until ``stop`` is set; then shut down gracefully."""
        self.free = self.concurrency
        self.slot_freed = asyncio.Event()
        takers = [asyncio.ensure_future(self._take_loop(queue, stop)) for queue in self.queues]
        names = ", ".join(f"{q.name} ({len(q.tasks)} tasks)" for q in self.queues)
        logger.info("Task worker on %s, concurrency %d", names, self.concurrency)
        try:
            await asyncio.gather(*takers)
        finally:
            for taker in takers:
                taker.cancel()
            await asyncio.gather(*takers, return_exceptions=True)
            await self._drain()
            self.executor.shutdown(wait=False, cancel_futures=True)
            logger.info("Task worker stopped after %d jobs", self.finished)

    async def _take_loop(self, queue: Queue, stop: asyncio.Event) -> None:
        """Take as many jobs as slots are free, in one call; a take waits at most
        ``poll_interval`` so that a stop is noticed without cancelling a take (which could
        strand a job for a lease)."""
        store = queue.store
        while not stop.is_set():
            if self.free == 0:
                self.slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.slot_freed.wait(), self.poll_interval)
                continue
            wanted = self.free
            self.free -= wanted  # reserved: another queue's loop cannot take them meanwhile
            try:
                taken = await store.take_many(
                    queue.name, queue.lease, self.poll_interval, wanted, self.worker_id
                )
            except LayerUnavailable as exc:
                taken = []
                logger.warning("queue %r: %s; retrying in 1 s", queue.name, exc)
                await asyncio.sleep(1)
            finally:
                self.free += wanted
            for leased in taken:
                self.free -= 1
                job = asyncio.ensure_future(self._run(queue, leased))
                self.running[job] = (queue, leased)
                job.add_done_callback(self._done)

    def _done(self, job: asyncio.Task[None]) -> None:
        _, leased = self.running.pop(job, (None, None))
        if not job.cancelled() and job.exception() is not None:
            # The layer failed while ending the lease: it lapses, and the job runs again.
            name = leased.name if leased else "?"
            logger.error("could not finish %s: %r", name, job.exception())
        self.finished += 1
        self.free += 1
        self.slot_freed.set()

    async def _drain(self) -> None:
        """Wait for running jobs up to the timeout, then cancel them and release their leases."""
        if not self.running:
            return
        logger.info("Waiting up to %.0f s for %d running tasks", self.shutdown_timeout, len(self))
        jobs = list(self.running)
        _, pending = await asyncio.wait(jobs, timeout=self.shutdown_timeout)
        for job in pending:
            job.cancel()
        if pending:
            await asyncio.wait(pending)

    def __len__(self) -> int:
        return len(self.running)

    async def _run(self, queue: Queue, leased: Leased) -> None:
        """Run one job and end its lease exactly once."""
        store = queue.store
        task = queue.find_task(leased.name)
        if task is None:
            error = f"no task named {leased.name!r} on queue {queue.name!r} in this worker"
            await store.nack(queue.name, leased.job_id, leased.token, error, None)
            logger.error("%s (job %s dead-lettered)", error, leased.job_id)
            return
        ctx = TaskContext(
            queue,
            leased.job_id,
            leased.name,
            leased.attempt,
            leased.max_attempts,
            leased.enqueued_at,
            asyncio.get_running_loop(),
            self.worker_id,
        )
        call = asyncio.ensure_future(self._call(task, ctx, leased.payload))
        # The lease keeper starts only when a third of the lease has passed or the task reports
        # progress: a short task costs no keeper task at all.
        keeper: list[asyncio.Task[None]] = []

        def start_keeper() -> None:
            if not keeper and not call.done():
                keeper.append(asyncio.ensure_future(self._keep_lease(queue, leased, ctx, call)))

        ctx.on_change = start_keeper
        timer = ctx.loop.call_later(queue.lease / 3, start_keeper)
        try:
            result = await call
        except asyncio.CancelledError:
            call.cancel()
            with contextlib.suppress(Exception):  # best effort: the lease lapses otherwise
                await asyncio.shield(store.release(queue.name, leased.job_id, leased.token))
            logger.info("Released %s %s for another worker", leased.name, leased.job_id)
            raise
        except Exception as exc:
            await self._failed(queue, task, leased, exc)
        else:
            await store.ack(queue.name, leased.job_id, leased.token, result, queue.result_ttl)
        finally:
            timer.cancel()
            for running in keeper:
                running.cancel()

    async def _call(self, task: Task, ctx: TaskContext, payload: dict[str, Any]) -> Any:
        """Call the function (async on the loop, sync in a thread) within its timeout; the
        result must be something the layer can carry."""
        args, kwargs = payload.get("args", []), payload.get("kwargs", {})
        if task.is_async:
            coroutine = task.function(ctx, *args, **kwargs)
        else:
            coroutine = sync_to_async(
                task.function, thread_sensitive=False, executor=self.executor
            )(ctx, *args, **kwargs)
        try:
            result = await asyncio.wait_for(coroutine, task.timeout)
        except TimeoutError:
            raise TimeoutError(f"timed out after {task.timeout} s") from None
        require_portable(result, f"the result of {task.name}()")
        return result

    async def _failed(self, queue: Queue, task: Task, leased: Leased, exc: Exception) -> None:
        """Retry with backoff, or dead-letter on the last attempt."""
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        if isinstance(exc, InvalidMessage | TimeoutError):
            detail = error
        else:
            detail = "".join(traceback.format_exception(exc)).strip()
        if leased.attempt < leased.max_attempts:
            delay = backoff_delay(task, leased.attempt)
            logger.warning(
                "%s %s attempt %d/%d failed (%s); retrying in %.1f s",
                task.name,
                leased.job_id,
                leased.attempt,
                leased.max_attempts,
                error,
                delay,
            )
            await queue.store.nack(queue.name, leased.job_id, leased.token, error, delay)
        else:
            logger.error("%s %s failed for good:\n%s", task.name, leased.job_id, detail)
            await queue.store.nack(queue.name, leased.job_id, leased.token, error, None)

    async def _keep_lease(
        self, queue: Queue, leased: Leased, ctx: TaskContext, call: asyncio.Future[Any]
    ) -> None:
        """Renew the lease every third of it, or sooner when progress is reported; a lost
        lease (this worker stalled past it) cancels the run, since another worker has it."""
        interval = queue.lease / 3
        sent: float | None = None
        while True:
            ctx.changed.clear()
            progress = ctx.reported
            try:
                held = await queue.store.renew(
                    queue.name, leased.job_id, leased.token, queue.lease, progress
                )
            except LayerUnavailable as exc:
                logger.warning("could not renew the lease of %s: %s", leased.job_id, exc)
                held = True
            if not held:
                logger.warning("lost the lease of %s %s; stopping it", leased.name, leased.job_id)
                call.cancel()
                return
            wanted = queue.progress_group or queue.progress_topic
            if progress is not None and progress != sent and wanted:
                sent = progress
                await self._publish_progress(queue, leased, progress)
            # Progress reported faster than this is sent together, not once per call.
            await asyncio.sleep(0.1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.changed.wait(), max(0.0, interval - 0.1))

    async def _publish_progress(self, queue: Queue, leased: Leased, progress: float) -> None:
        message = {
            "type": "task.progress",
            "queue": queue.name,
            "job_id": leased.job_id,
            "name": leased.name,
            "progress": progress,
        }
        # Progress is informative: never fail a task on it.
        if queue.progress_group is not None:
            try:
                await queue.layer.group_send(queue.progress_group, message)
            except Exception as exc:
                logger.warning("could not send the progress of %s: %s", leased.job_id, exc)
        if queue.progress_topic is not None:
            del message["type"]
            try:
                await _publish_wamp(queue.progress_realm, queue.progress_topic, message)
            except Exception as exc:
                logger.warning("could not publish the progress of %s: %s", leased.job_id, exc)


async def _publish_wamp(realm: str, topic: str, kwargs: dict[str, Any]) -> None:
    """Publish an event through this process's WAMP router, from whichever loop we are on."""
    from consumers.wamp.api import publish_sync
    from consumers.wamp.router import router_for

    if router_for(realm).in_loop_thread():
        publish_sync(realm, topic, **kwargs)
    else:  # the router's loop is another thread's: hop over without blocking ours
        await asyncio.to_thread(publish_sync, realm, topic, **kwargs)
