"""What the queues hold: figures for ``python -m consumers.tasks status`` and a status page.

``status_app()`` is an ASGI application answering every GET with the figures as JSON, or as an
HTML table when the client prefers ``text/html`` (a browser); mount it anywhere in the URL
tree, e.g. ``path("tasks/status", status_app())`` in a URLRouter, behind your authentication.
"""

from __future__ import annotations

import dataclasses
import html
import json
from typing import Any

from channel_layers.base import BaseChannelLayer

__all__ = ["collect_status", "format_status", "status_app"]


def resolve_layer(layer: str | BaseChannelLayer) -> BaseChannelLayer:
    """The layer object for an alias (or the layer itself)."""
    if not isinstance(layer, str):
        return layer
    from channel_layers import get_channel_layer

    found = get_channel_layer(layer)
    if found is None:
        raise RuntimeError(f"no channel layer is configured for alias {layer!r}")
    return found


async def collect_status(
    layer: str | BaseChannelLayer = "default", queues: list[str] | None = None
) -> dict[str, Any]:
    """``{"queues": {queue: {"tasks": {name: {state: n}}, "running": [...], "dead": n}}}``."""
    store = resolve_layer(layer).queue_store()
    names = queues if queues else await store.queues()
    report: dict[str, Any] = {}
    for queue in names:
        counts = await store.counts(queue)
        running = await store.running(queue)
        report[queue] = {
            "tasks": {name: dataclasses.asdict(figures) for name, figures in counts.items()},
            "running": [
                {
                    "id": info.job_id,
                    "name": info.name,
                    "attempt": info.attempts,
                    "progress": info.progress,
                }
                for info in running
            ],
            "dead": sum(figures.failed for figures in counts.values()),
        }
    return {"queues": report}


def format_status(report: dict[str, Any]) -> str:
    """The report as a table for a terminal."""
    states = ("pending", "scheduled", "running", "done", "failed", "cancelled")
    lines = [f"{'queue':<16} {'task':<28} " + " ".join(f"{state:>9}" for state in states)]
    for queue, figures in report["queues"].items():
        if not figures["tasks"]:
            lines.append(f"{queue:<16} (empty)")
        for name, counts in sorted(figures["tasks"].items()):
            numbers = " ".join(f"{counts[state]:>9}" for state in states)
            lines.append(f"{queue:<16} {name:<28} {numbers}")
        for job in figures["running"]:
            progress = "" if job["progress"] is None else f" {job['progress']:.0%}"
            lines.append(f"  running {job['name']} {job['id']} attempt {job['attempt']}{progress}")
    return "\n".join(lines)


def status_app(layer: str | BaseChannelLayer = "default", queues: list[str] | None = None) -> Any:
    """An ASGI app serving :func:`collect_status` as JSON, or HTML for browsers (GET and HEAD;
    other methods get 405)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b'{"error": "use GET"}')
            return
        report = await collect_status(layer, queues)
        accept = dict(scope.get("headers") or []).get(b"accept", b"")
        if b"text/html" in accept:
            body, kind = _html(report).encode(), b"text/html; charset=utf-8"
        else:
            body, kind = json.dumps(report, indent=1).encode(), b"application/json"
        head = scope["method"] == "HEAD"
        await _respond(send, 200, b"" if head else body, len(body), kind)

    return app


def _html(report: dict[str, Any]) -> str:
    """The terminal table as an HTML page (escaped: task names come from users)."""
    table = html.escape(format_status(report))
    return f"<!doctype html><meta charset=utf-8><title>Task queues</title><pre>{table}</pre>"


async def _respond(
    send: Any,
    status: int,
    body: bytes,
    length: int | None = None,
    kind: bytes = b"application/json",
) -> None:
    headers = [
        (b"content-type", kind),
        (b"content-length", str(len(body) if length is None else length).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
