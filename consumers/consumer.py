"""Channels-compatibility alias (``channels.consumer``): re-exports :mod:`consumers.base`.

No code lives here. The aliases (``consumer.py``, ``db.py``, ``layers.py``, ``generic/``,
``security/websocket.py``) exist so that replacing ``channels.`` with ``consumers.`` in an import
keeps working; new code imports from the real modules.
"""

from __future__ import annotations

from .base import AsyncConsumer, SyncConsumer, get_handler_name

__all__ = ["AsyncConsumer", "SyncConsumer", "get_handler_name"]
