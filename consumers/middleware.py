"""Middleware: wrap an application to add to its scope. BaseMiddleware and CookieMiddleware."""

from __future__ import annotations

import time
from email.utils import formatdate
from http.cookies import SimpleCookie
from typing import Any, Literal

from .base import Message, Receive, Scope, Send

__all__ = ["BaseMiddleware", "CookieMiddleware", "parse_cookie"]


class BaseMiddleware:
    """Wraps an inner application; subclasses add to the scope in ``populate_scope``.

    The scope is copied first, so what a middleware adds never leaks into the caller's dict.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def populate_scope(self, scope: Scope) -> None:
        """Add keys to (the copy of) the scope; override it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Copy the scope, populate it, and call the inner application."""
        scope = dict(scope)
        await self.populate_scope(scope)
        await self.inner(scope, receive, send)


def parse_cookie(header: str) -> dict[str, str]:
    """Parse a Cookie header leniently, as browsers send it (RFC 6265 §5.4): 'a=1; b="2"'.

    Unlike ``http.cookies.SimpleCookie``, one malformed pair does not lose the others.
    """
    cookies: dict[str, str] = {}
    for chunk in header.split(";"):
        name, separator, value = chunk.partition("=")
        if not separator:
            name, value = "", name  # a bare value: browsers send it as a nameless cookie
        name, value = name.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if name or value:
            cookies[name] = value
    return cookies


SameSite = Literal["Strict", "Lax", "None"]


_SAMESITE_VALUES: dict[str, SameSite] = {"strict": "Strict", "lax": "Lax", "none": "None"}


def _samesite(value: str) -> SameSite:
    """The SameSite attribute spelled as browsers expect, whatever the case it was given in;
    any other value is refused rather than sent as a cookie browsers would misread."""
    try:
        return _SAMESITE_VALUES[str(value).lower()]
    except KeyError:
        raise ValueError(
            f"SameSite must be 'Strict', 'Lax' or 'None', not {value!r} "
            "(check SESSION_COOKIE_SAMESITE)"
        ) from None


class CookieMiddleware(BaseMiddleware):
    """Puts the request's cookies in ``scope["cookies"]`` (a dict of name -> value).

    ``set_cookie`` and ``delete_cookie`` add a Set-Cookie header to an ``http.response.start``
    message (or a ``websocket.accept``'s headers) that you are about to send.
    """

    async def populate_scope(self, scope: Scope) -> None:
        """Parse every Cookie header into ``scope["cookies"]``."""
        cookies: dict[str, str] = {}
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                cookies.update(parse_cookie(value.decode("latin-1")))
        scope["cookies"] = cookies

    @staticmethod
    def set_cookie(
        message: Message,
        key: str,
        value: str = "",
        *,
        max_age: int | None = None,
        expires: float | None = None,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: SameSite | None = "Lax",
    ) -> None:
        """Append a Set-Cookie header (RFC 6265 §4.1) to ``message``'s headers.

        ``expires`` is a Unix timestamp; ``max_age`` (seconds) also sets a matching Expires for
        old clients. Values outside the cookie-octet set are quoted by the stdlib's Morsel.
        """
        if samesite:
            samesite = _samesite(samesite)
        cookie: SimpleCookie = SimpleCookie()
        cookie[key] = value
        morsel = cookie[key]
        if max_age is not None:
            morsel["max-age"] = str(max_age)
            if expires is None:
                expires = time.time() + max_age
        if expires is not None:
            morsel["expires"] = formatdate(expires, usegmt=True)
        morsel["path"] = path
        if domain:
            morsel["domain"] = domain
        if secure or samesite == "None":  # browsers drop SameSite=None cookies without Secure
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite:
            morsel["samesite"] = samesite
        header = morsel.OutputString().encode("latin-1")
        message["headers"] = [*message.get("headers", []), (b"set-cookie", header)]

    @staticmethod
    def delete_cookie(
        message: Message, key: str, *, path: str = "/", domain: str | None = None
    ) -> None:
        """Append a Set-Cookie header that expires ``key`` now."""
        CookieMiddleware.set_cookie(
            message, key, max_age=0, expires=0, path=path, domain=domain, samesite=None
        )
