"""Origin checks for WebSocket handshakes (cross-site WebSocket hijacking) and HTTP requests.

Browsers send an Origin header with every WebSocket handshake, and do not apply the same-origin
policy to WebSockets, so the server must check it (RFC 6455 §10.2). A denied origin gets a 403:
for a WebSocket, the application closes before accepting, which the server answers with 403.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Awaitable, Iterable
from typing import Any
from urllib.parse import SplitResult, urlsplit

from asgiref.sync import markcoroutinefunction

from ..base import Receive, Scope, Send

__all__ = ["AllowedHostsOriginValidator", "OriginValidator"]

logger = logging.getLogger("consumers.security")

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _origin_from_scope(scope: Scope) -> SplitResult | None:
    for name, value in scope.get("headers", []):
        if name == b"origin":
            try:
                origin: SplitResult = urlsplit(value.decode("latin-1").lower())
                return origin
            except ValueError:
                return None  # a malformed origin (bad port, say) matches nothing
    return None


def _port(url: SplitResult) -> int | None:
    try:
        return url.port or _DEFAULT_PORTS.get(url.scheme)
    except ValueError:
        return None


def _same_domain(host: str, pattern: str) -> bool:
    """'.example.com' matches example.com and its subdomains; else an exact match."""
    if pattern.startswith("."):
        return host == pattern[1:] or host.endswith(pattern)
    return host == pattern


def origin_matches(origin: SplitResult, pattern: str) -> bool:
    """Whether an Origin matches an allowed pattern: '*', 'host', '.domain', or a full
    'scheme://host[:port]' (then scheme and port must match too)."""
    if pattern == "*":
        return True
    if origin.hostname is None:
        return False
    pattern = pattern.lower()
    if "://" not in pattern:
        host = urlsplit("//" + pattern).hostname or pattern
        return _same_domain(origin.hostname, host)
    parsed = urlsplit(pattern)
    if parsed.hostname is None or parsed.scheme != origin.scheme:
        return False
    return _port(parsed) == _port(origin) and _same_domain(origin.hostname, parsed.hostname)


class OriginValidator:
    """Lets a connection through only when its Origin matches one of ``allowed_origins``.

    A missing Origin header (a non-browser client) is allowed only with the pattern "*", as
    in Channels.
    """

    def __init__(self, application: Any, allowed_origins: Iterable[str]) -> None:
        self.application = application
        if isinstance(allowed_origins, str):
            raise TypeError("allowed_origins must be a list of patterns, not one string")
        self.allowed_origins = list(allowed_origins)

    def _log_refusal(self, scope: Scope) -> None:
        # Without this line a refused handshake is a bare 403 in the access log, and the user
        # is left to guess which setting refused it.
        header = next((v for k, v in scope.get("headers", []) if k == b"origin"), None)
        logger.info(
            "%s %s refused (403): origin %s is not allowed; allowed origins: %s",
            "WebSocket" if scope["type"] == "websocket" else "HTTP",
            scope.get("path", ""),
            repr(header.decode("latin-1")) if header is not None else "(none sent)",
            ", ".join(self.allowed_origins) or "(none)",
        )

    def valid_origin(self, origin: SplitResult | None) -> bool:
        """Whether ``origin`` (None when the header is absent) may connect."""
        if origin is None:
            return "*" in self.allowed_origins
        return any(origin_matches(origin, pattern) for pattern in self.allowed_origins)

    @markcoroutinefunction
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[Any]:
        """Call the application, or deny with a 403.

        Returns the application's coroutine rather than awaiting it (a coroutine function to
        every caller and ASGI check): an allowed connection then holds no frame of the
        validator for its whole life (~350 bytes per idle WebSocket, issue 18).
        """
        if scope["type"] not in ("http", "websocket"):
            return _raise(
                ValueError(
                    "OriginValidator only guards 'http' and 'websocket' scopes, "
                    f"not {scope['type']!r}"
                )
            )
        if self.valid_origin(_origin_from_scope(scope)):
            running: Awaitable[Any] = self.application(scope, receive, send)
            return running
        return self._deny(scope, receive, send)

    async def _deny(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._log_refusal(scope)
        if scope["type"] == "websocket":
            await receive()  # the websocket.connect
            await send({"type": "websocket.close", "code": 1000})  # before accept: a 403
        else:
            headers = [(b"content-type", b"text/plain; charset=utf-8")]
            await send({"type": "http.response.start", "status": 403, "headers": headers})
            await send({"type": "http.response.body", "body": b"Forbidden: origin not allowed"})


async def _raise(error: Exception) -> Any:
    """A coroutine that raises ``error`` when awaited (see OriginValidator.__call__)."""
    raise error


def _django_allowed_hosts() -> list[str] | None:
    """Django's ALLOWED_HOSTS (with its DEBUG defaults), or None when Django is not set up."""
    try:
        settings = importlib.import_module("django.conf").settings
    except ImportError:
        return None
    if not (settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE")):
        return None
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]  # what Django itself allows in DEBUG
    return hosts


class AllowedHostsOriginValidator(OriginValidator):
    """An OriginValidator whose allowed origins are the site's allowed hosts.

    ``allowed_hosts`` defaults to Django's ALLOWED_HOSTS when Django is configured; without
    Django, pass the list explicitly.
    """

    def __init__(self, application: Any, allowed_hosts: Iterable[str] | None = None) -> None:
        if allowed_hosts is None:
            allowed_hosts = _django_allowed_hosts()
        if allowed_hosts is None:
            raise ValueError(
                "AllowedHostsOriginValidator needs the allowed hosts: configure Django's "
                "ALLOWED_HOSTS, or pass allowed_hosts=['example.com', ...]"
            )
        super().__init__(application, allowed_hosts)
