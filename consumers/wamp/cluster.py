"""Router processes as one cluster over the channel layer: each process is a *node*.

A node has one process-local channel (``layer.new_channel("wamp")``) and receives every
cross-process message there (``remote.py`` lists them). What the cluster must agree on lives in
the layer's registry (``channel_layers/registry.py``), one space per realm and kind:

- ``wamp.reg.<realm>``: a member per callee (``"<session> <match> <uri>"``) under the key
  ``"<match> <uri>"``; exclusive for ``single``, else shared under the invocation policy; the
  key's value is the registration ID every node uses for it. The claim runs before REGISTERED,
  so a second ``single`` registration anywhere in the cluster is refused.
- ``wamp.sub.<realm>``: a member per node and subscription pattern: which nodes want which
  topics. A publication goes to each interested node once (one layer message, not one per
  subscriber), and that node encodes each EVENT once per serializer.
- ``wamp.session.<realm>``: a member per session (its ID), owned by its node; its value is
  what the meta API tells of the session (``cluster_sessions.py``, which also carries the meta
  API's questions between nodes).
- ``wamp.nodes``: every node, present while its process lives.

Each node keeps a replica of both spaces for the routing path (lookups stay synchronous). It
reads the registry again when another node says it changed something (``wamp.changed`` to the
realm's group) and every ``sync_interval`` seconds; the registry drops the members of a process
whose heartbeat stopped (``heartbeat_ttl`` on Redis), and a node whose calls run through a dead
node fails them, so a killed callee's caller gets ``wamp.error.canceled`` within
``heartbeat_ttl + sync_interval``. Registry operations of one node run one at a time, in order.

Ordering across nodes (``rounds.py`` runs the waits):

- SUBSCRIBED means "from now on, publications from any node reach you": the first subscription
  of a pattern on a node is claimed in the registry, then every other live node reads the
  registry again and says so, and only then does the session get SUBSCRIBED (and its local
  subscription, so no EVENT precedes SUBSCRIBED). Later subscribers of the pattern on the node
  wait for the same round, or for nothing once it is over.
- REGISTERED means "a call from any node finds you": the claim, then the same round, then the
  local registration and REGISTERED.
- The wait is bounded by ``sync_interval``; a node that does not answer in time (its process
  died and the registry has not purged it yet) is not waited for again until it answers.
- Retained events stay on the node where they were published (``max_retained_events`` each,
  gone with the process). A subscription with ``get_retained`` asks every live node for its
  retained events of the pattern and gets, per topic, the one published last (by wall clock).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any

from channel_layers.base import ChannelLayerError
from channel_layers.registry import Claim

from .cluster_sessions import ClusterSessions
from .codec import messages as m
from .filter import PublishFilter
from .ids import global_id, pattern_id
from .index import PatternIndex
from .meta import MetaProcedures
from .meta_cluster import ClusterFacts
from .remote import NodeLink, RemoteCallee, rules_from_wire, rules_to_wire
from .rounds import Rounds, retained_to_wire
from .state import (
    InvokePolicy,
    LocalRoutingState,
    Registration,
    RegistrationRefused,
    RetainedEvent,
    Subscription,
)
from .subscribing import Subscribing
from .uris import MatchPolicy

if TYPE_CHECKING:
    from .node import ClusterNode
    from .realm import RealmRouter

logger = logging.getLogger("consumers.wamp")

Operation = Callable[[], Awaitable[object]]


def _group(realm: str) -> str:
    return "wamp-realm." + hashlib.sha1(realm.encode()).hexdigest()[:24]


class ClusterRealm:
    """A realm's ``RoutingState`` on a node, and its link to the other nodes."""

    def __init__(self, node: ClusterNode, name: str, max_retained_events: int) -> None:
        self.node = node
        self.name = name
        self.group = _group(name)
        self.reg_space, self.sub_space = f"wamp.reg.{name}", f"wamp.sub.{name}"
        self.session_space = f"wamp.session.{name}"
        # One subscription ID per pattern on every node (``ids.pattern_id``).
        self.local = LocalRoutingState(max_retained_events, partial(pattern_id, name))
        self.realm: RealmRouter | None = None
        self.registrations = PatternIndex[Registration]()  # every node's callees
        self.callee_nodes: dict[int, str] = {}
        self.interest = PatternIndex[set[str]]()  # other nodes' subscription patterns
        self.links: dict[str, NodeLink] = {}
        self._operations: deque[Operation] = deque()
        self._wakeup = asyncio.Event()
        self._sync_queued = False
        self.sessions = ClusterSessions(self)
        self.meta = MetaProcedures(ClusterFacts(self.sessions))
        self.rounds = Rounds(node, name)
        #: Set once this node has read the realm's registry: sessions are welcomed after it.
        self.synced = asyncio.Event()
        self.subscribing = Subscribing(self)
        self._running: set[asyncio.Task[None]] = set()
        node.realms[name] = self

    def start(self) -> None:
        """Run this realm's registry operations (the node is ready)."""
        self.node._tasks.append(asyncio.get_running_loop().create_task(self._work()))
        self.sync_soon()

    def queue(self, operation: Operation) -> None:
        """Run ``operation`` after those queued before it."""
        self._operations.append(operation)
        self._wakeup.set()

    async def _work(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            changed = False
            while self._operations:
                operation = self._operations.popleft()
                try:
                    changed = bool(await operation()) or changed
                except ChannelLayerError as exc:
                    logger.warning("WAMP realm %r: a registry operation failed: %s", self.name, exc)
            if changed:
                self.node.group_send(self.group, self._message("wamp.changed"))

    def _message(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "realm": self.name, "src": self.node.channel, **fields}

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` beside the operations (a round must not hold the queue: the nodes
        it waits for may be waiting for this node's queue to answer theirs)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    # --- RoutingState -------------------------------------------------------------------------

    def subscribe(self, session_id: int, topic: str, match: MatchPolicy) -> Subscription:
        """Subscribe here (the broker calls ``prepare_subscribe`` first; without it, the pattern
        is claimed now and reaches the other nodes when they read the registry)."""
        self.subscribing.claim(f"{match} {topic}")
        return self.local.subscribe(session_id, topic, match)

    def prepare_subscribe(
        self,
        topic: str,
        match: MatchPolicy,
        get_retained: bool,
        ready: Callable[[list[RetainedEvent]], None],
    ) -> None:
        """Call ``ready`` (which subscribes and answers SUBSCRIBED) once every live node has the
        pattern, with the cluster's retained events when asked (``subscribing.py``)."""
        self.subscribing.prepare(topic, match, get_retained, ready)

    def subscription_id_for(self, topic: str, match: MatchPolicy) -> int:
        """The ID a subscription to ``(topic, match)`` has here, or gets at SUBSCRIBED (0 when
        that cannot be told yet)."""
        return self.local.subscription_id_for(topic, match)

    async def _claim_interest(self, key: str) -> bool:
        member = f"{self.node.channel} {key}"
        await self.node.registry.claim(
            self.sub_space, key, member, self.node.channel, exclusive=False
        )
        return True

    def unsubscribe(self, session_id: int, subscription_id: int) -> Subscription | None:
        """Unsubscribe here; the last local subscriber of a pattern tells the cluster."""
        subscription = self.local.unsubscribe(session_id, subscription_id)
        if subscription is not None and not subscription.subscribers:
            self.subscribing.release_if_unused(f"{subscription.match} {subscription.uri}")
        return subscription

    async def reclaim_interest(self, subscription: Subscription) -> None:
        """Claim again this node's interest in a pattern (after a purge while it lived)."""
        await self._claim_interest(f"{subscription.match} {subscription.uri}")

    async def _release(self, space: str, member: str) -> bool:
        return await self.node.registry.release(space, member)

    async def _forget_session(self, member: str) -> bool:
        await self.node.registry.release(self.session_space, member)
        return False

    def subscriptions_matching(self, topic: str) -> list[Subscription]:
        """This node's subscriptions matching ``topic`` (other nodes deliver their own)."""
        return self.local.subscriptions_matching(topic)

    def register(
        self,
        session_id: int,
        procedure: str,
        match: MatchPolicy,
        invoke: InvokePolicy,
        done: Callable[[Registration | RegistrationRefused], None],
    ) -> None:
        """Claim the registration in the cluster, then add it here and report to ``done``."""

        async def claim() -> bool:
            try:
                held = await self.node.registry.claim(
                    self.reg_space,
                    f"{match} {procedure}",
                    f"{session_id} {match} {procedure}",
                    self.node.channel,
                    exclusive=invoke == "single",
                    policy=invoke,
                    value=str(global_id()),
                )
            except ChannelLayerError as exc:
                done(RegistrationRefused("wamp.error.unavailable", f"registry unreachable: {exc}"))
                return False
            if not held.granted:
                done(_refusal(procedure, invoke, held))
                return False
            self._spawn(spread(int(held.value)))
            return False  # the round tells the other nodes

        async def spread(registration_id: int) -> None:
            # REGISTERED only once every live node routes calls here (see the module docstring)
            try:
                await self.rounds.ask(sync=True, retained=None)
            except ChannelLayerError as exc:
                logger.warning("WAMP realm %r: cannot reach the other nodes: %s", self.name, exc)
            try:
                registration = self.local.register_now(
                    session_id, procedure, match, invoke, registration_id
                )
            except RegistrationRefused as refused:
                member = f"{session_id} {match} {procedure}"
                self.queue(partial(self._release, self.reg_space, member))
                done(refused)
                return
            self._add_callee(registration, session_id)
            done(registration)

        self.queue(claim)

    def _add_callee(self, local: Registration, session_id: int) -> None:
        merged = self.registrations.get(local.uri, local.match)
        if merged is None:
            merged = Registration(local.id, local.uri, local.match, local.invoke)
            self.registrations.add(local.uri, local.match, merged)
        if session_id not in merged.callees:
            merged.callees.append(session_id)

    def unregister(self, session_id: int, registration_id: int) -> Registration | None:
        """Unregister here at once; the cluster hears it next."""
        registration = self.local.unregister(session_id, registration_id)
        if registration is None:
            return None
        merged = self.registrations.get(registration.uri, registration.match)
        if merged is not None and session_id in merged.callees:
            merged.callees.remove(session_id)
            if not merged.callees:
                self.registrations.remove(registration.uri, registration.match)
        member = f"{session_id} {registration.match} {registration.uri}"
        self.queue(lambda: self._release(self.reg_space, member))
        return registration

    def registration_for(self, procedure: str) -> Registration | None:
        """The most specific registration in the whole cluster."""
        return self.registrations.best(procedure)

    def retain(self, event: RetainedEvent) -> None:
        """Keep ``event`` here, stamped with its time: retained events stay on the node that
        published them, and a new subscriber's node asks for them (``prepare_subscribe``)."""
        self.local.retain(dataclasses.replace(event, published=time.time()))

    def retained_for(self, topic: str, match: MatchPolicy) -> list[RetainedEvent]:
        """This node's retained events for a new subscription."""
        return self.local.retained_for(topic, match)

    def session_joined(self, session_id: int, info: dict[str, Any]) -> None:
        """Record a session of this node, and its meta ``info``, in the session space."""
        self.sessions.joined(session_id, info)

    def drop_session(self, session_id: int) -> None:
        """Forget a session that left, here and (next) in the cluster."""
        self.queue(partial(self._forget_session, str(session_id)))
        subscriptions, registrations = self.local.held_by(session_id)
        for subscription_id in subscriptions:
            self.unsubscribe(session_id, subscription_id)
        for registration_id in registrations:
            self.unregister(session_id, registration_id)

    def is_empty(self) -> bool:
        """Whether this node holds no subscription, registration or session entry."""
        return self.local.is_empty()

    # --- the replica ------------------------------------------------------------------------

    def sync_soon(self) -> None:
        """Read the registry again once the operations queued so far have run."""
        if not self._sync_queued:
            self._sync_queued = True
            self.queue(self._sync)

    async def _sync(self) -> bool:
        self._sync_queued = False
        registry, own = self.node.registry, self.node.channel
        registrations = PatternIndex[Registration]()
        callee_nodes: dict[int, str] = {}
        for entry in await registry.entries(self.reg_space):
            match, uri = entry.key.split(" ", 1)
            session_id = int(entry.member.split(" ", 1)[0])
            if entry.node == own:
                local = self.local.registration(uri, match)  # type: ignore[arg-type]
                if local is None or session_id not in local.callees:
                    continue  # released here, the registry hears it next
            else:
                callee_nodes[session_id] = entry.node
            merged = registrations.get(uri, match)  # type: ignore[arg-type]
            if merged is None:
                old = self.registrations.get(uri, match)  # type: ignore[arg-type]
                policy: Any = entry.policy
                merged = Registration(int(entry.value), uri, match, policy)  # type: ignore[arg-type]
                merged.next_callee = old.next_callee if old is not None else 0
                registrations.add(uri, match, merged)  # type: ignore[arg-type]
            merged.callees.append(session_id)
        interest = PatternIndex[set[str]]()
        for entry in await registry.entries(self.sub_space):
            if entry.node != own:
                match, topic = entry.key.split(" ", 1)
                nodes = interest.get(topic, match)  # type: ignore[arg-type]
                if nodes is None:
                    interest.add(topic, match, nodes := set())  # type: ignore[arg-type]
                nodes.add(entry.node)
        self.registrations, self.callee_nodes, self.interest = registrations, callee_nodes, interest
        self.synced.set()
        await self._check_links()
        await self.sessions.sync()
        return False

    async def _check_links(self) -> None:
        """Fail the calls that run through nodes whose process died."""
        if not self.links or self.realm is None:
            return
        alive = await self.node.registry.alive(self.links)
        for name, link in list(self.links.items()):
            if name not in alive:
                logger.warning("WAMP realm %r: node %s is gone; failing its calls", self.name, name)
                self.realm.dealer.session_left(link)
                del self.links[name]
            elif link.is_idle() and name not in self.callee_nodes.values():
                del self.links[name]

    # --- to and from other nodes ------------------------------------------------------------

    def publish(
        self,
        topic: str,
        publication: int,
        args: list[Any] | None,
        kwargs: dict[str, Any] | None,
        publisher: tuple[int | None, str | None, str | None],
        rules: PublishFilter,
    ) -> None:
        """Send a publication once to each other node with a matching subscription."""
        matching = self.interest.matching(topic)
        if not matching:
            return
        nodes = set().union(*matching)
        message = self._message(
            "wamp.event",
            topic=topic,
            publication=publication,
            args=args,
            kwargs=kwargs,
            publisher=list(publisher),
            rules=rules_to_wire(rules),
        )
        for node in nodes:
            self.node.send(node, message)

    def link(self, node: str) -> NodeLink:
        """The dealer's stand-in for ``node`` in this realm."""
        link = self.links.get(node)
        if link is None:
            link = self.links[node] = NodeLink(self.name, node, self.node.channel, self.node.send)
        return link

    def remote_callee(self, session_id: int, registration: Registration) -> RemoteCallee | None:
        """A stand-in for a callee on another node, or None when no node holds it."""
        node = self.callee_nodes.get(session_id)
        return None if node is None else RemoteCallee(self.link(node), session_id, registration)

    def handle(self, message: dict[str, Any]) -> None:
        """One message from another node (see ``remote.py``)."""
        realm, kind = self.realm, message["type"]
        if realm is None:
            return
        if kind == "wamp.event":
            publisher: Any = tuple(message["publisher"])
            realm.broker.deliver(
                message["topic"],
                message["publication"],
                message["args"],
                message["kwargs"],
                publisher,
                rules_from_wire(message["rules"]),
            )
        elif kind == "wamp.invoke":
            self._invoke(realm, message)
        elif kind == "wamp.yield":
            reply = m.Yield(
                message["request"], message["args"], message["kwargs"], progress=message["progress"]
            )
            realm.dealer.yield_(self.link(message["src"]), reply)
        elif kind == "wamp.error":
            error = m.Error(
                m.Invocation.MESSAGE_TYPE,
                message["request"],
                message["error"],
                args=message["args"],
                kwargs=message["kwargs"],
            )
            realm.dealer.error(self.link(message["src"]), error)
        elif kind == "wamp.interrupt":
            cancel = m.Cancel(message["request"], mode=message["mode"])
            realm.dealer.cancel(self.link(message["src"]), cancel)
        elif kind == "wamp.changed":
            self.sync_soon()
        elif kind.startswith("wamp.meta."):
            self.sessions.handle(message)
        elif kind == "wamp.sync":
            self._answer_round(message)
        elif kind == "wamp.synced":
            self.rounds.answered(message)

    def _answer_round(self, message: dict[str, Any]) -> None:
        """Answer another node's round (``rounds.py``), after reading the registry if asked."""
        asked = message["retained"]

        async def answer() -> bool:
            events = [] if asked is None else self.local.retained_for(asked[0], asked[1])
            wires = [retained_to_wire(event) for event in events]
            reply = self._message("wamp.synced", token=message["token"], events=wires)
            self.node.send(message["src"], reply)
            return False

        if message["sync"]:
            self.sync_soon()  # queued before the answer: it runs first
        self.queue(answer)

    def _invoke(self, realm: RealmRouter, message: dict[str, Any]) -> None:
        link = self.link(message["src"])
        callee = realm.sessions.get(message["callee"])
        registration = self.local.registration(message["uri"], message["match"])
        request = message["request"]
        if callee is None or registration is None or callee.id not in registration.callees:
            text = f"the callee of {message['procedure']!r} is gone"
            link.peer.send(
                m.Error(m.Call.MESSAGE_TYPE, request, "wamp.error.no_such_procedure", args=[text])
            )
            return
        call = m.Call(
            request,
            message["procedure"],
            args=message["args"],
            kwargs=message["kwargs"],
            receive_progress=message["progress"] or None,
        )
        disclosed = message["caller"]
        realm.dealer.invoke(
            link, request, callee, registration, call, tuple(disclosed) if disclosed else None
        )


def _refusal(procedure: str, invoke: str, held: Claim) -> RegistrationRefused:
    if held.exclusive or invoke == "single" or held.policy == invoke:
        return RegistrationRefused(
            "wamp.error.procedure_already_exists", f"{procedure!r} is already registered"
        )
    return RegistrationRefused(
        "wamp.error.procedure_exists_with_different_invocation_policy",
        f"{procedure!r} is registered with invoke={held.policy!r}",
    )
