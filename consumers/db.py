"""Channels-compatibility alias (``channels.db``): re-exports `database_sync_to_async` from
:mod:`consumers.sync`.

It is ``sync_to_async`` that closes stale Django database connections before and after the call,
as Django's request cycle does; the implementation lives in ``consumers.sync``.
"""

from __future__ import annotations

from .sync import DatabaseSyncToAsync, aclose_old_connections, database_sync_to_async

__all__ = ["DatabaseSyncToAsync", "aclose_old_connections", "database_sync_to_async"]
