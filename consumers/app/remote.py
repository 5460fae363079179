"""Remote components: ``Application("auth", connect_to="ws://router:8080/ws", realm="realm1")``
runs the app's WAMP handlers as a client of a remote router (autobahn-python's asyncio client),
instead of in-process on its own router. The same decorated code runs either way.

The client connects when the app starts, registers and subscribes the handlers placed in this
process when it joins, and after a lost connection (or a refused one) tries again with
exponential backoff (0.5 s doubling to ``max_backoff``) until the app stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import txaio
from asgiref.sync import sync_to_async

from .context import Context
from .wamp import with_context

if TYPE_CHECKING:
    from .application import Application

logger = logging.getLogger("consumers.app.remote")


def _autobahn() -> tuple[Any, Any, Any]:
    txaio.use_asyncio()  # type: ignore[no-untyped-call]  # before autobahn's asyncio classes
    from autobahn.asyncio import wamp, websocket
    from autobahn.wamp import serializer, types

    factory = websocket.WampWebSocketClientFactory
    return wamp.ApplicationSession, factory, (types, serializer)


class RemoteComponent:
    """The app's WAMP session on a remote router, kept connected until ``stop()``."""

    def __init__(self, app: Application, url: str, realm: str, max_backoff: float = 30.0) -> None:
        self.app = app
        self.url = url
        self.realm = realm
        self.max_backoff = max_backoff
        self.session: Any = None
        self.joined = asyncio.Event()
        self.joins = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        """Start connecting (in the running loop)."""
        self._stopping = False
        self.joined = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._keep_connected())

    async def stop(self) -> None:
        """Leave the realm and stop reconnecting."""
        self._stopping = True
        session = self.session
        if session is not None and session.is_attached():
            with contextlib.suppress(Exception):
                session.leave()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _keep_connected(self) -> None:
        delay = 0.5
        while not self._stopping:
            closed = asyncio.Event()
            try:
                await self._connect(closed)
                delay = 0.5
                await closed.wait()
                logger.warning("%s: connection to %s lost", self.app.name, self.url)
            except (OSError, TimeoutError) as exc:
                logger.warning("%s: cannot reach %s (%s)", self.app.name, self.url, exc)
            self.joined.clear()
            self.session = None
            if self._stopping:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_backoff)

    async def _connect(self, closed: asyncio.Event) -> None:
        session_class, factory_class, (types, serializer) = _autobahn()
        component = self

        class Session(session_class):  # type: ignore[misc,valid-type]  # autobahn is untyped
            async def onJoin(self, details: Any) -> None:
                await component._declare(self, types)
                component.session = self
                component.joins += 1
                component.joined.set()
                logger.info(
                    "%s: joined %s on %s", component.app.name, component.realm, component.url
                )

            def onLeave(self, details: Any) -> None:
                self.disconnect()

            def onDisconnect(self) -> None:
                closed.set()

        def make() -> Any:
            return Session(types.ComponentConfig(self.realm))

        parts = urlsplit(self.url)
        secure = parts.scheme == "wss"
        factory = factory_class(make, url=self.url, serializers=[serializer.JsonSerializer()])
        loop = asyncio.get_running_loop()
        port = parts.port or (443 if secure else 80)
        context = ssl.create_default_context() if secure else None
        await asyncio.wait_for(
            loop.create_connection(factory, parts.hostname or "localhost", port, ssl=context), 10
        )

    async def _declare(self, session: Any, types: Any) -> None:
        for kind, name, handler, options in self.app.wamp.declared:
            if not self.app.placed("wamp." + kind, name):
                continue
            context = functools.partial(Context, self.app, name)
            wrapped = with_context(handler, context, options.get("limit_calls"))
            if not inspect.iscoroutinefunction(wrapped):
                wrapped = sync_to_async(wrapped, thread_sensitive=False)
            if kind == "register":
                register = types.RegisterOptions(match=options["match"], invoke=options["invoke"])
                await session.register(wrapped, name, options=register)
            else:
                subscribe = types.SubscribeOptions(match=options["match"])
                await session.subscribe(wrapped, name, options=subscribe)

    async def publish(self, topic: str, *args: Any, **kwargs: Any) -> int:
        """Publish (acknowledged) through the remote router; returns the publication ID."""
        await asyncio.wait_for(self.joined.wait(), 30)
        types = _autobahn()[2][0]
        options = types.PublishOptions(acknowledge=True)
        publication = await self.session.publish(topic, *args, options=options, **kwargs)
        return int(publication.id)

    async def call(self, procedure: str, *args: Any, **kwargs: Any) -> Any:
        """Call through the remote router."""
        await asyncio.wait_for(self.joined.wait(), 30)
        return await self.session.call(procedure, *args, **kwargs)
