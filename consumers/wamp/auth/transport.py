"""What the WebSocket endpoint tells authentication about a connection, and the WAMP cookie.

When some realm of the router offers the ``cookie`` method, every WebSocket handshake response
carries that method's cookie (a random ID, ``HttpOnly``, ``SameSite=Lax``) unless the browser sent
one already; the ID is what ``Cookie`` remembers identities against. IDs are signed with the
method's key (``Cookie(secret=...)``, the same in every worker of a cluster; else random per
process): a cookie the router did not issue is replaced, so nobody can make up an ID. A cookie the
router issued but that carries no identity yet is replaced too: an attacker who got one from the
router and planted it in a victim's browser would otherwise find it logged in as the victim once
the victim logged in (session fixation). The ID a login is remembered against is thus always one
the router set on that very connection, or one that had that identity already.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

from .base import TransportInfo
from .cookie import Cookie

if TYPE_CHECKING:
    from ..realm import Realm


def _signed(key: bytes, token: str) -> str:
    mac = hmac.new(key, token.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{token}.{mac}"


def issued_by(cookie: Cookie, cookie_id: str | None) -> bool:
    """Whether ``cookie_id`` was signed with ``cookie``'s key (by this router or a peer)."""
    if not cookie_id or len(cookie_id) > 100 or "." not in cookie_id:
        return False
    token = cookie_id.rsplit(".", 1)[0]
    return hmac.compare_digest(_signed(cookie.key, token), cookie_id)


def _cookie_methods(realms: Iterable[Realm]) -> list[tuple[str, Cookie]]:
    return [
        (realm.name, authenticator)
        for realm in realms
        for authenticator in realm.auth or ()
        if isinstance(authenticator, Cookie)
    ]


def _carries_identity(methods: list[tuple[str, Cookie]], cookie_id: str) -> bool:
    return any(method.store.lookup(realm, cookie_id) is not None for realm, method in methods)


def _request_cookies(scope: dict[str, Any]) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for name, value in scope.get("headers") or ():
        if name.lower() == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed Cookie header is the client's problem, not ours
                continue
    return {key: morsel.value for key, morsel in jar.items()}


def transport_for(
    scope: dict[str, Any], realms: Iterable[Realm]
) -> tuple[TransportInfo, list[tuple[bytes, bytes]]]:
    """The connection's ``TransportInfo`` and the headers to add to the handshake response."""
    client = scope.get("client")
    peer = str(client[0]) if client else None
    methods = _cookie_methods(realms)
    headers: list[tuple[bytes, bytes]] = []
    cookie_id = None
    if methods:
        cookie = methods[0][1]  # the endpoint's cookie: the first realm's method names and signs
        cookie_id = _request_cookies(scope).get(cookie.cookie_name)
        if not issued_by(cookie, cookie_id) or not _carries_identity(methods, cookie_id or ""):
            cookie_id = _signed(cookie.key, secrets.token_urlsafe(24))
            value = (
                f"{cookie.cookie_name}={cookie_id}; Max-Age={int(cookie.max_age)}; Path=/;"
                " HttpOnly; SameSite=Lax"
            )
            headers.append((b"set-cookie", value.encode()))
    tls = (scope.get("extensions") or {}).get("tls") or {}
    binding = tls.get("tls_unique")  # asgi_server's addition to the TLS extension
    transport = TransportInfo(peer=peer, cookie_id=cookie_id, channel_binding=binding, scope=scope)
    return transport, headers
