"""Publish and call from any code in the process: async, and sync for Django views, signals and
management commands.

The sync helpers hop onto the router's event loop (``run_coroutine_threadsafe``) from another
thread; in the loop's own thread ``publish_sync`` runs directly (routing is synchronous there).
They reach the sessions of every process of the cluster; the async ones wait, once, for this
process's node to have read the cluster's registry (``Router.joined``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .router import router_for

#: How long a sync helper waits for the router's loop before giving up, in seconds.
SYNC_TIMEOUT = 30.0


async def publish(
    realm: str, topic: str, *args: Any, options: dict[str, Any] | None = None, **kwargs: Any
) -> int:
    """Publish an event to ``topic`` in ``realm``; returns the publication ID."""
    router = router_for(realm)
    session = router.system_session(realm)
    await router.joined()
    return session.publish(topic, *args, options=options, **kwargs)


async def call(
    realm: str, procedure: str, *args: Any, timeout: float | None = None, **kwargs: Any
) -> Any:
    """Call ``procedure`` in ``realm`` and return its result (``timeout`` in seconds)."""
    router = router_for(realm)
    session = router.system_session(realm)
    await router.joined()
    return await session.call(procedure, *args, timeout=timeout, **kwargs)


def publish_sync(realm: str, topic: str, *args: Any, **kwargs: Any) -> int:
    """``publish`` for sync code (a Django view); returns the publication ID."""
    router = router_for(realm)
    if router.in_loop_thread():
        return router.system_session(realm).publish(topic, *args, **kwargs)
    if router.loop is None or router.loop.is_closed():
        raise RuntimeError(f"the router of realm {realm!r} is not running yet (no event loop)")
    future = asyncio.run_coroutine_threadsafe(publish(realm, topic, *args, **kwargs), router.loop)
    return future.result(SYNC_TIMEOUT)


def call_sync(
    realm: str, procedure: str, *args: Any, timeout: float | None = None, **kwargs: Any
) -> Any:
    """``call`` for sync code in another thread than the router's loop."""
    router = router_for(realm)
    if router.in_loop_thread():
        raise RuntimeError("call_sync() would block the router's own loop; use 'await call(...)'")
    if router.loop is None or router.loop.is_closed():
        raise RuntimeError(f"the router of realm {realm!r} is not running yet (no event loop)")
    coroutine = call(realm, procedure, *args, timeout=timeout, **kwargs)
    return asyncio.run_coroutine_threadsafe(coroutine, router.loop).result(SYNC_TIMEOUT)
