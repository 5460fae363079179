"""The path types of a Crossbar.io web transport, built from their config entries.

Each builder takes one ``paths`` entry and returns the ASGI app for it, or raises
``Unsupported``/``ValueError`` with a message that names the fix. ``crossbar.py`` walks the
config and collects every problem before refusing to start.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base import ASGIApp, Receive, Scope, Send
from .static import StaticFiles
from .wsgi import WsgiApp

if TYPE_CHECKING:  # the wamp extra is needed only by configs with a router
    from ..wamp.roles import Role

#: Path types Crossbar.io has and Crossway does not (yet), with what to do instead.
UNSUPPORTED_PATHS = {
    "reverseproxy": "put a reverse proxy (nginx, Caddy) in front, or mount an ASGI proxy app",
    "resource": "mount the Twisted resource's logic as an ASGI app in Python instead",
    "longpoll": "use the websocket path (every autobahn client speaks WebSocket)",
    "cgi": "run the script from a WSGI app on a wsgi path",
    "upload": "handle uploads in a WSGI or ASGI view",
    "path": "flatten the nested paths into the transport's own 'paths'",
    "json": "serve the file from a static path",
    "nodeinfo": "nothing: Crossway has no node management API",
    "schemadoc": "nothing: Crossway has no schema documentation pages",
    "archive": "unpack the archive and serve it from a static path",
}
SERIALIZERS = ("json", "msgpack", "cbor")


class Unsupported(Exception):
    """A config entry Crossway cannot run (the message says what to do instead)."""


@dataclass
class Context:
    """What a path builder needs: the config's folder, the router, the realms' roles."""

    directory: Path
    router: Any  # consumers.wamp.Router
    roles: dict[str, dict[str, Role]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def role(self, realm: Any, role: Any) -> Role:
        """The role ``role`` of realm ``realm`` (a config error when either is unknown)."""
        if realm not in self.roles:
            raise ValueError(f"realm {realm!r} is not defined in any router worker's realms")
        if role not in self.roles[realm]:
            known = ", ".join(sorted(self.roles[realm])) or "none"
            raise ValueError(f"role {role!r} is not defined in realm {realm!r} (roles: {known})")
        return self.roles[realm][role]


def static_path(entry: Mapping[str, Any], context: Context) -> ASGIApp:
    """``{"type": "static", "directory": "..", "options": {...}}``."""
    if "package" in entry or "resource" in entry:
        raise Unsupported(
            "static paths from a Python package are not supported; give a 'directory'"
        )
    if "directory" not in entry:
        raise ValueError("a static path needs a 'directory' (relative to the config's folder)")
    options = entry.get("options", {})
    directory = (context.directory / str(entry["directory"])).resolve()
    listing = bool(options.get("enable_directory_listing", options.get("allow_index", False)))
    cache = options.get("cache_timeout")
    return StaticFiles(
        directory,
        allow_index=listing,
        cache_timeout=int(cache) if cache is not None else None,
        follow_symlinks=bool(options.get("follow_symlinks", False)),
    )


def wsgi_path(entry: Mapping[str, Any], context: Context) -> ASGIApp:
    """``{"type": "wsgi", "module": "myapp.wsgi", "object": "application"}``."""
    module_name, attribute = entry.get("module"), entry.get("object")
    if not module_name or not attribute:
        raise ValueError("a wsgi path needs 'module' and 'object' (e.g. myapp.wsgi, application)")
    if str(context.directory) not in sys.path:
        sys.path.insert(0, str(context.directory))
    try:
        module = importlib.import_module(str(module_name))
    except ImportError as exc:
        raise ValueError(
            f"cannot import wsgi module {module_name!r}: {exc}; add its folder to the router "
            "worker's options.pythonpath"
        ) from exc
    if not hasattr(module, str(attribute)):
        raise ValueError(f"wsgi module {module_name!r} has no attribute {attribute!r}")
    return WsgiApp(getattr(module, str(attribute)))


class SerializerFilter:
    """The WAMP endpoint offered only the serializers a path allows (Crossbar's
    ``serializers``): the client's other subprotocols are hidden from it."""

    def __init__(self, endpoint: ASGIApp, serializers: tuple[str, ...]) -> None:
        self.endpoint = endpoint
        self.allowed = {f"wamp.2.{name}" for name in serializers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Filter the subprotocols, then hand over to the router's endpoint."""
        offered = [p for p in scope.get("subprotocols", ()) if p in self.allowed]
        await self.endpoint(dict(scope, subprotocols=offered), receive, send)


def websocket_path(entry: Mapping[str, Any], context: Context) -> ASGIApp:
    """``{"type": "websocket", "serializers": [...], "auth": {...}}``: the WAMP router."""
    serializers = tuple(entry.get("serializers") or SERIALIZERS)
    unknown = [name for name in serializers if name not in SERIALIZERS]
    if unknown:
        raise Unsupported(f"serializers {unknown} are not supported; use {', '.join(SERIALIZERS)}")
    auth = entry.get("auth") or {}
    methods = [method for method in auth if method != "anonymous"]
    if methods:
        raise Unsupported(
            f"authentication {methods} is not supported yet (the router admits anonymous "
            "sessions only); remove the 'auth' entry or keep only 'anonymous'"
        )
    if entry.get("options"):
        context.warnings.append(
            f"websocket options {sorted(entry['options'])} are not applied; the server's "
            "--ws-* options and the router's Limits govern WebSocket connections"
        )
    endpoint = context.router.as_asgi()
    return endpoint if serializers == SERIALIZERS else SerializerFilter(endpoint, serializers)


def redirect_path(entry: Mapping[str, Any], context: Context) -> ASGIApp:
    """``{"type": "redirect", "url": "https://example.com/"}``."""
    from .redirect import Redirect

    if not entry.get("url"):
        raise ValueError("a redirect path needs a 'url'")
    return Redirect(str(entry["url"]))


def bridge_path(entry: Mapping[str, Any], context: Context) -> ASGIApp:
    """``publisher``/``pusher``, ``caller`` and ``webhook`` paths."""
    from .bridge import Caller, Publisher, Webhook
    from .signing import BridgeSecurity

    kind = entry["type"]
    realm = entry.get("realm")
    role = context.role(realm, entry.get("role", "anonymous"))
    options = dict(entry.get("options") or {})
    topic = options.pop("topic", None)
    for ignored in ("debug", "success_response", "error_response"):
        options.pop(ignored, None)
    known = {"key", "secret", "post_body_limit", "timestamp_delta_limit", "require_ip"}
    unknown = sorted(set(options) - known - {"require_tls"})
    if unknown:
        raise Unsupported(f"{kind} options {unknown} are not supported")
    security = BridgeSecurity(**options)
    if kind in ("publisher", "pusher"):
        return Publisher(str(realm), role=role, security=security, router=context.router)
    if kind == "caller":
        return Caller(str(realm), role=role, security=security, router=context.router)
    if not topic:
        raise ValueError("a webhook path needs options.topic (the topic its events go to)")
    return Webhook(str(realm), str(topic), role=role, security=security, router=context.router)


BUILDERS = {
    "static": static_path,
    "wsgi": wsgi_path,
    "websocket": websocket_path,
    "publisher": bridge_path,
    "pusher": bridge_path,
    "caller": bridge_path,
    "webhook": bridge_path,
    "redirect": redirect_path,
}


def pythonpath(options: Mapping[str, Any], directory: Path) -> None:
    """Put a router worker's ``options.pythonpath`` entries (relative to the config's folder)
    first on ``sys.path``, as Crossbar.io does for its workers."""
    for entry in reversed(list(options.get("pythonpath", ()))):
        resolved = os.fspath((directory / str(entry)).resolve())
        if resolved not in sys.path:
            sys.path.insert(0, resolved)
