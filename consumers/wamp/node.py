"""This process's node of a WAMP cluster: one channel on the layer, one receive loop, one
ordered outbox, and a watch that reads every realm's registry again now and then (see
``cluster.py`` for what the cluster shares and ``remote.py`` for the messages)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from channel_layers.base import BaseChannelLayer, ChannelLayerError
from channel_layers.registry import Registry

if TYPE_CHECKING:
    from .cluster import ClusterRealm

logger = logging.getLogger("consumers.wamp")

#: The registry space where each node is present.
NODES = "wamp.nodes"


class ClusterNode:
    """This process's node: its channel, its receive loop, and the realms it serves."""

    def __init__(self, layer: BaseChannelLayer, sync_interval: float = 2.0) -> None:
        self.layer = layer
        self.registry: Registry = layer.registry()
        self.sync_interval = sync_interval
        self.channel = ""
        self.realms: dict[str, ClusterRealm] = {}
        self.ready = asyncio.Event()
        self._outbox: deque[tuple[str, str, dict[str, Any]]] = deque()
        self._outbox_ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: Receivers of message types that are not a realm's routing (the auth feed's).
        self.handlers: dict[str, Callable[[dict[str, Any]], None]] = {}

    def start(self) -> None:
        """Start the node's tasks in the running loop."""
        self._tasks.append(asyncio.get_running_loop().create_task(self._run()))

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._join()
                break
            except ChannelLayerError as exc:  # Redis down at startup: keep trying
                logger.warning("WAMP node cannot join the cluster yet (%s); retrying", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.ready.set()
        loop = asyncio.get_running_loop()
        for coroutine in (self._receive(), self._send(), self._watch()):
            self._tasks.append(loop.create_task(coroutine))
        for realm in self.realms.values():
            realm.start()

    async def _join(self) -> None:
        if not self.channel:
            self.channel = await self.layer.new_channel("wamp")
        # Every node is present in the registry, so that other nodes can tell it is alive
        # (a registry that beats for its nodes, the pub/sub layer's, starts here).
        await self.registry.claim(NODES, self.channel, self.channel, self.channel, exclusive=True)
        for realm in self.realms.values():
            await self.layer.group_add(realm.group, self.channel)

    async def _receive(self) -> None:
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except ChannelLayerError as exc:  # the layer reconnects by itself: wait and retry
                logger.warning("WAMP node cannot receive (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            handler = self.handlers.get(message.get("type", ""))
            if handler is None:
                realm = self.realms.get(message.get("realm", ""))
                if realm is None:
                    if message.get("type") == "wamp.sync":
                        self._answer_unserved(message)
                    continue
                handler = realm.handle
            try:
                handler(message)
            except Exception:  # one bad message must not stop the node
                logger.exception("WAMP node message %r failed", message.get("type"))

    def _answer_unserved(self, message: dict[str, Any]) -> None:
        """A round (``rounds.py``) for a realm this node does not serve: nothing to take in."""
        reply = {"type": "wamp.synced", "realm": message["realm"], "src": self.channel}
        self.send(message["src"], {**reply, "token": message["token"], "events": []})

    def send(self, node: str, message: dict[str, Any]) -> None:
        """Queue ``message`` for ``node`` (sent in order by one task)."""
        self._outbox.append(("send", node, message))
        self._outbox_ready.set()

    def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Queue ``message`` for every node of a realm's group."""
        self._outbox.append(("group", group, message))
        self._outbox_ready.set()

    async def _send(self) -> None:
        outbox = self._outbox
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while outbox:
                kind, to, message = outbox.popleft()
                try:
                    if kind == "send":
                        await self.layer.send(to, message)
                    else:
                        await self.layer.group_send(to, message)
                except ChannelLayerError as exc:  # full or unreachable: that message is lost
                    logger.warning("WAMP node message %s to %s lost: %s", message["type"], to, exc)

    async def _watch(self) -> None:
        """Read every realm's registry again now and then (dead nodes' entries go)."""
        rounds = 0
        while True:
            await asyncio.sleep(self.sync_interval)
            rounds += 1
            for realm in self.realms.values():
                realm.sessions.read_due = True  # on this beat only (cluster_sessions.py)
                realm.sync_soon()
                if rounds % 100 == 0:  # keep the group membership fresh (group_expiry)
                    realm.queue(partial(self.layer.group_add, realm.group, self.channel))

    def stop(self) -> None:
        """Cancel the node's tasks."""
        for task in self._tasks:
            with contextlib.suppress(RuntimeError):  # its loop has closed: nothing runs it
                task.cancel()
