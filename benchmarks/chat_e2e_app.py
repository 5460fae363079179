"""The Channels tutorial's chat consumer on Channels or on Crossway (``benchmarks/chat_e2e.py``).

One module for every stack, so that each runs the same consumer: ``CHAT_STACK=channels`` builds
it on Channels and channels_redis (the peers' venv; served by Daphne or Uvicorn),
``CHAT_STACK=crossway`` on ``consumers`` and Crossway's Redis layer (served by asgi-server).
``CHAT_REDIS_URL`` names the Redis both use. The consumer does what the tutorial's does: join the
room's group on connect, ``group_send`` each client message to the room, send each group message
to the client as JSON.
"""

from __future__ import annotations

import json
import os
from typing import Any

STACK = os.environ.get("CHAT_STACK", "crossway")
REDIS_URL = os.environ.get("CHAT_REDIS_URL", "redis://127.0.0.1:6379/0")
ROUTE = "ws/chat/<str:room_name>/"

if STACK == "channels":
    import django
    from django.conf import settings

    settings.configure(
        ALLOWED_HOSTS=["*"],
        CHANNEL_LAYERS={
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [REDIS_URL]},
            }
        },
    )
    django.setup()
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import URLRouter
    from django.urls import path
else:
    os.environ.setdefault("CHANNEL_LAYERS_URL", REDIS_URL)
    from consumers import AsyncWebsocketConsumer  # type: ignore[assignment]
    from consumers.routing import URLRouter, path  # type: ignore[assignment]


class ChatConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """One client in one room, as in the Channels tutorial."""

    async def connect(self) -> None:
        """Join the room's group, then accept."""
        self.room_group_name = "chat_" + self.scope["url_route"]["kwargs"]["room_name"]
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        """Leave the room's group."""
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """A client's message goes to everyone in the room."""
        message = json.loads(text_data or "{}")["message"]
        event = {"type": "chat.message", "message": message}
        await self.channel_layer.group_send(self.room_group_name, event)

    async def chat_message(self, event: dict[str, Any]) -> None:
        """A message of the room goes to the client."""
        await self.send(text_data=json.dumps({"message": event["message"]}))


application = URLRouter([path(ROUTE, ChatConsumer.as_asgi())])
