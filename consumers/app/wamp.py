"""``app.wamp``: WAMP handlers of an Application, on consumers.wamp's Router.

Handlers take a ``Context`` first, then the call's or event's arguments; sync handlers run in
the thread pool (the router's in-process components do that). Names default to
``"<app name>.<function name>"``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from consumers.wamp import Realm, Router

from .context import Context

if TYPE_CHECKING:
    from .application import Application

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


class AppWamp:
    """The Application's WAMP side: one realm (default "realm1") of its own Router, mounted at
    the app's ``ws_path``; or, with ``connect_to``, of a remote router (see ``remote``)."""

    def __init__(self, app: Application, realm: str, router: Router | None = None) -> None:
        self.app = app
        self.realm = realm
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
        """Hand the handlers placed in this process to the router (once, before it binds)."""
        for kind, name, handler, options in self.declared:
            if not self.app.placed("wamp." + kind, name):
                continue
            options = dict(options)
            limit = options.pop("limit_calls", None)
            context = functools.partial(Context, self.app, name)
            wrapped = with_context(handler, context, limit)
            if kind == "register":
                self.router.register(self.realm, name, **options)(wrapped)
            else:
                self.router.subscribe(self.realm, name, **options)(wrapped)

    async def publish(
        self, topic: str, *args: Any, options: dict[str, Any] | None = None, **kwargs: Any
    ) -> int:
        """Publish to ``topic`` in the app's realm; returns the publication ID."""
        session = self.router.system_session(self.realm)
        return session.publish(topic, *args, options=options, **kwargs)

    async def call(
        self, procedure: str, *args: Any, timeout: float | None = None, **kw: Any
    ) -> Any:
        """Call ``procedure`` in the app's realm and return its result."""
        session = self.router.system_session(self.realm)
        return await session.call(procedure, *args, timeout=timeout, **kw)
