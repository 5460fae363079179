"""The tasks the worker-process tests run (``--tasks taskapp:videos``, PYTHONPATH=apps).

Each task reports what it does as a message on the channel named by TASK_EVENTS, so that the
test waits for events instead of sleeping.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import time
from typing import Any

from asgiref.sync import async_to_sync

from channel_layers import get_channel_layer
from consumers.tasks import Queue, TaskContext, cron

videos = Queue(
    "videos", lease=float(os.environ.get("TASK_LEASE", "30")), progress_group="video-progress"
)


async def report(kind: str, **fields: Any) -> None:
    """Tell the test: one message on the TASK_EVENTS channel."""
    layer = get_channel_layer()
    assert layer is not None
    message = {"type": "event", "kind": kind, "pid": os.getpid(), **fields}
    await layer.send(os.environ["TASK_EVENTS"], message)


@videos.task("hold")
async def hold(ctx: TaskContext, seconds: float) -> dict[str, Any]:
    """Report the start, hold the first attempt for ``seconds``, return who ran it."""
    await report("started", job=ctx.job_id, attempt=ctx.attempt)
    ctx.progress(0.5)
    if ctx.attempt == 1:
        await asyncio.sleep(seconds)
    await report("finished", job=ctx.job_id, attempt=ctx.attempt)
    return {"pid": os.getpid(), "attempt": ctx.attempt}


@videos.task("encode.video", retries=1)
def encode(ctx: TaskContext, path: str, seconds: float = 0.0) -> dict[str, Any]:
    """A sync task: runs in the worker's thread pool."""
    async_to_sync(report)("started", job=ctx.job_id, attempt=ctx.attempt)
    time.sleep(seconds)
    ctx.progress(1.0)
    return {"path": path, "pid": os.getpid()}


if os.environ.get("TASK_CRON"):

    @cron(every=datetime.timedelta(seconds=1), name="tick")
    async def tick(due: datetime.datetime) -> None:
        """Report the tick (the second it belongs to) and who ran it."""
        await report("tick", second=round(due.timestamp()))


@videos.task("noop")
async def noop(ctx: TaskContext, number: int) -> int:
    """Nothing: for counting and timing."""
    return number
