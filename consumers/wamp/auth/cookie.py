"""The ``cookie`` method: a browser that authenticated once is let in again on its cookie.

The WebSocket endpoint gives every connection a WAMP cookie (``Set-Cookie`` on the handshake
response, when some realm has this method). After a successful authentication by another method
the identity is remembered against that cookie for ``max_age`` seconds; a later HELLO that offers
``cookie`` on a connection carrying it is welcomed with that identity. No cookie, or an unknown or
expired one: the method does not apply and the client's next method is tried.

On a cluster the store is shared the way failures are (``shared.py``): each process tells the
others what it remembers, so a browser that logged in through one worker is let in on its cookie
by another, provided every worker signs cookies with the same ``secret``. A worker that started
later knows only the cookies remembered since.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import replace

from .base import Accept, HelloInfo, Outcome, Skip


class CookieStore:
    """Cookie ID -> the identity it authenticated, in this process (bounded by ``max_entries``;
    the oldest goes first)."""

    def __init__(self, max_entries: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[tuple[str, str], tuple[Accept, float]] = {}
        #: Told of each identity remembered here, ``(realm, cookie_id, identity, expires)``
        #: (the cluster's ``AuthFeed``), when set.
        self.on_remember: Callable[[str, str, Accept, float], None] | None = None

    def remember(self, realm: str, cookie_id: str, identity: Accept, max_age: float) -> None:
        """Associate the cookie with ``identity`` until ``max_age`` seconds from now."""
        expires = self.clock() + max_age
        self.remember_until(realm, cookie_id, identity, expires)
        if self.on_remember is not None:
            self.on_remember(realm, cookie_id, identity, expires)

    def remember_until(self, realm: str, cookie_id: str, identity: Accept, expires: float) -> None:
        """Associate the cookie with ``identity`` until the time ``expires`` (``clock``'s)."""
        self._entries.pop((realm, cookie_id), None)
        self._entries[(realm, cookie_id)] = (identity, expires)
        while len(self._entries) > self.max_entries:
            del self._entries[next(iter(self._entries))]

    def lookup(self, realm: str, cookie_id: str) -> Accept | None:
        """The identity of a live cookie, or None."""
        entry = self._entries.get((realm, cookie_id))
        if entry is None or entry[1] < self.clock():
            return None
        return entry[0]

    def forget_authid(self, realm: str, authid: str) -> None:
        """Drop every cookie of ``authid`` (it logged out)."""
        for key in [
            k for k, (a, _) in self._entries.items() if k[0] == realm and a.authid == authid
        ]:
            del self._entries[key]


class Cookie:
    """Cookie authentication (see the module docstring). ``cookie_name`` is the cookie the
    endpoint sets (Crossbar.io's is ``cbtid``); ``secret`` signs its IDs (give every worker of a
    cluster the same one; by default a random key of this process)."""

    method = "cookie"

    def __init__(
        self,
        store: CookieStore | None = None,
        max_age: float = 7 * 24 * 3600,
        cookie_name: str = "cbtid",
        secret: str | bytes | None = None,
    ) -> None:
        self.store = store or CookieStore()
        self.max_age = max_age
        self.cookie_name = cookie_name
        if isinstance(secret, str):
            secret = secret.encode()
        self.key = secret or secrets.token_bytes(32)

    def start(self, hello: HelloInfo) -> Outcome:
        """Accept the identity remembered for this connection's cookie, or Skip."""
        cookie_id = hello.transport.cookie_id
        identity = self.store.lookup(hello.realm, cookie_id) if cookie_id else None
        if identity is None:
            return Skip()
        return replace(identity, authmethod=self.method, authprovider="cookie")

    def remember(self, hello: HelloInfo, identity: Accept) -> None:
        """A session authenticated by another method: remember it against its cookie."""
        if hello.transport.cookie_id:
            self.store.remember(hello.realm, hello.transport.cookie_id, identity, self.max_age)
