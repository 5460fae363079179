"""A multi-room chat on consumers, without Django: ``asgi-server examples.chat.app:application``.

- ``/`` and ``/static/<file>``: the page and its script and style, served by an AsyncHttpConsumer.
- ``/ws/chat/<room>/``: an AsyncJsonWebsocketConsumer per browser tab; a message sent to a room
  goes to every tab in that room through the channel layer's group_send.

The layer is the in-memory one (one process). Set CHANNEL_LAYERS_URL=redis://localhost:6379/0
to run several server processes that share the rooms. CHAT_ALLOWED_HOSTS (comma-separated,
default: the local host names) lists the hosts whose pages may open the WebSocket.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Any

from consumers import AsyncHttpConsumer, AsyncJsonWebsocketConsumer
from consumers.routing import ProtocolTypeRouter, URLRouter, path
from consumers.security import AllowedHostsOriginValidator

STATIC_DIR = Path(__file__).parent / "static"
MAX_TEXT = 1000  # characters per message: a chat line, not a file upload
MAX_NAME = 32


class StaticFiles(AsyncHttpConsumer):
    """Serves the files of ``static/`` (only those, by name: no paths, no traversal)."""

    async def handle(self, body: bytes) -> None:
        """Answer GET/HEAD for one static file."""
        if self.scope["method"] not in ("GET", "HEAD"):
            await self.send_response(405, b"Method Not Allowed", headers={"allow": "GET, HEAD"})
            return
        name = self.scope["url_route"]["kwargs"].get("name", "index.html")
        files = {entry.name: entry for entry in STATIC_DIR.iterdir() if entry.is_file()}
        if name not in files:
            await self.send_response(404, b"Not Found", headers={"content-type": "text/plain"})
            return
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type.endswith("javascript"):
            content_type += "; charset=utf-8"
        data = files[name].read_bytes()
        headers = {"content-type": content_type, "cache-control": "no-cache"}
        await self.send_response(
            200, b"" if self.scope["method"] == "HEAD" else data, headers=headers
        )


# --8<-- [start:consumer]
class ChatConsumer(AsyncJsonWebsocketConsumer):
    """One browser tab in one room: relays its messages to the room's group and back."""

    async def connect(self) -> None:
        """Join the room named in the URL, then accept."""
        self.room = self.scope["url_route"]["kwargs"]["room"]
        self.group = f"chat.{self.room}"
        assert self.channel_layer is not None and self.channel_name is not None
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "joined", "room": self.room})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """A message from the browser: {"name": ..., "text": ...}, relayed to the room."""
        if not isinstance(content, dict):
            return
        text = str(content.get("text", "")).strip()[:MAX_TEXT]
        name = str(content.get("name", "")).strip()[:MAX_NAME] or "anonymous"
        if text:
            assert self.channel_layer is not None
            event = {"type": "chat.message", "name": name, "text": text}
            await self.channel_layer.group_send(self.group, event)

    async def chat_message(self, event: dict[str, Any]) -> None:
        """A message for the room (from group_send): pass it to the browser."""
        await self.send_json({"type": "message", "name": event["name"], "text": event["text"]})

    async def disconnect(self, code: int) -> None:
        """Leave the room's group."""
        assert self.channel_layer is not None and self.channel_name is not None
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)


# --8<-- [end:consumer]


# --8<-- [start:routing]
ALLOWED_HOSTS = os.environ.get("CHAT_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")

application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                path("", StaticFiles.as_asgi()),
                path("static/<str:name>", StaticFiles.as_asgi()),
            ]
        ),
        "websocket": AllowedHostsOriginValidator(
            URLRouter([path("ws/chat/<slug:room>/", ChatConsumer.as_asgi())]),
            allowed_hosts=ALLOWED_HOSTS,
        ),
    }
)
# --8<-- [end:routing]
