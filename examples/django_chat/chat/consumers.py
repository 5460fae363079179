"""The chat consumer: the Channels tutorial's, plus authentication and authors."""

import json
from typing import Any

from consumers import AsyncWebsocketConsumer

# Room names become layer group names, which allow ASCII letters, digits, "-", "_" and ".".
ROOM_PATTERN = r"[A-Za-z0-9_-]{1,50}"
MAX_MESSAGE = 1000  # characters: a chat line, not a document

# RFC 6455 §7.4.2: 4000-4999 are for applications; 4401 reads as "unauthorized".
CLOSE_NOT_SIGNED_IN = 4401


class ChatConsumer(AsyncWebsocketConsumer):
    """One open room page. Refuses anonymous users; relays messages with their author."""

    room_group_name = ""

    async def connect(self) -> None:
        """Join the room's group if the session's user is signed in; refuse otherwise."""
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.close(code=CLOSE_NOT_SIGNED_IN)  # before accept(): the handshake fails
            return
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        self.room_group_name = f"chat_{self.room_name}"
        assert self.channel_layer is not None and self.channel_name is not None
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        """Leave the room's group."""
        if self.room_group_name and self.channel_layer is not None and self.channel_name:
            await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """A message from the page: {"message": "..."}; sent to the room with its author."""
        try:
            data = json.loads(text_data or "")
        except ValueError:
            return
        message = str(data.get("message", "") if isinstance(data, dict) else "").strip()
        if not message:
            return
        event = {
            "type": "chat.message",
            "message": message[:MAX_MESSAGE],
            # The author comes from the session, never from what the page sent.
            "author": self.scope["user"].get_username(),
        }
        assert self.channel_layer is not None
        await self.channel_layer.group_send(self.room_group_name, event)

    async def chat_message(self, event: dict[str, Any]) -> None:
        """A message for the room (from group_send): pass it to the page."""
        payload = {"author": event["author"], "message": event["message"]}
        await self.send(text_data=json.dumps(payload))
