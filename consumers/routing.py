"""Routers: by scope type (ProtocolTypeRouter), by URL (URLRouter), by channel name.

URLRouter takes Django's ``path()`` / ``re_path()`` patterns when Django is installed, and this
module's own when it is not (same converters: int, str, slug, uuid, path).
``consumers.routing.path`` is whichever of the two is available.
"""

from __future__ import annotations

import importlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from asgiref.compatibility import guarantee_single_callable
from asgiref.sync import markcoroutinefunction

from channel_layers.startup import LayerStartupError, check_channel_layers

from .base import ASGIApp, Receive, Scope, Send

__all__ = [
    "ChannelNameRouter",
    "ProtocolTypeRouter",
    "URLRouter",
    "get_default_application",
    "path",
    "re_path",
]

logger = logging.getLogger("consumers")

Match = tuple[str, tuple[Any, ...], dict[str, Any]]


def _single_callable(application: Any) -> ASGIApp:
    """asgiref's ASGI 2 -> 3 adapter, typed (asgiref's own is not)."""
    return guarantee_single_callable(application)  # type: ignore[no-any-return,no-untyped-call]


class ProtocolTypeRouter:
    """Send each connection to the application registered for its scope type.

    The ``lifespan`` scope is answered even when no application is registered for it: at startup
    the channel layers are built and described in the log (see ``channel_layers.startup``), and
    a layer that cannot be built fails the startup with one line saying why.
    """

    def __init__(self, application_mapping: Mapping[str, Any]) -> None:
        self.application_mapping = dict(application_mapping)

    @markcoroutinefunction
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[Any]:
        """Route by ``scope["type"]``.

        Returns the application's coroutine rather than awaiting it (a coroutine function to
        every caller and ASGI check): a connection then holds no frame of this router for its
        whole life (~250 bytes per idle WebSocket, issue 18).
        """
        scope_type = scope["type"]
        if scope_type == "lifespan":
            return self._lifespan(scope, receive, send)
        if scope_type not in self.application_mapping:
            return _raise(
                ValueError(
                    f"No application configured for scope type {scope_type!r}; "
                    f"ProtocolTypeRouter has {sorted(self.application_mapping)}"
                )
            )
        application = _single_callable(self.application_mapping[scope_type])
        # Channels returns what the application returns; some tests and wrappers rely on it.
        return application(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the channel layers, then run the registered lifespan application, if any;
        else complete startup and shutdown here."""
        try:
            check_channel_layers()
        except LayerStartupError as exc:
            await receive()  # lifespan.startup: the server waits for our answer to it
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return None
        if "lifespan" in self.application_mapping:
            application = _single_callable(self.application_mapping["lifespan"])
            return await application(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return None


def get_default_application() -> Any:
    """The application Django's ``ASGI_APPLICATION`` setting names (Channels' helper, for
    asgi.py files that call it after ``django.setup()``)."""
    settings = importlib.import_module("django.conf").settings
    dotted = getattr(settings, "ASGI_APPLICATION", None)
    if not dotted:
        raise ValueError(
            "get_default_application() needs the ASGI_APPLICATION setting, "
            "e.g. ASGI_APPLICATION = 'mysite.asgi.application'"
        )
    module_name, _, attribute = str(dotted).rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(
            f"ASGI_APPLICATION = {dotted!r} does not name an application: {exc}; "
            "point it at the module attribute, e.g. 'mysite.asgi.application'"
        ) from exc


# --- our own path() / re_path(), for when Django is not installed ---------------------------


@dataclass(frozen=True)
class _Converter:
    regex: str
    to_python: Callable[[str], Any]


CONVERTERS: dict[str, _Converter] = {
    "int": _Converter("[0-9]+", int),
    "str": _Converter("[^/]+", str),
    "slug": _Converter("[-a-zA-Z0-9_]+", str),
    "uuid": _Converter("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", uuid.UUID),
    "path": _Converter(".+", str),
}
_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def _route_to_regex(route: str, is_endpoint: bool) -> tuple[str, dict[str, _Converter]]:
    """Turn 'room/<int:id>/' into an anchored regex and the converter of each parameter."""
    parts, converters, position = ["^"], {}, 0
    for match in _PARAMETER.finditer(route):
        parts.append(re.escape(route[position : match.start()]))
        position = match.end()
        name, converter_name = match["name"], match["converter"] or "str"
        if not name.isidentifier():
            raise ValueError(f"URL route {route!r}: {name!r} is not a valid parameter name")
        if converter_name not in CONVERTERS:
            raise ValueError(
                f"URL route {route!r} uses unknown converter {converter_name!r}; "
                f"use one of {sorted(CONVERTERS)}"
            )
        converters[name] = CONVERTERS[converter_name]
        parts.append(f"(?P<{name}>{converters[name].regex})")
    parts.append(re.escape(route[position:]))
    if is_endpoint:
        parts.append(r"\Z")
    return "".join(parts), converters


class RoutePattern:
    """A ``path()`` pattern: literal text with typed ``<converter:name>`` parameters."""

    def __init__(self, route: str, name: str | None = None, is_endpoint: bool = True) -> None:
        self._route, self.name, self._is_endpoint = route, name, is_endpoint
        regex, self.converters = _route_to_regex(route, is_endpoint)
        self.regex = re.compile(regex)

    def match(self, path: str) -> Match | None:
        """Return (remaining path, (), kwargs) when ``path`` starts with (or is) this route."""
        found = self.regex.search(path)
        if found is None:
            return None
        kwargs = {}
        for key, value in found.groupdict().items():
            try:
                kwargs[key] = self.converters[key].to_python(value)
            except ValueError:
                return None
        return path[found.end() :], (), kwargs

    def __str__(self) -> str:
        return self._route


class RegexPattern:
    """A ``re_path()`` pattern: named groups become kwargs, else unnamed groups become args."""

    def __init__(self, regex: str, name: str | None = None, is_endpoint: bool = True) -> None:
        self._regex, self.name, self._is_endpoint = regex, name, is_endpoint
        self.regex = re.compile(regex)

    def match(self, path: str) -> Match | None:
        """Return (remaining path, args, kwargs) when the regex matches the start of ``path``."""
        whole = self._is_endpoint and self._regex.endswith("$")
        found = self.regex.fullmatch(path) if whole else self.regex.search(path)
        if found is None:
            return None
        kwargs = {k: v for k, v in found.groupdict().items() if v is not None}
        args = () if found.groupdict() else found.groups()
        return path[found.end() :], args, kwargs

    def __str__(self) -> str:
        return self._regex


@dataclass
class URLRoute:
    """A pattern and the application it routes to (the shape of Django's URLPattern)."""

    pattern: RoutePattern | RegexPattern
    callback: Any
    default_args: dict[str, Any] = field(default_factory=dict)
    name: str | None = None


def _own_path(
    route: str, view: Any, kwargs: dict[str, Any] | None = None, name: str | None = None
) -> URLRoute:
    """Route a ``path()``-style pattern to ``view`` (an ASGI application)."""
    return URLRoute(RoutePattern(route, name), view, dict(kwargs or {}), name)


def _own_re_path(
    route: str, view: Any, kwargs: dict[str, Any] | None = None, name: str | None = None
) -> URLRoute:
    """Route a regular expression to ``view`` (an ASGI application)."""
    return URLRoute(RegexPattern(route, name), view, dict(kwargs or {}), name)


def _django_urls() -> Any:
    try:
        return importlib.import_module("django.urls")
    except ImportError:
        return None


_django = _django_urls()
path: Callable[..., Any] = _django.path if _django is not None else _own_path
re_path: Callable[..., Any] = _django.re_path if _django is not None else _own_re_path


# --- URLRouter ----------------------------------------------------------------------------


def _as_prefix(route: Any) -> Any:
    """A copy of ``route`` whose pattern matches a prefix, for a route to a nested URLRouter."""
    pattern = route.pattern
    kind = type(pattern).__name__
    if kind not in ("RoutePattern", "RegexPattern"):
        raise ValueError(f"URLRouter cannot nest a {kind}; use path() or re_path()")
    source = pattern._route if kind == "RoutePattern" else pattern._regex
    route.pattern = type(pattern)(source, pattern.name, is_endpoint=False)
    return route


class URLRouter:
    """Route by ``scope["path"]`` to the first matching path()/re_path() route.

    Captured values go to ``scope["url_route"] = {"args": ..., "kwargs": ...}`` (nested routers
    add to the outer ones'). A route to another URLRouter matches a prefix; the rest of the path
    goes down as ``scope["path_remaining"]`` and the matched part is added to ``root_path``.
    When nothing matches, HTTP gets a 404 and a WebSocket handshake is refused.
    """

    #: Marks a router that matches the rest of the path (how a parent knows to match a prefix).
    _path_routing = True

    def __init__(self, routes: Sequence[Any]) -> None:
        for route in routes:
            if getattr(route, "callback", None) is None:
                raise ValueError(
                    f"URLRouter route {route!r} has no application: include() is not supported "
                    "(as in Channels 4.3); nest a URLRouter: path('prefix/', URLRouter([...]))"
                )
        self.routes = [
            _as_prefix(route) if getattr(route.callback, "_path_routing", False) else route
            for route in routes
        ]

    @markcoroutinefunction
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[Any]:
        """Route one connection.

        A consumer's route returns the consumer's coroutine itself (no frame of the router kept
        for the connection's life, as in ProtocolTypeRouter); any other route, and no route,
        go through :meth:`_route`, which tries later routes when a nested router finds nothing.
        """
        remaining = scope.get("path_remaining")
        if remaining is None:
            remaining = _path_below_root(scope)
        for route in self.routes:
            found = route.pattern.match(remaining)
            if found:
                if getattr(route.callback, "consumer_class", None) is None:
                    break
                consumer: ASGIApp = route.callback  # as_asgi()'s: a single callable
                return consumer(self._inner_scope(scope, route, found), receive, send)
        return self._route(scope, receive, send)

    @staticmethod
    def _inner_scope(scope: Scope, route: Any, found: Match) -> Scope:
        """The scope a matched route's application gets: the path left, the captured args."""
        rest, args, kwargs = found
        outer = scope.get("url_route", {"args": (), "kwargs": {}})
        return dict(
            scope,
            path_remaining=rest,
            url_route={
                "args": tuple(outer["args"]) + tuple(args),
                "kwargs": {**outer["kwargs"], **route.default_args, **kwargs},
            },
        )

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        remaining = scope.get("path_remaining")
        if remaining is None:
            remaining = _path_below_root(scope)
        for route in self.routes:
            found = route.pattern.match(remaining)
            if not found:
                continue
            rest = found[0]
            inner_scope = self._inner_scope(scope, route, found)
            if getattr(route.callback, "_path_routing", False):
                # A mount point: the nested router's root_path is the path matched so far.
                full_path: str = scope.get("path", "")
                inner_scope["root_path"] = full_path[: len(full_path) - len(rest)].rstrip("/")
            application = _single_callable(route.callback)
            try:
                return await application(inner_scope, receive, send)
            except _NoRouteBelow:
                continue  # the mount point matched but nothing under it: try the next route
        if "path_remaining" in scope:
            # We are nested: let the parent try its later routes, as Channels does (its
            # Resolver404), so `[path("a/", router), path("a/b/", consumer)]` reaches consumer.
            raise _NoRouteBelow(f"No route found for path {remaining!r}")
        await _no_route(scope, receive, send, remaining)


async def _raise(error: Exception) -> Any:
    """A coroutine that raises ``error`` when awaited: how a router that returns its
    application's coroutine reports a mistake where an ``async def`` would have."""
    raise error


class _NoRouteBelow(ValueError):
    """A nested URLRouter matched nothing; raised before it touches receive or send."""


def _path_below_root(scope: Scope) -> str:
    """The path without the app's root_path and its leading slash (Django's patterns have none)."""
    path: str = scope.get("path", "")
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return path.removeprefix("/")


async def _no_route(scope: Scope, receive: Receive, send: Send, remaining: str) -> None:
    """Answer a path no route matches: 404 for HTTP, a refused handshake for WebSocket."""
    where = scope.get("path", remaining)
    if scope["type"] == "http":
        logger.info("No route found for path %r: 404", where)  # the access log shows it too
        body = f"No route found for path {where!r}.".encode()
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif scope["type"] == "websocket":
        # A refused handshake is opaque in a browser's console; say why here.
        logger.warning("No route found for WebSocket path %r: refusing the handshake", where)
        await receive()  # the websocket.connect, which comes before any answer
        if "websocket.http.response" in scope.get("extensions", {}):
            start = {"type": "websocket.http.response.start", "status": 404, "headers": []}
            await send(start)
            await send({"type": "websocket.http.response.body", "body": b"Not Found"})
        else:
            await send({"type": "websocket.close", "code": 1000})  # the server answers 403
    else:
        raise ValueError(f"No route found for path {where!r}")


class ChannelNameRouter:
    """Route background-worker connections (scope type "channel") by channel name."""

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        self.application_mapping = dict(application_mapping)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route by ``scope["channel"]``."""
        if "channel" not in scope:
            raise ValueError(
                "ChannelNameRouter got a scope without 'channel'; it routes worker scopes "
                "(run it with python -m consumers.worker), not HTTP or WebSocket"
            )
        name = scope["channel"]
        if name not in self.application_mapping:
            raise ValueError(
                f"No application configured for channel name {name!r}; "
                f"ChannelNameRouter has {sorted(self.application_mapping)}"
            )
        application = _single_callable(self.application_mapping[name])
        return await application(scope, receive, send)
