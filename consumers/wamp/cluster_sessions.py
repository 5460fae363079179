"""The sessions of a cluster realm, for the meta API: who is joined where, questions to other
nodes, meta events that cross nodes, and the ``on_leave`` of sessions whose process died.

- Each session's member in ``wamp.session.<realm>`` (``cluster.py``) carries, as its value, what
  ``wamp.session.get`` answers (JSON): so ``count``/``list``/``get`` are one registry read on any
  node, with no node asked. The read runs in the realm's queue of registry operations, after this
  node's own claims and releases, so a session sees itself and its node's changes at once.
- What only the nodes know (their subscribers and callees, their sessions to kill) is asked of
  every node holding a session of the realm (``wamp.meta.ask``, answered by
  ``wamp.meta.answer``); a node that does not answer within ``ASK_TIMEOUT`` is left out.
- Meta events happen on one node (the session's) and go to the other nodes like any
  publication, once each node has a meta subscriber, after the registry change they announce.
- Every read of the session space is a ``Registry.sweep``: it purges the sessions of dead
  nodes (with their subscribers and callees, which ``cluster_lifecycle.py`` keeps in the same
  space) and reports them to the one caller whose script purged them, which fires their
  ``on_unsubscribe``/``on_unregister`` and ``on_leave`` (so once in the cluster, and never for a
  session that left by itself: its node released it). A read that misses this node's own
  sessions (purged while the process was stopped) has them claimed again. Each node reads on
  its beat, every ``sync_interval`` (not on the re-reads other nodes' changes ask for: the
  read grows with the number of sessions, subscribers and callees), so a dead process's
  sessions leave within ``heartbeat_ttl + sync_interval``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from .cluster_lifecycle import ClusterLifecycle, is_session
from .filter import PublishFilter
from .meta_cluster import answer

if TYPE_CHECKING:
    from .cluster import ClusterRealm
    from .realm import RealmRouter

T = TypeVar("T")

#: Seconds a node waits for the other nodes' answers to a meta question.
ASK_TIMEOUT = 2.0
#: Seconds a meta procedure waits for its turn in the realm's registry queue.
QUEUE_TIMEOUT = 10.0
_NO_RULES = PublishFilter(frozenset(), frozenset(), frozenset(), None, None, None)


@dataclass(frozen=True)
class SessionRecord:
    """A joined session somewhere in the cluster: its ID, its node and its details."""

    id: int
    node: str
    info: dict[str, Any]


class ClusterSessions:
    """The meta API's view of a cluster realm (see the module docstring)."""

    def __init__(self, cluster: ClusterRealm) -> None:
        self.cluster = cluster
        #: The session space at the last read: ID -> record (saves parsing them again).
        self.known: dict[int, SessionRecord] = {}
        self._asks: dict[int, asyncio.Future[Any]] = {}
        self._ask_ids = itertools.count(1)
        #: Set by the node's periodic beat: the next ``sync`` reads the session space.
        self.read_due = False
        #: The subscription and registration events, and the return of purged sessions.
        self.lifecycle = ClusterLifecycle(self)

    @property
    def realm(self) -> RealmRouter:
        """The realm router this cluster realm serves."""
        realm = self.cluster.realm
        assert realm is not None, "the realm router is set when the router starts"
        return realm

    # --- sessions in the registry ---------------------------------------------------------------

    def joined(self, session_id: int, info: dict[str, Any]) -> None:
        """Record a session of this node, with its details, in the session space."""
        self.cluster.queue(partial(self.claim_session, session_id, info))

    async def claim_session(self, session_id: int, info: dict[str, Any]) -> bool:
        """Claim a session's record (in the realm's queue)."""
        key = str(session_id)
        value = json.dumps(info, default=str, separators=(",", ":"))
        cluster = self.cluster
        await cluster.node.registry.claim(
            cluster.session_space, key, key, cluster.node.channel, exclusive=True, value=value
        )
        self.lifecycle.recorded.add(session_id)
        return False  # other nodes route by registrations, not sessions: no re-read

    async def in_order(self, read: Callable[[], Awaitable[T]]) -> T:
        """Run ``read`` in the realm's registry queue (after this node's queued changes)."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        async def operation() -> bool:
            try:
                result = await read()
            except Exception as exc:  # handed to the waiting meta call
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
            return False

        self.cluster.queue(operation)
        return await asyncio.wait_for(future, QUEUE_TIMEOUT)

    async def sessions(self) -> list[SessionRecord]:
        """Every joined session of the realm in the cluster, in join order."""
        return await self.in_order(self._read)

    async def _read(self) -> list[SessionRecord]:
        """The session space, swept: the sessions of dead nodes this read purged leave."""
        live, purged = await self.cluster.node.registry.sweep(self.cluster.session_space)
        records = self._records(entry for entry in live if is_session(entry))
        self.known = {record.id: record for record in records}
        if purged:
            gone = self._records(entry for entry in purged if is_session(entry))
            self.lifecycle.announce_purged(live, purged, gone)
        self.lifecycle.check_own(live)
        return records

    def _records(self, entries: Iterable[Any]) -> list[SessionRecord]:
        records = []
        for entry in entries:
            session_id = int(entry.key)
            known = self.known.get(session_id)
            if known is not None and known.node == entry.node:
                records.append(known)
                continue
            try:
                info = json.loads(entry.value) if entry.value else {}
            except ValueError:
                info = {}
            info.setdefault("session", session_id)
            records.append(SessionRecord(session_id, entry.node, info))
        return records

    # --- sessions of dead nodes -----------------------------------------------------------------

    async def sync(self) -> None:
        """Read (sweep) the session space on the node's beat (see the module docstring)."""
        if self.read_due:
            self.read_due = False
            await self._read()

    # --- meta events to other nodes -------------------------------------------------------------

    def forward(self, topic: str, publication: int, args: list[Any]) -> None:
        """Send a meta event to the other nodes' subscribers, after the registry changes queued
        before it (so an ``on_join`` elsewhere finds the session in ``wamp.session.list``)."""

        async def publish() -> bool:
            self.cluster.publish(topic, publication, args, None, (None, None, None), _NO_RULES)
            return False

        self.cluster.queue(publish)

    # --- questions to the nodes -----------------------------------------------------------------

    async def ask(self, nodes: Iterable[str], what: str, **fields: Any) -> dict[str, Any]:
        """Ask each of ``nodes`` (this one included, answered here) ``what``; their answers by
        node. A node that does not answer within ``ASK_TIMEOUT`` is left out."""
        own = self.cluster.node.channel
        answers: dict[str, Any] = {}
        waiting: dict[str, tuple[int, asyncio.Future[Any]]] = {}
        loop = asyncio.get_running_loop()
        for node in set(nodes):
            if node == own:
                answers[node] = self.answer(what, fields)
                continue
            ask = next(self._ask_ids)
            future = self._asks[ask] = loop.create_future()
            waiting[node] = (ask, future)
            message = self.cluster._message("wamp.meta.ask", ask=ask, what=what, fields=fields)
            self.cluster.node.send(node, message)
        if waiting:
            await asyncio.wait([future for _, future in waiting.values()], timeout=ASK_TIMEOUT)
        for node, (ask, future) in waiting.items():
            self._asks.pop(ask, None)
            if future.done():
                answers[node] = future.result()
        return answers

    def handle(self, message: dict[str, Any]) -> None:
        """A ``wamp.meta.ask`` from another node, or the answer to one of ours."""
        if message["type"] == "wamp.meta.ask":
            answer = self.answer(message["what"], message["fields"])
            reply = self.cluster._message("wamp.meta.answer", ask=message["ask"], answer=answer)

            async def send() -> bool:
                # After the registry changes the answer made (a killed session's release), so
                # the asker's next read sees them.
                self.cluster.node.send(message["src"], reply)
                return False

            self.cluster.queue(send)
            return
        future = self._asks.pop(message["ask"], None)
        if future is not None and not future.done():
            future.set_result(message["answer"])

    def answer(self, what: str, fields: dict[str, Any]) -> Any:
        """This node's answer to a meta question (``meta_cluster.answer``)."""
        return answer(self.realm, what, fields)
