"""What authentication shares across the router processes of a cluster: failed logins, Django
logouts and the identities behind WAMP cookies.

Each process counts failures in its own memory (``ratelimit.py``), so that the check before a
HELLO stays synchronous, and tells the other processes of each of its failures over the channel
layer: a group that every router's feed channel joins. Every process thus counts the failures of
all, and an attacker who spreads attempts over N workers meets the limit once, not N times (give
or take the failures in flight, the layer's latency). Only the layer's base contract is used
(``new_channel``, ``group_add``, ``group_send``, ``receive``), so every backend carries it.

A lost message (the layer full or unreachable) is a failure the others do not count: the limit
falls back towards per process; it never refuses a user who did not fail.

A Django logout (``django.py``) ends the user's sessions on the process that ran it and is sent
the same way, so every process ends that user's sessions too; and so is each identity the
``cookie`` method remembers (``cookie.py``), so that any process lets the browser in on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Any

from channel_layers.base import BaseChannelLayer, ChannelLayerError

from .base import Accept
from .cookie import Cookie

if TYPE_CHECKING:
    from ..realm import RealmRouter

logger = logging.getLogger("consumers.wamp")

GROUP = "wamp-auth"
FAILED = "wamp.authfail"
LOGGED_OUT = "wamp.logout"
COOKIE = "wamp.cookie"
#: Messages waiting to be sent, at most (a storm beyond it is counted here only).
MAX_QUEUED = 10_000
#: Seconds between two renewals of the group membership (a layer's group_expiry is longer).
RENEW_EVERY = 3600.0


class AuthFeed:
    """Shares the failures, logouts and remembered cookies of ``realms`` (name -> running realm)
    with the other processes on ``layer``, and applies theirs (see the module docstring)."""

    def __init__(self, layer: BaseChannelLayer, realms: Mapping[str, RealmRouter]) -> None:
        self.layer = layer
        self.realms = realms
        self.channel = ""
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(MAX_QUEUED)
        self._tasks: list[asyncio.Task[None]] = []
        self.ready = asyncio.Event()

    def start(self) -> None:
        """Hook into the realms' limiters and cookie stores, and start the feed's tasks in the
        running loop."""
        for name, realm in self.realms.items():
            realm.auth_failures.on_failure = partial(self._share, name)
            cookie = realm.authenticators.get(Cookie.method)
            if isinstance(cookie, Cookie):
                cookie.store.on_remember = self._share_cookie
        self._tasks.append(asyncio.get_running_loop().create_task(self._run()))

    def _share(self, realm: str, authid: str | None, address: str | None) -> None:
        self._put({"type": FAILED, "realm": realm, "authid": authid, "address": address})

    def _share_cookie(self, realm: str, cookie_id: str, identity: Accept, expires: float) -> None:
        fields = {"cookie": cookie_id, "identity": asdict(identity), "expires": expires}
        self._put({"type": COOKIE, "realm": realm, **fields})

    def share_logout(self, realm: str, username: str) -> None:
        """Tell the other processes that ``username`` logged out of Django (``django.py``)."""
        self._put({"type": LOGGED_OUT, "realm": realm, "username": username})

    def _put(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(message)

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                self.channel = self.channel or await self.layer.new_channel("wamp-auth")
                await self.layer.group_add(GROUP, self.channel)
                break
            except ChannelLayerError as exc:  # the layer is down at startup: keep trying
                logger.warning("WAMP auth feed cannot start yet (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        loop = asyncio.get_running_loop()
        for work in (self._send(), self._receive(), self._renew()):
            self._tasks.append(loop.create_task(work))
        self.ready.set()

    async def _send(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                await self.layer.group_send(GROUP, {**message, "src": self.channel})
            except ChannelLayerError as exc:
                logger.warning("WAMP auth feed message lost: %s", exc)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            with contextlib.suppress(ChannelLayerError):  # retried at the next renewal
                await self.layer.group_add(GROUP, self.channel)

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except ChannelLayerError as exc:  # the layer reconnects by itself: wait and retry
                logger.warning("WAMP auth feed cannot receive (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            realm = self.realms.get(message.get("realm", ""))
            if message.get("src") == self.channel or realm is None:
                continue  # ours, applied already; or a realm we do not serve
            try:
                self._apply(realm, message)
            except Exception:  # one bad message must not stop the feed
                logger.exception("WAMP auth feed message %r failed", message.get("type"))

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
        """Cancel the feed's tasks (the router rebinds or goes away)."""
        for task in self._tasks:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nothing runs it
                task.cancel()
