"""``database_sync_to_async``, at the import path Channels users know (``channels.db``).

It is ``sync_to_async`` that closes stale Django database connections before and after the call,
as Django's request cycle does; the implementation lives in ``consumers.sync``.
"""

from __future__ import annotations

from .sync import DatabaseSyncToAsync, aclose_old_connections, database_sync_to_async

__all__ = ["DatabaseSyncToAsync", "aclose_old_connections", "database_sync_to_async"]
