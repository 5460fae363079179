"""A task queue and a cron job on the channel layer (docs/tutorials/tasks.md).

- ``thumbnails``: a queue; its task ``thumbnail.make`` stands for slow work, retried twice.
- ``heartbeat``: a cron job, every 2 seconds, run once per tick by one of the workers.

Workers: ``python -m consumers.worker --tasks examples.tasks.app:thumbnails``; jobs are queued by
``python -m examples.tasks.enqueue NAME ...``. Both need one shared layer (CHANNEL_LAYERS_URL).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from consumers.tasks import Queue, TaskContext, cron

logger = logging.getLogger("examples.tasks")

# --8<-- [start:tasks]
thumbnails = Queue("thumbnails")


@thumbnails.task("thumbnail.make", retries=2, timeout=30)
async def make_thumbnail(ctx: TaskContext, name: str) -> dict[str, Any]:
    """The slow part (resizing an image); its return value is the job's result."""
    ctx.progress(0.5)
    await asyncio.sleep(0.1)
    return {"name": name, "thumbnail": f"{name}-128x128.png"}


@cron(every=timedelta(seconds=2))
async def heartbeat() -> None:
    """Runs every 2 s, once per tick however many workers run."""
    logger.info("heartbeat")


# --8<-- [end:tasks]
