"""``python -m consumers.tasks``: inspect task queues and manage their dead letters.

::

    python -m consumers.tasks status [QUEUE ...] [--json]
    python -m consumers.tasks dead list QUEUE
    python -m consumers.tasks dead retry QUEUE [JOB_ID ...]   # none named: all
    python -m consumers.tasks dead purge QUEUE [JOB_ID ...]

The layer is the one workers use: CHANNEL_LAYERS_URL, or Django's CHANNEL_LAYERS when
DJANGO_SETTINGS_MODULE is set (``--layer`` picks another alias).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from .status import collect_status, format_status, resolve_layer

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumers.tasks", description="Inspect consumers.tasks queues."
    )
    parser.add_argument("--layer", default="default", help="the channel layer alias")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="jobs per queue, task and state")
    status.add_argument("queues", nargs="*", help="queues to show (default: all)")
    status.add_argument("--json", action="store_true", help="print JSON")
    dead = commands.add_parser("dead", help="list, retry or purge dead-lettered jobs")
    dead.add_argument("action", choices=["list", "retry", "purge"])
    dead.add_argument("queue")
    dead.add_argument("job_ids", nargs="*", help="jobs to retry or purge (default: all)")
    return parser


async def _run(options: argparse.Namespace) -> str:
    layer = resolve_layer(options.layer)
    try:
        if options.command == "status":
            report = await collect_status(layer, options.queues)
            return json.dumps(report, indent=1) if options.json else format_status(report)
        store = layer.queue_store()
        if options.action == "list":
            lines = [
                f"{info.job_id} {info.name} attempts={info.attempts} error={info.error}"
                for info in await store.dead_letters(options.queue, 1000)
            ]
            return "\n".join(lines) or "(no dead letters)"
        ids = options.job_ids or None
        if options.action == "retry":
            return f"retried {await store.retry_dead(options.queue, ids)}"
        return f"purged {await store.purge_dead(options.queue, ids)}"
    finally:
        await layer.close()


def main(argv: list[str] | None = None) -> None:
    """The command line."""
    options = _parser().parse_args(argv)
    sys.path.insert(0, ".")
    print(asyncio.run(_run(options)))


if __name__ == "__main__":
    main()
