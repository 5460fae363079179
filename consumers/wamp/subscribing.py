"""SUBSCRIBEs on their way through a cluster, and this node's claims of subscription patterns.

A node claims a subscription pattern (``"<match> <topic>"``) in the realm's ``wamp.sub`` space
once, for its first subscriber, and releases it when no local subscriber holds it and no SUBSCRIBE
waits for it. The first SUBSCRIBE of a pattern claims it, then runs a round (``rounds.py``) so
that every other live node has read the claim, and only then is answered; SUBSCRIBEs of the same
pattern that arrive meanwhile wait for that round, later ones for nothing. A SUBSCRIBE that asks
for retained events also gathers them from every live node (see ``cluster.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from channel_layers.base import ChannelLayerError

from .rounds import newest_per_topic
from .state import RetainedEvent
from .uris import MatchPolicy

if TYPE_CHECKING:
    from .cluster import ClusterRealm

logger = logging.getLogger("consumers.wamp")

Ready = Callable[[list[RetainedEvent]], None]


class Subscribing:
    """One realm's pending SUBSCRIBEs and claimed patterns on this node."""

    def __init__(self, cluster: ClusterRealm) -> None:
        self.cluster = cluster
        self.claimed: set[str] = set()  # patterns this node holds (or is claiming) in the registry
        self.pending: dict[str, int] = {}  # pattern -> SUBSCRIBEs not answered yet
        self.spreading: dict[str, list[Callable[[], None]]] = {}  # pattern -> who waits

    def claim(self, key: str) -> None:
        """Claim ``key`` unless this node holds it; the other nodes read it on their next sync
        (a subscription made without ``prepare``)."""
        if key not in self.claimed:
            self.claimed.add(key)
            self.cluster.queue(partial(self.cluster._claim_interest, key))

    def prepare(self, topic: str, match: MatchPolicy, get_retained: bool, ready: Ready) -> None:
        """Call ``ready`` once every live node has ``(topic, match)``, with the retained events
        of the cluster when ``get_retained``."""
        key = f"{match} {topic}"
        self.pending[key] = self.pending.get(key, 0) + 1

        def go() -> None:
            if get_retained:
                self.cluster._spawn(self._with_retained(key, topic, match, ready))
            else:
                self._finish(key, ready, [])

        if key not in self.claimed:
            self.claimed.add(key)
            self.spreading[key] = [go]
            self.cluster.queue(partial(self._claim_and_spread, key))
        elif key in self.spreading:
            self.spreading[key].append(go)
        else:
            go()

    async def _claim_and_spread(self, key: str) -> bool:
        try:
            await self.cluster._claim_interest(key)
        finally:  # a failed claim is logged by the queue; the subscribers still get an answer
            self.cluster._spawn(self._spread(key))
        return False  # the round tells the other nodes

    async def _spread(self, key: str) -> None:
        try:
            await self.cluster.rounds.ask(sync=True, retained=None)
        except ChannelLayerError as exc:
            logger.warning(
                "WAMP realm %r: cannot reach the other nodes: %s", self.cluster.name, exc
            )
        finally:
            for go in self.spreading.pop(key, []):
                go()

    async def _with_retained(self, key: str, topic: str, match: MatchPolicy, ready: Ready) -> None:
        local = self.cluster.local
        events = local.retained_for(topic, match)
        try:
            events += await self.cluster.rounds.ask(sync=False, retained=(topic, match))
        except ChannelLayerError as exc:
            name = self.cluster.name
            logger.warning("WAMP realm %r: retained events of other nodes: %s", name, exc)
        self._finish(key, ready, newest_per_topic(events, local.max_retained_events))

    def _finish(self, key: str, ready: Ready, events: list[RetainedEvent]) -> None:
        try:
            ready(events)
        finally:
            self.pending[key] -= 1
            if not self.pending[key]:
                del self.pending[key]
                self.release_if_unused(key)

    def release_if_unused(self, key: str) -> None:
        """Release a pattern no local subscriber holds and no SUBSCRIBE waits for."""
        if key in self.pending or key not in self.claimed:
            return
        match, topic = key.split(" ", 1)
        subscription = self.cluster.local.subscription(topic, match)  # type: ignore[arg-type]
        if subscription is None or not subscription.subscribers:
            self.claimed.discard(key)
            cluster = self.cluster
            member = f"{cluster.node.channel} {key}"
            cluster.queue(partial(cluster._release, cluster.sub_space, member))
