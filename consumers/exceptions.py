"""Exceptions a consumer raises to steer its own life, and the errors the framework reports."""

from __future__ import annotations

# Channels users import ChannelFull from channels.exceptions; it is the layer's own error.
from channel_layers.base import ChannelFull

__all__ = [
    "AcceptConnection",
    "ChannelFull",
    "ClientDisconnected",
    "DenyConnection",
    "InvalidChannelLayerError",
    "NoHandlerError",
    "RequestAborted",
    "StopConsumer",
]


class StopConsumer(Exception):
    """Raise from a handler to end the consumer cleanly: no more messages are dispatched."""


class AcceptConnection(Exception):
    """Raise from ``connect()`` to accept the WebSocket handshake."""


class DenyConnection(Exception):
    """Raise from ``connect()`` to refuse the WebSocket handshake (the client sees a 403)."""


class RequestAborted(Exception):
    """The HTTP client went away before its request body was complete."""


class ClientDisconnected(OSError):
    """A consumer sent to a client that has already disconnected.

    An ``OSError`` subclass, as the ASGI spec asks servers to raise, so a send loop ends at its
    next ``send()`` instead of running on for nobody.
    """


class InvalidChannelLayerError(ValueError):
    """The consumer needs a channel layer (or one with groups) that is not configured."""


class NoHandlerError(ValueError):
    """A message's ``type`` names no handler method on the consumer."""
