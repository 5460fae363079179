"""The Router: realms, limits, the ASGI endpoint, in-process handlers, and publish/call from
anywhere in the process.

A router serves one event loop at a time: it binds to the loop of its first connection (or first
in-process use) and rebinds only when that loop has closed (a new server run). Its realms are
registered by name for the module-level ``publish``/``call`` helpers; the most recently created
router wins a name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from channel_layers import get_channel_layer
from channel_layers.base import BaseChannelLayer

from .asgi import WampEndpoint
from .auth.shared import AuthFeed
from .cluster import ClusterRealm
from .component import ComponentSession, Handler
from .node import ClusterNode
from .realm import Realm, RealmRouter, TimerHandle
from .settings import Limits

F = TypeVar("F", bound=Handler)
logger = logging.getLogger("consumers.wamp")


class LoopTimers:
    """``Timers`` on an asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` on the loop after ``delay`` seconds."""
        return self.loop.call_later(delay, callback)


@dataclass(frozen=True)
class _Declared:
    realm: str
    kind: str  # "register" or "subscribe"
    uri: str
    handler: Handler
    options: dict[str, Any]


_routers: dict[str, Router] = {}


def routers_by_realm() -> dict[str, Router]:
    """Every realm name served in this process, and its router (the most recent one)."""
    return dict(_routers)


def router_for(realm: str) -> Router:
    """The router serving ``realm`` in this process (the most recently created one)."""
    router = _routers.get(realm)
    if router is None:
        raise LookupError(f"no Router in this process has a realm {realm!r}; create one first")
    return router


class Router:
    """A WAMP router: ``Router(realms=[Realm("realm1")]).as_asgi()`` is its WebSocket endpoint."""

    def __init__(
        self,
        realms: Iterable[Realm],
        limits: Limits | None = None,
        channel_layer: BaseChannelLayer | str | None = "default",
        sync_interval: float = 2.0,
    ) -> None:
        self.limits = limits or Limits()
        #: The layer that joins this router to the routers of other processes: a layer, or the
        #: alias of a configured one (a process-local layer then means no cluster), or None.
        self.channel_layer = channel_layer
        #: Seconds between two reads of the cluster's registry (see ``cluster.py``).
        self.sync_interval = sync_interval
        self.node: ClusterNode | None = None
        self.auth_feed: AuthFeed | None = None
        self.configs = {realm.name: realm for realm in realms}
        if not self.configs:
            raise ValueError(
                "a Router needs at least one Realm, e.g. Router(realms=[Realm('realm1')])"
            )
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._realms: dict[str, RealmRouter] = {}
        self._declared: list[_Declared] = []
        self._system: dict[str, ComponentSession] = {}
        self.components: list[ComponentSession] = []
        for name in self.configs:
            _routers[name] = self

    def as_asgi(self) -> WampEndpoint:
        """The ASGI application for WebSocket connections (mount it in a URLRouter)."""
        return WampEndpoint(self)

    def realm(self, name: str) -> RealmRouter | None:
        """The running realm called ``name`` (``RealmLookup``, for sessions)."""
        return self._realms.get(name)

    def bind(self) -> None:
        """Bind to the running loop: build the realms and join the declared handlers. Called by
        the endpoint and the in-process API; idempotent while the loop lives."""
        loop = asyncio.get_running_loop()
        if self.loop is loop:
            return
        if self.loop is not None and not self.loop.is_closed():
            raise RuntimeError("this Router already serves another running event loop")
        self.loop = loop
        self._loop_thread = threading.get_ident()
        timers = LoopTimers(loop)
        self._realms = {}
        if self.node is not None:
            self.node.stop()
        if self.auth_feed is not None:
            self.auth_feed.stop()
        self.node = node = self._cluster_node()
        for name, config in self.configs.items():
            cluster = None
            if node is not None:
                cluster = ClusterRealm(node, name, self.limits.max_retained_events)
            realm = self._realms[name] = RealmRouter(config, self.limits, timers, cluster=cluster)
            if cluster is not None:
                cluster.realm = realm
        if node is not None:
            node.start()
            # Failed logins and logouts reach every process (auth/shared.py).
            self.auth_feed = AuthFeed(node, self._realms)
            self.auth_feed.start()
        self._system = {}
        self.components = []
        try:
            self._join_declared()
        except Exception as exc:
            self.loop = None  # nothing half-started stays bound
            raise RuntimeError(f"the Router's declared handlers could not start: {exc}") from exc

    async def joined(self) -> None:
        """Wait until this process's node has read the cluster's registry once (at most
        ``sync_interval``): a session welcomed before would not see the subscriptions and
        registrations of other processes, so its first publications and calls could miss them."""
        if self.node is None:
            return
        waits = [
            realm.cluster.synced.wait()
            for realm in self._realms.values()
            if realm.cluster is not None and not realm.cluster.synced.is_set()
        ]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), self.sync_interval)

    def _cluster_node(self) -> ClusterNode | None:
        """A node on the channel layer when one joins processes (see ``cluster.py``)."""
        layer = self.channel_layer
        if isinstance(layer, str):
            built = get_channel_layer(layer)
            if built is None or built.process_local:
                return None  # one process: the local routing state does it all
            layer = built
        if layer is None:
            return None
        try:
            return ClusterNode(layer, self.sync_interval)
        except NotImplementedError as exc:
            logger.warning("WAMP routers of several processes cannot meet: %s", exc)
            return None

    def _join_declared(self) -> None:
        by_realm: dict[str, ComponentSession] = {}
        for declared in self._declared:
            component = by_realm.get(declared.realm)
            if component is None:
                component = by_realm[declared.realm] = self.join(declared.realm)
            if declared.kind == "register":
                component.register(declared.uri, declared.handler, **declared.options)
            else:
                component.subscribe(declared.uri, declared.handler, **declared.options)

    def in_loop_thread(self) -> bool:
        """Whether the caller runs in the thread of the router's loop."""
        return self.loop is not None and self._loop_thread == threading.get_ident()

    def join(
        self, realm: str, authid: str | None = None, authrole: str = "trusted"
    ) -> ComponentSession:
        """Join ``realm`` as an in-process session (call it in the router's loop)."""
        self.bind()
        component = ComponentSession(self, realm, authid=authid, authrole=authrole)
        self.components.append(component)
        return component

    def system_session(self, realm: str) -> ComponentSession:
        """The router's own session in ``realm``, used by ``publish``/``call`` from anywhere."""
        self.bind()
        session = self._system.get(realm)
        if session is None or not session.is_attached:
            session = self._system[realm] = self.join(realm, authid="crossway", authrole="trusted")
        return session

    def register(
        self, realm: str, procedure: str, *, match: str = "exact", invoke: str = "single"
    ) -> Callable[[F], F]:
        """Decorator: ``handler`` (sync or async) answers calls to ``procedure`` in ``realm``
        once the router runs."""

        def decorate(handler: F) -> F:
            options = {"match": match, "invoke": invoke}
            self._declared.append(_Declared(realm, "register", procedure, handler, options))
            return handler

        return decorate

    def subscribe(self, realm: str, topic: str, *, match: str = "exact") -> Callable[[F], F]:
        """Decorator: ``handler`` (sync or async) receives events on ``topic`` in ``realm``
        once the router runs."""

        def decorate(handler: F) -> F:
            self._declared.append(_Declared(realm, "subscribe", topic, handler, {"match": match}))
            return handler

        return decorate
