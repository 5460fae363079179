"""The bridges between sync and async code: asgiref's, re-exported, and database_sync_to_async.

We write no bridge of our own. Sync code runs in the event loop's default executor; the server's
``--threads N`` option sets that executor to N threads (Python's default is min(32, CPUs + 4)).
Calls marked ``thread_sensitive=True`` (the default, and what SyncConsumer uses) all run in one
shared thread, so they never run at the same time as each other.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync, async_to_sync, sync_to_async

__all__ = ["aclose_old_connections", "async_to_sync", "database_sync_to_async", "sync_to_async"]

R = TypeVar("R")


# How many test communicator calls are driving an application right now (see
# connection_closing_suspended). A plain counter, as Channels patches its function process-wide.
_suspended = 0


@contextlib.contextmanager
def connection_closing_suspended() -> Iterator[None]:
    """Within this block, database_sync_to_async leaves Django's connections open.

    The test communicators use it around every call, as Channels' do: a Django ``TestCase``
    holds its transaction on a connection that the consumer's database calls share, and closing
    "old" connections there would break the test ("Cannot operate on a closed database").
    """
    global _suspended
    _suspended += 1
    try:
        yield
    finally:
        _suspended -= 1


def _close_old_connections() -> None:
    """Django's close_old_connections() when Django is installed and set up, else nothing.

    Imported lazily so that ``import consumers`` works without Django.
    """
    if _suspended:
        return
    try:
        conf = importlib.import_module("django.conf")
    except ImportError:
        return
    if not conf.settings.configured:
        return
    importlib.import_module("django.db").close_old_connections()


class DatabaseSyncToAsync(SyncToAsync[Any, Any]):
    """sync_to_async that closes stale Django database connections before and after the call,
    as Django does around each request (a long-lived consumer would otherwise keep them)."""

    def thread_handler(self, loop: Any, *args: Any, **kwargs: Any) -> Any:
        _close_old_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            _close_old_connections()


def database_sync_to_async(func: Callable[..., R]) -> Callable[..., Any]:
    """Wrap a sync function that uses Django's ORM so it can be awaited from a consumer."""
    return DatabaseSyncToAsync(func)


async def aclose_old_connections() -> None:
    """Close stale Django database connections from async code, off the event loop (Channels'
    helper of that name): call it in a long-lived async consumer that uses Django's async ORM."""
    await sync_to_async(_close_old_connections)()
