"""``app.wamp``: WAMP handlers of an Application, on consumers.wamp's Router.

Handlers take a ``Context`` first, then the call's or event's arguments; sync handlers run in
the thread pool (the router's in-process components do that). Names default to
``"<app name>.<function name>"``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async

from consumers.wamp import Realm, Router

from .context import Context

if TYPE_CHECKING:
    from .application import Application

logger = logging.getLogger("consumers.app")

Handler = Callable[..., Any]


def with_context(
    handler: Handler, make_context: Callable[[], Context], limit_calls: int | None = None
) -> Handler:
    """``handler`` called with a fresh Context first; at most ``limit_calls`` times if given."""
    calls = 0

    def allowed() -> bool:
        nonlocal calls
        calls += 1
        return limit_calls is None or calls <= limit_calls

    if inspect.iscoroutinefunction(handler):

        @functools.wraps(handler)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            if allowed():
                return await handler(make_context(), *args, **kwargs)
            return None

        return run_async

    @functools.wraps(handler)
    def run_sync(*args: Any, **kwargs: Any) -> Any:
        if allowed():
            return handler(make_context(), *args, **kwargs)
        return None

    return run_sync


def _fan_out(handlers: list[Handler]) -> Handler:
    if len(handlers) == 1:
        return handlers[0]
    calls = [
        h if inspect.iscoroutinefunction(h) else sync_to_async(h, thread_sensitive=False)
        for h in handlers
    ]

    async def every_handler(*args: Any, **kwargs: Any) -> None:
        for call in calls:
            try:
                await call(*args, **kwargs)
            except Exception:  # one failing handler does not starve the others
                logger.exception("WAMP event handler %r failed", call)

    return every_handler


class AppWamp:
    """The Application's WAMP side: one realm (default "realm1") of its own Router (or of the
    ``router`` it is given, e.g. a Django project's), mounted at the app's ``ws_path``; or, with
    ``connect_to``, of a remote router (see ``remote``)."""

    def __init__(self, app: Application, realm: str, router: Router | None = None) -> None:
        self.app = app
        self.realm = realm
        if router is not None and realm not in router.configs:
            raise ValueError(
                f"the Router has no realm {realm!r} (it has {', '.join(router.configs)}): "
                f"give Application(realm=...) one of those, or add Realm({realm!r}) to it"
            )
        self.router = router or Router(realms=[Realm(realm)])
        #: (kind, uri, handler, options) as declared, for placement and remote components.
        self.declared: list[tuple[str, str, Handler, dict[str, Any]]] = []

    def _name(self, uri: str | None, handler: Handler) -> str:
        return uri or f"{self.app.name}.{handler.__name__}"

    def register(
        self, uri: str | None = None, *, match: str = "exact", invoke: str = "single"
    ) -> Callable[[Handler], Handler]:
        """Decorator: the handler answers calls to ``uri`` (default ``<app>.<function>``)."""

        def decorate(handler: Handler) -> Handler:
            name = self._name(uri, handler)
            options = {"match": match, "invoke": invoke}
            self.declared.append(("register", name, handler, options))
            return handler

        return decorate

    def subscribe(
        self, topic: str | None = None, *, match: str = "exact", limit_calls: int | None = None
    ) -> Callable[[Handler], Handler]:
        """Decorator: the handler receives events on ``topic``, at most ``limit_calls`` times."""

        def decorate(handler: Handler) -> Handler:
            name = self._name(topic, handler)
            options: dict[str, Any] = {"match": match, "limit_calls": limit_calls}
            self.declared.append(("subscribe", name, handler, options))
            return handler

        return decorate

    def prepare(self) -> None:
        """Hand the handlers placed in this process to the router (once, before it binds).
        Several handlers of one topic share one subscription (WAMP gives a session one
        subscription per topic), called in the order they were declared."""
        # A shared Router (a project's) may serve already: then the handlers join it as a
        # session now, since a running Router joins its declared handlers only when it binds.
        running = self.router.loop is not None and not self.router.loop.is_closed()
        session = self.router.join(self.realm) if running else None
        topics: dict[tuple[str, str], list[Handler]] = {}
        for kind, name, handler, options in self.declared:
            if not self.app.placed("wamp." + kind, name):
                continue
            limit = options.get("limit_calls")
            wrapped = with_context(handler, functools.partial(Context, self.app, name), limit)
            if kind != "register":
                topics.setdefault((name, options["match"]), []).append(wrapped)
            elif session is not None:
                session.register(name, wrapped, **options)
            else:
                self.router.register(self.realm, name, **options)(wrapped)
        for (topic, match), handlers in topics.items():
            if session is not None:
                session.subscribe(topic, _fan_out(handlers), match=match)
            else:
                self.router.subscribe(self.realm, topic, match=match)(_fan_out(handlers))

    async def publish(
        self, topic: str, *args: Any, options: dict[str, Any] | None = None, **kwargs: Any
    ) -> int:
        """Publish to ``topic`` in the app's realm; returns the publication ID."""
        if self.app.remote is not None:
            return await self.app.remote.publish(topic, *args, **kwargs)
        session = self.router.system_session(self.realm)
        return session.publish(topic, *args, options=options, **kwargs)

    async def call(
        self, procedure: str, *args: Any, timeout: float | None = None, **kw: Any
    ) -> Any:
        """Call ``procedure`` in the app's realm and return its result."""
        if self.app.remote is not None:
            return await self.app.remote.call(procedure, *args, **kw)
        session = self.router.system_session(self.realm)
        return await session.call(procedure, *args, timeout=timeout, **kw)
