"""Rounds: ask every other live node of a realm one question and wait, bounded, for each answer.

Two questions need the whole cluster before the router may answer a client:

- "take this in": a node claimed a subscription pattern or a registration in the registry and
  must know that every other node has read the registry again before it sends SUBSCRIBED or
  REGISTERED (``sync``);
- "what have you retained?": a subscription with ``get_retained`` gets the newest retained event
  of each matching topic, wherever it was published (``retained``).

Messages (see ``remote.py`` for the others): ``wamp.sync`` (``token``, ``sync``, ``retained``:
``[topic, match]`` or None) to each node listed in the registry's ``wamp.nodes``; each answers
``wamp.synced`` (``token``, ``events``: retained events as lists), after its registry read when
``sync`` is set. A node that does not serve the realm answers at once, with no events.

The wait is bounded by ``timeout`` (the cluster's ``sync_interval``: past it the periodic read
has the change anyway). A node that missed a round (a process killed, not yet purged by the
registry's heartbeat) is asked again in later rounds but not waited for, until it answers one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING, Any

from .node import NODES
from .remote import rules_from_wire, rules_to_wire
from .state import RetainedEvent

if TYPE_CHECKING:
    from .node import ClusterNode

logger = logging.getLogger("consumers.wamp")


def retained_to_wire(event: RetainedEvent) -> list[Any]:
    """A retained event as plain lists (the layer carries no dataclasses or sets)."""
    rules = None if event.rules is None else rules_to_wire(event.rules)
    return [
        event.topic,
        event.publication,
        event.args,
        event.kwargs,
        event.publisher,
        event.publisher_authid,
        event.publisher_authrole,
        rules,
        event.published,
    ]


def retained_from_wire(wire: list[Any]) -> RetainedEvent:
    """The retained event ``retained_to_wire`` made."""
    fields = list(wire)
    fields[7] = None if fields[7] is None else rules_from_wire(fields[7])
    return RetainedEvent(*fields)


def newest_per_topic(events: list[RetainedEvent], limit: int) -> list[RetainedEvent]:
    """The newest event of each topic (by publication time), at most ``limit`` of them."""
    newest: dict[str, RetainedEvent] = {}
    for event in events:
        held = newest.get(event.topic)
        if held is None or (event.published, event.publication) > (
            held.published,
            held.publication,
        ):
            newest[event.topic] = event
    ordered = sorted(newest.values(), key=lambda event: event.published)
    return ordered[-limit:] if limit > 0 else []


class _Round:
    def __init__(self, waiting: set[str]) -> None:
        self.waiting = waiting
        self.events: list[RetainedEvent] = []
        self.done = asyncio.get_running_loop().create_future()


class Rounds:
    """The rounds one realm's node runs, and the answers it is waiting for."""

    def __init__(self, node: ClusterNode, realm: str) -> None:
        self.node = node
        self.realm = realm
        self._tokens = itertools.count(1)
        self._open: dict[int, _Round] = {}
        self._silent: set[str] = set()  # nodes that missed a round: not waited for

    async def ask(self, *, sync: bool, retained: tuple[str, str] | None) -> list[RetainedEvent]:
        """Ask every other live node; the retained events they sent (none unless asked)."""
        own = self.node.channel
        nodes = {entry.node for entry in await self.node.registry.entries(NODES)} - {own}
        if not nodes:
            return []
        token = next(self._tokens)
        round_ = self._open[token] = _Round(nodes - self._silent)
        message = {"type": "wamp.sync", "realm": self.realm, "src": own, "token": token}
        message.update(sync=sync, retained=list(retained) if retained else None)
        for node in nodes:
            self.node.send(node, message)
        try:
            if round_.waiting:
                await asyncio.wait_for(asyncio.shield(round_.done), self.node.sync_interval)
        except TimeoutError:
            self._silent |= round_.waiting
            logger.warning(
                "WAMP realm %r: nodes %s did not answer within %.1fs; going on without them",
                self.realm,
                sorted(round_.waiting),
                self.node.sync_interval,
            )
        finally:
            del self._open[token]
        return round_.events

    def answered(self, message: dict[str, Any]) -> None:
        """A ``wamp.synced`` from another node."""
        src = message["src"]
        self._silent.discard(src)
        round_ = self._open.get(message["token"])
        if round_ is None:
            return  # too late: that round went on without this node
        round_.events.extend(retained_from_wire(wire) for wire in message["events"])
        round_.waiting.discard(src)
        if not round_.waiting and not round_.done.done():
            round_.done.set_result(None)
