"""The chat app."""

from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Rooms where signed-in users talk; messages go through the channel layer."""

    name = "chat"
