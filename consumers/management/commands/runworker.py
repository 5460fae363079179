"""``manage.py runworker channel [channel ...]``: run the project's consumers for named channels.

``--tasks module:queue`` (repeatable) also, or only, runs consumers.tasks queues and cron jobs;
``--tasks consumers.tasks.django:worker_queues`` runs the queues of Django's TASKS backends.

The application is settings.ASGI_APPLICATION, typically a ProtocolTypeRouter whose "channel" entry
is a ChannelNameRouter; the layer is CHANNEL_LAYERS' "default" (or ``--layer``). It must be shared
between processes (Redis) for other processes' ``channel_layer.send(...)`` to reach the worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from django.core.management.base import BaseCommand, CommandError  # type: ignore[import-untyped]
from django.utils.module_loading import import_string  # type: ignore[import-untyped]

from consumers.worker import Worker, run_until_signalled

_LOG_LEVELS = {0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}


class Command(BaseCommand):  # type: ignore[misc]  # Django ships no type information
    """Consume channel-layer channels with settings.ASGI_APPLICATION until SIGINT or SIGTERM."""

    help = "Runs the consumers of settings.ASGI_APPLICATION for the named channel-layer channels."

    def add_arguments(self, parser: Any) -> None:
        """The channels to consume, and the layer alias."""
        parser.add_argument("channels", nargs="*", help="Channel names to consume.")
        parser.add_argument(
            "--layer", default="default", help="The CHANNEL_LAYERS alias to read from."
        )
        parser.add_argument(
            "--tasks",
            action="append",
            default=[],
            metavar="MODULE[:QUEUE]",
            help="Run this consumers.tasks queue (and the module's @cron jobs); repeatable.",
        )
        parser.add_argument("--concurrency", type=int, default=8, help="Tasks run at once.")
        parser.add_argument(
            "--shutdown-timeout", type=float, default=30, help="Seconds tasks get to finish."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Load the application (and task queues) and run the workers until a signal."""
        if not options["channels"] and not options["tasks"]:
            raise CommandError("name the channels to consume, or --tasks, or both")
        level = _LOG_LEVELS.get(min(int(options["verbosity"]), 2), logging.INFO)
        _log_to_stderr(level)
        runs: list[Callable[[asyncio.Event], Awaitable[None]]] = []
        if options["channels"]:
            runs.append(Worker(_application(), list(options["channels"]), options["layer"]).run)
        if options["tasks"]:
            from consumers.tasks.loading import load_tasks

            runtime = load_tasks(list(options["tasks"]))
            limits = {
                "concurrency": options["concurrency"],
                "shutdown_timeout": options["shutdown_timeout"],
            }
            runs.append(partial(runtime.run, **limits))
        asyncio.run(run_until_signalled(runs))


def _application() -> Any:
    """settings.ASGI_APPLICATION, imported."""
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        raise CommandError(
            "runworker needs settings.ASGI_APPLICATION, e.g. 'yourproject.asgi.application', "
            "routing 'channel' to a ChannelNameRouter"
        )
    try:
        return import_string(path)
    except ImportError as exc:
        raise CommandError(f"cannot import ASGI_APPLICATION {path!r}: {exc}") from exc


def _log_to_stderr(level: int) -> None:
    """Show the worker's own log lines (Django's default logging hides INFO)."""
    logger = logging.getLogger("consumers")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
