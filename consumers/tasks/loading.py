"""Finding the queues and cron jobs a worker runs, from ``--tasks module[:attribute]``."""

from __future__ import annotations

import asyncio
import importlib
from dataclasses import dataclass, field

from .cron import Scheduler, default_scheduler
from .queue import Queue
from .runner import TaskWorker

__all__ = ["TaskRuntime", "load_tasks"]


@dataclass
class TaskRuntime:
    """What ``--tasks`` named: queues to work on and the cron jobs to keep."""

    queues: list[Queue] = field(default_factory=list)
    scheduler: Scheduler | None = None

    async def run(
        self, stop: asyncio.Event, concurrency: int = 8, shutdown_timeout: float = 30.0
    ) -> None:
        """Run a TaskWorker on the queues and the scheduler's cron jobs until ``stop``."""
        parts = []
        if self.queues:
            worker = TaskWorker(self.queues, concurrency, shutdown_timeout)
            parts.append(asyncio.ensure_future(worker.run(stop)))
        if self.scheduler is not None and self.scheduler.jobs:
            parts.append(asyncio.ensure_future(self.scheduler.run(stop)))
        if not parts:
            raise SystemExit("--tasks named no Queue and no @cron job; nothing to run")
        try:
            await asyncio.gather(*parts)
        finally:
            for part in parts:
                part.cancel()
            await asyncio.gather(*parts, return_exceptions=True)


def load_tasks(targets: list[str]) -> TaskRuntime:
    """Import each ``module`` or ``module:attribute``: an attribute names a Queue (or a list
    of them, or a Scheduler, or a function returning those); a bare module contributes every
    Queue defined at its top level.
    Importing registers the module's ``@cron`` jobs on the default scheduler, which runs them.
    """
    runtime = TaskRuntime()
    for target in targets:
        module_name, _, attribute = target.partition(":")
        module = importlib.import_module(module_name)
        if not attribute:
            found = [value for value in vars(module).values() if isinstance(value, Queue)]
        else:
            try:
                value = getattr(module, attribute)
            except AttributeError:
                raise SystemExit(f"{module_name!r} has no attribute {attribute!r}") from None
            if callable(value) and not isinstance(value, Queue | Scheduler):
                value = value()  # a factory, e.g. consumers.tasks.django:worker_queues
            found = value if isinstance(value, list) else [value]
        for item in found:
            if isinstance(item, Scheduler):
                runtime.scheduler = item
            elif isinstance(item, Queue):
                if item not in runtime.queues:
                    runtime.queues.append(item)
            else:
                raise SystemExit(
                    f"--tasks {target}: {type(item).__name__} is not a consumers.tasks.Queue "
                    "(name the Queue object, e.g. app.tasks:videos)"
                )
    if runtime.scheduler is None and default_scheduler.jobs:
        runtime.scheduler = default_scheduler
    return runtime
