"""Task queues, workers and cron on the channel layer (issue 14).

::

    from consumers.tasks import Queue, cron

    videos = Queue("videos")

    @videos.task("encode.video", retries=3, timeout=600)
    def encode(ctx, path): ...

    handle = await videos.enqueue("encode.video", "/tmp/b.mov", priority=5)
    result = await handle.result(timeout=30)

Workers: ``python -m consumers.worker --tasks app.tasks:videos --concurrency 8``. Jobs live in
the layer's work queues (``channel_layers/queues.py``): on Redis they are shared and durable
(at least once); on the in-memory layer they live inside one process.
"""

from __future__ import annotations

from .context import TaskContext
from .cron import CronJob, Scheduler, cron, default_scheduler
from .embed import with_workers
from .queue import Queue, Task, TaskCancelled, TaskError, TaskFailed, TaskHandle
from .runner import TaskWorker, backoff_delay

__all__ = [
    "CronJob",
    "Queue",
    "Scheduler",
    "Task",
    "TaskCancelled",
    "TaskContext",
    "TaskError",
    "TaskFailed",
    "TaskHandle",
    "TaskWorker",
    "backoff_delay",
    "cron",
    "default_scheduler",
    "with_workers",
]
