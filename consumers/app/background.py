"""Cron jobs and task queues of an Application, delegated to consumers.tasks.

``app.cron(...)`` registers on the app's own Scheduler and ``app.queue(name, workers=N)`` makes a
``consumers.tasks.Queue``; with ``task_workers=True`` (the default) the app runs their workers
inside the server's process from its lifespan, as ``consumers.tasks.with_workers`` does. With
False they run elsewhere: ``python -m consumers.worker --tasks site:app.tasks``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .context import Context

if TYPE_CHECKING:
    from consumers.tasks import Queue, Scheduler

    from .application import Application

logger = logging.getLogger("consumers.app")


def _tasks() -> Any:
    import consumers.tasks as tasks  # on first use: an app without jobs never imports it

    return tasks


class Background:
    """The app's queues (with their worker counts) and its scheduler."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.queues: list[tuple[Queue, int]] = []
        self.cron_jobs: list[tuple[str, Callable[..., Any], dict[str, Any]]] = []
        self._stop = asyncio.Event()
        self._running: list[asyncio.Future[None]] = []

    def cron(self, **schedule: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: run the function on a schedule (``consumers.tasks.cron``'s arguments);
        it gets a Context whose ``details["tick"]`` is the tick's time."""

        def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
            name = schedule.pop("name", None) or f"{self.app.name}.{function.__name__}"

            def context(tick: Any) -> Context:
                return Context(self.app, name, {"tick": tick})

            job: Callable[..., Any]
            if inspect.iscoroutinefunction(function):

                async def job(tick: Any) -> Any:
                    return await function(context(tick))
            else:

                def job(tick: Any) -> Any:
                    return function(context(tick))

            functools.update_wrapper(job, function)
            _tasks().cron(**schedule)  # checks the schedule now, registers nothing yet
            self.cron_jobs.append((name, job, schedule))
            return function

        return decorate

    def queue(self, name: str, *, workers: int = 1, **options: Any) -> Queue:
        """A ``consumers.tasks.Queue``; ``workers`` jobs run at once in each process it is
        placed on (``app.processes({2: ["queue:videos"]})``)."""
        queue: Queue = _tasks().Queue(name, **options)
        self.queues.append((queue, workers))
        return queue

    def start(self) -> None:
        """Start the placed queues' workers and the cron jobs (from the lifespan startup)."""
        if not self.app.task_workers:
            return
        tasks = self._tasks_if_used()
        if tasks is None:
            return
        self._stop = asyncio.Event()
        for queue, workers in self.queues:
            if self.app.placed("queue", queue.name):
                worker = tasks.TaskWorker([queue], workers)
                self._running.append(asyncio.ensure_future(worker.run(self._stop)))
        scheduler: Scheduler = tasks.Scheduler()
        for name, job, schedule in self.cron_jobs:
            if self.app.placed("cron", name):
                tasks.cron(name=name, scheduler=scheduler, **schedule)(job)
        if scheduler.jobs:
            self._running.append(asyncio.ensure_future(scheduler.run(self._stop)))

    def _tasks_if_used(self) -> Any:
        return _tasks() if self.queues or self.cron_jobs else None

    async def stop(self) -> None:
        """Let the workers drain and the cron jobs end (their own timeouts bound it)."""
        self._stop.set()
        for running in self._running:
            with contextlib.suppress(Exception):
                await running
        self._running.clear()
