"""Slow work off the web process: ``asgi-server examples.background.app:application`` serves,
``python -m consumers.worker examples.background.app:application thumbnails`` does the work.

- ``POST /thumbnails`` (body: a name) hands a job to the layer channel "thumbnails" and answers
  202 at once: the request does not wait for the work.
- The worker's ``ThumbnailWorker`` takes each job, does it, and tells the group "results".
- ``/ws/results``: a WebSocket that joins "results" and passes each result to its client.

Both processes need one shared layer: CHANNEL_LAYERS_URL=redis://127.0.0.1:6379/0.
"""

from __future__ import annotations

import asyncio
from typing import Any

from consumers import AsyncConsumer, AsyncHttpConsumer, AsyncJsonWebsocketConsumer
from consumers.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter, path

RESULTS = "results"


# --8<-- [start:web]
class Submit(AsyncHttpConsumer):
    """``POST /thumbnails``: queue a job on the "thumbnails" channel, answer 202."""

    async def handle(self, body: bytes) -> None:
        """Send the job to the worker through the layer; never wait for it."""
        name = body.decode(errors="replace").strip()[:100] or "untitled"
        assert self.channel_layer is not None
        await self.channel_layer.send("thumbnails", {"type": "thumbnail.make", "name": name})
        await self.send_response(202, f"queued {name}\n".encode())


class Results(AsyncJsonWebsocketConsumer):
    """``/ws/results``: every finished job, as JSON."""

    groups = [RESULTS]

    async def thumbnail_done(self, event: dict[str, Any]) -> None:
        """A result from the worker (its group_send): pass it on."""
        await self.send_json({"name": event["name"], "thumbnail": event["thumbnail"]})


# --8<-- [end:web]


# --8<-- [start:worker]
class ThumbnailWorker(AsyncConsumer):
    """Runs in the worker process, one instance for the whole "thumbnails" channel."""

    async def thumbnail_make(self, message: dict[str, Any]) -> None:
        """Do the slow part, then tell everyone watching the results."""
        await asyncio.sleep(0.1)  # stands for the real work (resize an image, call an API)
        thumbnail = f"{message['name']}-128x128.png"
        assert self.channel_layer is not None
        done = {"type": "thumbnail.done", "name": message["name"], "thumbnail": thumbnail}
        await self.channel_layer.group_send(RESULTS, done)


application = ProtocolTypeRouter(
    {
        "http": URLRouter([path("thumbnails", Submit.as_asgi())]),
        "websocket": URLRouter([path("ws/results", Results.as_asgi())]),
        "channel": ChannelNameRouter({"thumbnails": ThumbnailWorker.as_asgi()}),
    }
)
# --8<-- [end:worker]
