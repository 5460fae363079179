"""Consumers: the application side of Crossway, in the style of Django Channels.

A consumer handles one connection (HTTP, WebSocket, or a background channel) and gets each message
through the method named after its type. Routers pick the consumer; communicators test it; the
worker runs consumers for named background channels. Django is optional: nothing here imports it
unless it is installed and used.
"""

from __future__ import annotations

from importlib.metadata import version as _distribution_version

from .base import AsyncConsumer, SyncConsumer
from .exceptions import (
    AcceptConnection,
    ClientDisconnected,
    DenyConnection,
    InvalidChannelLayerError,
    NoHandlerError,
    RequestAborted,
    StopConsumer,
)
from .http import AsyncHttpConsumer
from .websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)

#: The installed distribution's version (one number for its three packages).
__version__ = _distribution_version("crossway")

__all__ = [
    "AcceptConnection",
    "AsyncConsumer",
    "AsyncHttpConsumer",
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "ClientDisconnected",
    "DenyConnection",
    "InvalidChannelLayerError",
    "JsonWebsocketConsumer",
    "NoHandlerError",
    "RequestAborted",
    "StopConsumer",
    "SyncConsumer",
    "WebsocketConsumer",
    "__version__",
]
