"""The HTTP consumer at Channels' import path (``channels.generic.http``)."""

from __future__ import annotations

from ..http import AsyncHttpConsumer

__all__ = ["AsyncHttpConsumer"]
