"""The origin validators at Channels' import path (``channels.security.websocket``)."""

from __future__ import annotations

from . import AllowedHostsOriginValidator, OriginValidator

__all__ = ["AllowedHostsOriginValidator", "OriginValidator"]
