"""Channels-compatibility alias (``channels.security.websocket``): re-exports
:mod:`consumers.security`."""

from __future__ import annotations

from . import AllowedHostsOriginValidator, OriginValidator

__all__ = ["AllowedHostsOriginValidator", "OriginValidator"]
