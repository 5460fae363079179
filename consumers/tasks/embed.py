"""Task workers inside the web server's process, for small deployments and development.

``application = with_workers(application, videos, concurrency=4)`` runs a TaskWorker on
``videos`` (and the default scheduler's ``@cron`` jobs) from the ASGI lifespan: it starts when
the server starts and drains, like ``python -m consumers.worker``, when it shuts down. With
``asgi-server --workers N`` each server process runs its own. On the in-memory layer this is the
one way for requests and workers to share a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from .cron import Scheduler, default_scheduler
from .loading import TaskRuntime
from .queue import Queue

__all__ = ["with_workers"]

Message = dict[str, Any]


def with_workers(
    app: Any,
    *queues: Queue,
    concurrency: int = 8,
    shutdown_timeout: float = 30.0,
    scheduler: Scheduler | None = default_scheduler,
) -> Any:
    """Wrap the ASGI ``app`` so that its lifespan also runs task workers (and cron jobs)."""
    runtime = TaskRuntime(list(queues), scheduler if scheduler and scheduler.jobs else None)

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        stop = asyncio.Event()
        running: list[asyncio.Future[None]] = []
        asked = False

        async def lifespan_receive() -> Message:
            nonlocal asked
            asked = True
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                work = runtime.run(stop, concurrency, shutdown_timeout)
                running.append(asyncio.ensure_future(work))
            elif message["type"] == "lifespan.shutdown":
                await _stop(stop, running)
            return message

        try:
            await app(scope, lifespan_receive, send)
        except Exception:
            if asked:
                raise
            # The app has no lifespan support: answer the server ourselves.
            await _own_lifespan(lifespan_receive, send)
        finally:
            await _stop(stop, running)

    return application


async def _own_lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _stop(stop: asyncio.Event, running: list[asyncio.Future[None]]) -> None:
    """Let the workers drain (their own shutdown timeout bounds it)."""
    stop.set()
    for run in running:
        with contextlib.suppress(Exception):
            await run
    running.clear()
