"""The generic consumers at Channels' import path (``channels.consumer``)."""

from __future__ import annotations

from .base import AsyncConsumer, SyncConsumer, get_handler_name

__all__ = ["AsyncConsumer", "SyncConsumer", "get_handler_name"]
