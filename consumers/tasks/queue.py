"""Queue, Task and TaskHandle: declaring tasks and enqueueing them on the channel layer.

A :class:`Queue` names a work queue of a channel layer (``channel_layers/queues.py``); its
``task()`` decorator registers functions that a worker (``python -m consumers.worker --tasks``)
runs. Enqueueing checks the arguments against the layer's serializer rules at once, so a bad
argument fails in the caller, never in the worker.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync

from channel_layers.base import InvalidMessage
from channel_layers.queues import MAX_PRIORITY, JobInfo, NewJob, QueueStore, require_portable

if TYPE_CHECKING:
    from channel_layers.base import BaseChannelLayer

    from .context import TaskContext

__all__ = ["Queue", "Task", "TaskCancelled", "TaskError", "TaskFailed", "TaskHandle", "When"]

#: A delay, or a moment: ``run_after=timedelta(minutes=1)``, ``datetime(...)`` (naive: UTC) or
#: seconds from now.
When = datetime.timedelta | datetime.datetime | float | int


class TaskError(Exception):
    """Base class of the errors a task handle raises about its task."""


class TaskFailed(TaskError):
    """The task failed on its last attempt (it is in the dead-letter list); ``error`` says why."""

    def __init__(self, job_id: str, error: str) -> None:
        super().__init__(f"task {job_id} failed: {error}")
        self.job_id = job_id
        self.error = error


class TaskCancelled(TaskError):
    """The task was cancelled before it ran."""


@dataclass
class Task:
    """A function registered on a queue under a name, with its retry and timeout policy."""

    queue: Queue
    name: str
    function: Callable[..., Any]
    #: Attempts after the first one failed (so ``retries=3`` runs at most 4 times).
    retries: int = 0
    #: Seconds one attempt may run; None: no limit.
    timeout: float | None = None
    #: The first retry waits about ``backoff`` s, each next one twice as long (with jitter).
    backoff: float = 1.0
    max_backoff: float = 300.0

    @property
    def is_async(self) -> bool:
        """True for ``async def`` tasks (run on the loop); others run in the worker's threads."""
        return inspect.iscoroutinefunction(self.function)

    def __call__(self, ctx: TaskContext, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly (tests, or from another task)."""
        return self.function(ctx, *args, **kwargs)

    async def enqueue(self, *args: Any, **kwargs: Any) -> TaskHandle:
        """``await queue.enqueue(this task's name, ...)``."""
        return await self.queue.enqueue(self.name, *args, **kwargs)

    def append(self, *args: Any, **kwargs: Any) -> TaskHandle:
        """``queue.append(this task's name, ...)``."""
        return self.queue.append(self.name, *args, **kwargs)


class Queue:
    """A named task queue on a channel layer (by alias, default "default", or a layer object).

    ``lease`` is the visibility timeout: a job whose worker stops renewing its lease (it died)
    comes back after that many seconds. ``result_ttl`` is how long results stay readable.
    ``progress_group``, when set, receives ``{"type": "task.progress", ...}`` messages;
    ``progress_topic``, when set, receives the same figures as a WAMP event in
    ``progress_realm`` (keyword arguments ``queue``, ``job_id``, ``name``, ``progress``),
    published through the router of the worker's process (``consumers.wamp.publish``).
    """

    def __init__(
        self,
        name: str,
        *,
        layer: str | BaseChannelLayer = "default",
        lease: float = 30.0,
        result_ttl: float = 86400.0,
        idempotency_ttl: float = 86400.0,
        progress_group: str | None = None,
        progress_topic: str | None = None,
        progress_realm: str = "realm1",
    ) -> None:
        self.name = name
        self.layer_alias = layer
        self.lease = float(lease)
        self.result_ttl = float(result_ttl)
        self.idempotency_ttl = float(idempotency_ttl)
        self.progress_group = progress_group
        self.progress_topic = progress_topic
        self.progress_realm = progress_realm
        self.tasks: dict[str, Task] = {}

    def __repr__(self) -> str:
        return f"Queue({self.name!r}, tasks={sorted(self.tasks)})"

    @property
    def layer(self) -> BaseChannelLayer:
        """The channel layer this queue lives on."""
        if not isinstance(self.layer_alias, str):
            return self.layer_alias
        from channel_layers import get_channel_layer

        layer = get_channel_layer(self.layer_alias)
        if layer is None:
            raise RuntimeError(
                f"queue {self.name!r}: no channel layer is configured for alias "
                f"{self.layer_alias!r}; set CHANNEL_LAYERS (Django) or CHANNEL_LAYERS_URL"
            )
        return layer

    @property
    def store(self) -> QueueStore:
        """The layer's work-queue store."""
        return self.layer.queue_store()

    def task(
        self,
        name: str | None = None,
        *,
        retries: int = 0,
        timeout: float | None = None,
        backoff: float = 1.0,
        max_backoff: float = 300.0,
    ) -> Callable[[Callable[..., Any]], Task]:
        """Register the decorated function (sync or async; first argument: the context)."""

        def register(function: Callable[..., Any]) -> Task:
            task_name = name or f"{function.__module__}.{function.__qualname__}"
            if task_name in self.tasks:
                raise ValueError(f"queue {self.name!r} already has a task named {task_name!r}")
            task = Task(self, task_name, function, retries, timeout, backoff, max_backoff)
            self.tasks[task_name] = task
            return task

        return register

    async def enqueue(
        self,
        task: str | Task,
        *args: Any,
        priority: int = 0,
        run_after: When | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> TaskHandle:
        """Queue a run of ``task`` with these arguments; returns a handle on its result.

        ``priority`` (-100 to 100, higher first), ``run_after`` and ``idempotency_key`` (a
        duplicate within ``idempotency_ttl`` returns the first one's handle) are options, not
        arguments of the task.
        """
        job = self._new_job(task, args, kwargs, priority, run_after, idempotency_key)
        enqueued = await self.store.enqueue(self.name, job)
        return TaskHandle(self, enqueued.job_id, job.name, created=enqueued.created)

    def append(
        self,
        task: str | Task,
        *args: Any,
        priority: int = 0,
        run_after: When | None = None,
        idempotency_key: str | None = None,
        **kwargs: Any,
    ) -> TaskHandle:
        """The synchronous :meth:`enqueue`, for sync code (views, scripts, sync tasks)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "Queue.append() blocks, so it cannot run on an event loop: "
                "use 'await queue.enqueue(...)' in async code"
            )
        enqueue = async_to_sync(self.enqueue)
        return enqueue(
            task,
            *args,
            priority=priority,
            run_after=run_after,
            idempotency_key=idempotency_key,
            **kwargs,
        )

    def _new_job(
        self,
        task: str | Task,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        priority: int,
        run_after: When | None,
        idempotency_key: str | None,
    ) -> NewJob:
        name = task.name if isinstance(task, Task) else task
        registered = self.tasks.get(name)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise TypeError(f"priority must be an int, got {priority!r}")
        if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
            raise ValueError(f"priority must be between -100 and 100, got {priority}")
        payload = {"args": list(args), "kwargs": kwargs}
        try:
            for index, value in enumerate(args):
                require_portable(value, f"argument {index}")
            for key, value in kwargs.items():
                require_portable(value, f"keyword argument {key!r}")
        except InvalidMessage as exc:
            raise InvalidMessage(f"cannot enqueue {name!r}: {exc}") from None
        return NewJob(
            name=name,
            payload=payload,
            priority=priority,
            run_at=run_at(run_after),
            max_attempts=1 + (registered.retries if registered else 0),
            idempotency_key=idempotency_key,
            idempotency_ttl=self.idempotency_ttl,
        )

    def find_task(self, name: str) -> Task | None:
        """The task a worker runs for a job named ``name`` (None: unknown here)."""
        return self.tasks.get(name)

    def handle(self, job_id: str) -> TaskHandle:
        """A handle on an earlier enqueue, by its id."""
        return TaskHandle(self, job_id, "")

    async def dead_letters(self, limit: int = 100) -> list[JobInfo]:
        """The jobs that failed for good, oldest first."""
        return await self.store.dead_letters(self.name, limit)

    async def retry_dead(self, job_ids: list[str] | None = None) -> int:
        """Run dead-lettered jobs again (all, or those named), with fresh attempts."""
        return await self.store.retry_dead(self.name, job_ids)

    async def purge_dead(self, job_ids: list[str] | None = None) -> int:
        """Forget dead-lettered jobs (all, or those named)."""
        return await self.store.purge_dead(self.name, job_ids)


def run_at(when: When | None) -> float | None:
    """``run_after`` as a wall-clock timestamp (None: now)."""
    if when is None:
        return None
    now = datetime.datetime.now(datetime.UTC)
    if isinstance(when, datetime.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        return when.timestamp()
    if isinstance(when, datetime.timedelta):
        return (now + when).timestamp()
    if isinstance(when, int | float) and not isinstance(when, bool):
        return now.timestamp() + float(when)
    raise TypeError(f"run_after must be a timedelta, a datetime or seconds, got {when!r}")


class TaskHandle:
    """One enqueued run: wait for its result, read its status, cancel it."""

    def __init__(self, queue: Queue, job_id: str, name: str, created: bool = True) -> None:
        self.queue = queue
        self.id = job_id
        self.name = name
        #: False when an idempotency key matched an earlier enqueue (this is that one's handle).
        self.created = created

    def __repr__(self) -> str:
        return f"<TaskHandle {self.name} {self.id} on {self.queue.name!r}>"

    async def status(self) -> JobInfo | None:
        """The job's record: state, attempts, progress, error; None once its result expired."""
        return await self.queue.store.job(self.queue.name, self.id)

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for the task's return value; TaskFailed or TaskCancelled when it has none,
        TimeoutError when it is not finished within ``timeout`` seconds (None: wait forever)."""
        store, queue = self.queue.store, self.queue.name
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 3600.0 if deadline is None else max(0.0, deadline - time.monotonic())
            info = await store.wait(queue, self.id, wait)
            if info is not None:
                break
            # wait() says None for "not yet" and for "no such job": tell them apart.
            if await store.job(queue, self.id) is None:
                raise LookupError(f"no task {self.id} on queue {queue!r} (its result expired?)")
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {self.id} did not finish within {timeout} s")
        if info.state == "cancelled":
            raise TaskCancelled(f"task {self.id} was cancelled")
        if info.state == "failed":
            raise TaskFailed(self.id, info.error or "unknown error")
        return info.result

    async def cancel(self) -> bool:
        """Cancel the run if no worker has started it; True when it was cancelled."""
        return await self.queue.store.cancel(self.queue.name, self.id, self.queue.result_ttl)
