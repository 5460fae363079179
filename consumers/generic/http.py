"""Channels-compatibility alias (``channels.generic.http``): re-exports :mod:`consumers.http`."""

from __future__ import annotations

from ..http import AsyncHttpConsumer

__all__ = ["AsyncHttpConsumer"]
