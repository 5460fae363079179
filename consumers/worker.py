"""Background workers: run an application's consumers for named channels of the channel layer.

``python -m consumers.worker myproject.asgi:application thumbnails emails`` reads the layer
channels "thumbnails" and "emails" and hands each message to the application, typically a
ProtocolTypeRouter({"channel": ChannelNameRouter({...})}). As in Channels' runworker, each channel
gets one long-lived application instance, with scope ``{"type": "channel", "channel": name}``,
whose ``receive()`` yields that channel's messages. SIGINT or SIGTERM stops it cleanly.

The layer must be shared between processes (Redis: set CHANNEL_LAYERS_URL, or Django's
CHANNEL_LAYERS); with the in-memory layer only senders in the worker's own process reach it.

``--tasks app.tasks:videos --concurrency 8`` also (or only) runs task queues and cron jobs
(``consumers.tasks``); SIGINT or SIGTERM then lets running tasks finish (``--shutdown-timeout``).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from asgiref.compatibility import guarantee_single_callable

from .base import Message, Scope

__all__ = ["Worker", "import_application", "main"]

logger = logging.getLogger("consumers.worker")


def import_application(target: str) -> Any:
    """Import 'module:attribute' (the attribute defaults to 'application')."""
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    attribute = attribute or "application"
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise SystemExit(
            f"{module_name!r} has no attribute {attribute!r}; give it as module:attribute"
        ) from None


async def _no_client(message: Message) -> None:
    raise RuntimeError(
        "a worker consumer has no client to send to; reply through the channel layer "
        "(self.channel_layer.send(...) or group_send)"
    )


class Worker:
    """Feeds the named layer channels' messages to one application instance per channel."""

    def __init__(self, application: Any, channels: list[str], layer_alias: str = "default"):
        if not channels:
            raise ValueError("name at least one channel for the worker to consume")
        self.application = guarantee_single_callable(application)  # type: ignore[no-untyped-call]
        self.channels = channels
        self.layer_alias = layer_alias

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then cancel the instances and close the layer."""
        from channel_layers import get_channel_layer

        layer = get_channel_layer(self.layer_alias)
        if layer is None:
            raise SystemExit(f"no channel layer is configured for alias {self.layer_alias!r}")
        tasks = [asyncio.ensure_future(self._serve(layer, name)) for name in self.channels]
        stopper = asyncio.ensure_future(stop.wait())
        logger.info("Worker consuming channels %s", ", ".join(self.channels))
        try:
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper:
                    task.result()  # an instance crashed: let its error out
        finally:
            for task in [stopper, *tasks]:
                task.cancel()
            await asyncio.gather(stopper, *tasks, return_exceptions=True)
            await layer.close()
            logger.info("Worker stopped")

    async def _serve(self, layer: Any, channel: str) -> None:
        """One instance for ``channel``: its receive() reads the channel."""
        scope: Scope = {"type": "channel", "channel": channel}

        async def receive() -> Message:
            message: Message = await layer.receive(channel)
            return message

        await self.application(scope, receive, _no_client)


def main(argv: list[str] | None = None) -> None:
    """The ``python -m consumers.worker`` command line."""
    parser = argparse.ArgumentParser(
        prog="python -m consumers.worker",
        description="Run an application's consumers for named channel-layer channels.",
    )
    parser.add_argument("application", nargs="?", help="the ASGI application, as module:attribute")
    parser.add_argument("channels", nargs="*", help="channel names to consume")
    parser.add_argument("--layer", default="default", help="the channel layer alias")
    parser.add_argument(
        "--tasks",
        action="append",
        default=[],
        metavar="MODULE[:QUEUE]",
        help="run this task queue (and the module's @cron jobs); repeatable",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="tasks run at once")
    parser.add_argument(
        "--shutdown-timeout", type=float, default=30, help="seconds running tasks get to finish"
    )
    parser.add_argument("--log-level", default="info", help="logging level (default: info)")
    options = parser.parse_args(argv)
    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if not options.tasks and not (options.application and options.channels):
        parser.error("name an application and its channels, or --tasks, or both")
    sys.path.insert(0, ".")
    runs: list[Callable[[asyncio.Event], Awaitable[None]]] = []
    if options.application:
        if not options.channels:
            parser.error("name the channels the application consumes")
        application = import_application(options.application)
        runs.append(Worker(application, options.channels, options.layer).run)
    if options.tasks:
        from .tasks.loading import load_tasks

        runtime = load_tasks(options.tasks)
        runs.append(partial(runtime.run, **_task_options(options)))
    asyncio.run(run_until_signalled(runs))


def _task_options(options: argparse.Namespace) -> dict[str, Any]:
    return {"concurrency": options.concurrency, "shutdown_timeout": options.shutdown_timeout}


async def run_until_signalled(runs: list[Callable[[asyncio.Event], Awaitable[None]]]) -> None:
    """Run each of ``runs`` with one stop event, set by SIGINT or SIGTERM; return when all end.

    Shared by ``python -m consumers.worker`` and ``manage.py runworker``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await asyncio.gather(*(run(stop) for run in runs))


if __name__ == "__main__":
    main()
