"""What authentication shares across the router processes of a cluster: failed logins, Django
logouts and the identities behind WAMP cookies.

Each process counts failures in its own memory (``ratelimit.py``), so that the check before a
HELLO stays synchronous, and tells the other processes of each of its failures through its
cluster node (``node.py``): a message to the realm's group, which every node serving the realm
has joined, sent in order by the node's outbox and received by the node's loop, which hands these
types to the feed. Every process thus counts the failures of all, and an attacker who spreads
attempts over N workers meets the limit once, not N times (give or take the failures in flight,
the layer's latency). The node uses only the layer's base contract, so every backend carries it.

A lost message (the layer full or unreachable) is a failure the others do not count: the limit
falls back towards per process; it never refuses a user who did not fail.

A Django logout (``django.py``) ends the user's sessions on the process that ran it and is sent
the same way, so every process ends that user's sessions too; and so is each identity the
``cookie`` method remembers (``cookie.py``), so that any process lets the browser in on it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Any

from .base import Accept
from .cookie import Cookie

if TYPE_CHECKING:
    from ..node import ClusterNode
    from ..realm import RealmRouter

logger = logging.getLogger("consumers.wamp")

FAILED = "wamp.authfail"
LOGGED_OUT = "wamp.logout"
COOKIE = "wamp.cookie"


class AuthFeed:
    """Shares the failures, logouts and remembered cookies of ``realms`` (name -> running realm)
    with the other processes through ``node``, and applies theirs (see the module docstring)."""

    def __init__(self, node: ClusterNode, realms: Mapping[str, RealmRouter]) -> None:
        self.node = node
        self.realms = realms
        #: Set once the node has joined the cluster (messages queued before wait for it).
        self.ready = node.ready
        # Tells our own messages apart when the realm's group hands them back to us.
        self._origin = uuid.uuid4().hex

    def start(self) -> None:
        """Hook into the realms' limiters and cookie stores, and take the feed's message types
        from the node."""
        for name, realm in self.realms.items():
            realm.auth_failures.on_failure = partial(self._share, name)
            cookie = realm.authenticators.get(Cookie.method)
            if isinstance(cookie, Cookie):
                cookie.store.on_remember = self._share_cookie
        for kind in (FAILED, LOGGED_OUT, COOKIE):
            self.node.handlers[kind] = self._receive

    def _share(self, realm: str, authid: str | None, address: str | None) -> None:
        self._put({"type": FAILED, "realm": realm, "authid": authid, "address": address})

    def _share_cookie(self, realm: str, cookie_id: str, identity: Accept, expires: float) -> None:
        fields = {"cookie": cookie_id, "identity": asdict(identity), "expires": expires}
        self._put({"type": COOKIE, "realm": realm, **fields})

    def share_logout(self, realm: str, username: str) -> None:
        """Tell the other processes that ``username`` logged out of Django (``django.py``)."""
        self._put({"type": LOGGED_OUT, "realm": realm, "username": username})

    def _put(self, message: dict[str, Any]) -> None:
        realm = self.node.realms.get(message["realm"])
        if realm is not None:
            self.node.group_send(realm.group, {**message, "src": self._origin})

    def _receive(self, message: dict[str, Any]) -> None:
        realm = self.realms.get(message.get("realm", ""))
        if message.get("src") == self._origin or realm is None:
            return  # ours, applied already; or a realm we do not serve
        self._apply(realm, message)

    def _apply(self, realm: RealmRouter, message: dict[str, Any]) -> None:
        if message["type"] == FAILED:
            authid, address = message.get("authid"), message.get("address")
            if isinstance(authid, str | None) and isinstance(address, str | None):
                realm.auth_failures.count(authid, address)
        elif message["type"] == COOKIE:
            cookie = realm.authenticators.get(Cookie.method)
            if isinstance(cookie, Cookie):
                identity = Accept(**message["identity"])
                cookie.store.remember_until(
                    realm.name, message["cookie"], identity, message["expires"]
                )
        elif message["type"] == LOGGED_OUT and isinstance(message.get("username"), str):
            from .django import end_sessions  # (imports no Django itself)

            end_sessions(realm, message["username"])

    def stop(self) -> None:
        """Stop taking the feed's messages (the router rebinds or goes away)."""
        for kind in (FAILED, LOGGED_OUT, COOKIE):
            if self.node.handlers.get(kind) == self._receive:
                del self.node.handlers[kind]
