"""The subscription and registration meta events of a cluster realm, each fired once in the
cluster, and the return of a node whose members were purged while it lived.

Each subscriber and callee of a node is a member of the realm's session space
(``wamp.session.<realm>``, beside the sessions of ``cluster_sessions.py``):

- under the key ``sub <match> <uri>``, a member ``sub <session> <match> <uri>`` per subscriber;
- under the key ``reg <id> <match> <uri>``, a member ``reg <session> <match> <uri>`` per callee.

A key's value is fixed by its first claim (``Registry.claim``) and each claim proposes its own
(ID, creation time, a nonce): the claim that gets its own value back created the key, and its
node fires ``on_create``; ``Registry.release_last`` tells the one release that emptied the key,
whose node fires ``on_delete``. These claims leave a dead node's members in place (``purge``
off): they count until the sweep below reports them, so none goes unannounced. The claims and
releases run in the realm's queue, in the order the sessions acted, and the events follow them
(after SUBSCRIBED or REGISTERED).

Being in the session space, a dead node's subscribers and callees are purged by the same atomic
sweep as its sessions, and reported to the one node that swept: it fires ``on_unsubscribe`` and
``on_unregister`` for each (``on_delete`` for the keys the purge emptied), then the session's
``on_leave``: the order a session leaving by itself gives.

A node whose heartbeat was late past ``heartbeat_ttl`` finds, at its next read, its own
sessions purged (and announced as left) while their clients are still connected: ``reclaim``
claims them again, with their subscriptions and registrations, and announces them again
(``on_join``, then ``on_create``/``on_subscribe``, ``on_create``/``on_register``). A
registration another node took meanwhile (a ``single`` one, or one made again under a new ID)
stays with that node: the late callee loses it (an UNREGISTERED with request 0 when it
announced ``registration_revocation``).
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING

from channel_layers.registry import Entry

from .codec import messages as m
from .ids import global_id
from .meta import session_info
from .state import Registration, Subscription

if TYPE_CHECKING:
    from .cluster_sessions import ClusterSessions, SessionRecord
    from .realm import RealmRouter
    from .session import Session

logger = logging.getLogger("consumers.wamp")

#: The reason of the UNREGISTERED a late callee gets for a registration another node took.
TAKEN = "wamp.error.procedure_already_exists"

Item = Subscription | Registration


def _kind(item: Item) -> str:
    return "subscription" if isinstance(item, Subscription) else "registration"


def _key(item: Item) -> str:
    if isinstance(item, Subscription):
        return f"sub {item.match} {item.uri}"
    return f"reg {item.id} {item.match} {item.uri}"


def _member(session_id: int, item: Item) -> str:
    prefix = "sub" if isinstance(item, Subscription) else "reg"
    return f"{prefix} {session_id} {item.match} {item.uri}"


def is_session(entry: Entry) -> bool:
    """Whether a session space entry is a session (not a subscriber or a callee)."""
    return entry.key.isdigit()


class ClusterLifecycle:
    """A cluster realm's subscription and registration events (see the module docstring)."""

    def __init__(self, sessions: ClusterSessions) -> None:
        self.sessions = sessions
        self.cluster = sessions.cluster
        #: This node's sessions whose record the registry holds (their claim has run).
        self.recorded: set[int] = set()

    @property
    def realm(self) -> RealmRouter:
        """The realm router this cluster realm serves."""
        return self.sessions.realm

    # --- a session acted ------------------------------------------------------------------------

    def added(self, session_id: int, item: Item) -> None:
        """``session_id`` subscribed or registered: claim it, then fire the events."""
        self.cluster.queue(partial(self._add, session_id, item))

    def removed(self, session_id: int, item: Item) -> None:
        """``session_id`` unsubscribed or unregistered: release it, then fire the events."""
        self.cluster.queue(partial(self._remove, session_id, item))

    def left(self, session: Session) -> None:
        """``on_leave``, after the releases of the session's subscriptions and registrations."""

        async def leave() -> bool:
            self.recorded.discard(session.id)
            meta = self.realm.meta
            meta.emit("wamp.session.on_leave", [session.id, session.authid, session.authrole])
            meta.flush()
            return False

        self.cluster.queue(leave)

    async def _add(self, session_id: int, item: Item) -> bool:
        now = datetime.datetime.now(datetime.UTC).isoformat()
        value = json.dumps({"id": item.id, "created": now, "nonce": global_id()})
        held = await self.cluster.node.registry.claim(
            self.cluster.session_space,
            _key(item),
            _member(session_id, item),
            self.cluster.node.channel,
            exclusive=False,
            value=value,
            purge=False,  # a dead node's subscriber still counts until the sweep reports it
        )
        if not held.granted:
            return False  # claimed already (a reclaim that found it still there)
        observed, meta, kind = self.realm.observed, self.realm.meta, _kind(item)
        if item.id in observed.subscriptions or item.id in observed.registrations:
            observed.created[item.id] = json.loads(held.value)["created"]  # the cluster's time
        if held.value == value:
            if isinstance(item, Subscription):
                details = observed.subscription_details(item)
            else:
                details = observed.registration_details(item)
            meta.emit(f"wamp.{kind}.on_create", [session_id, details])
        verb = "subscribe" if kind == "subscription" else "register"
        meta.emit(f"wamp.{kind}.on_{verb}", [session_id, item.id])
        meta.flush()
        return False

    async def _remove(self, session_id: int, item: Item) -> bool:
        space = self.cluster.session_space
        gone = await self.cluster.node.registry.release_last(space, _member(session_id, item))
        if gone is None:
            return False  # purged as a dead node's, and announced by the node that purged it
        meta, kind = self.realm.meta, _kind(item)
        verb = "unsubscribe" if kind == "subscription" else "unregister"
        meta.emit(f"wamp.{kind}.on_{verb}", [session_id, item.id])
        if gone:
            meta.emit(f"wamp.{kind}.on_delete", [session_id, item.id])
        meta.flush()
        return False

    # --- a dead node's members --------------------------------------------------------------------

    def announce_purged(
        self, live: list[Entry], purged: list[Entry], records: list[SessionRecord]
    ) -> None:
        """Fire the events of the members a sweep purged: per session, its subscriptions'
        and registrations' (``on_delete`` after a key's last purged member, when no live
        member is left), then its ``on_leave``."""
        held: dict[int, list[Entry]] = {}
        for entry in purged:
            if not is_session(entry):
                held.setdefault(int(entry.member.split(" ", 2)[1]), []).append(entry)
        order: list[tuple[int, list[Entry], SessionRecord | None]] = [
            (record.id, held.pop(record.id, []), record) for record in records
        ]
        order += [(session_id, entries, None) for session_id, entries in held.items()]
        live_keys = {entry.key for entry in live}
        last = {entry.key: entry.member for _, entries, _ in order for entry in entries}
        meta = self.realm.meta
        for session_id, entries, record in order:
            for entry in entries:
                self._announce_gone(session_id, entry, last, live_keys)
            if record is not None:
                info = record.info
                args = [record.id, info.get("authid"), info.get("authrole")]
                meta.emit("wamp.session.on_leave", args)
        meta.flush()

    def _announce_gone(
        self, session_id: int, entry: Entry, last: dict[str, str], live_keys: set[str]
    ) -> None:
        try:
            item_id = int(json.loads(entry.value)["id"])
        except (ValueError, KeyError, TypeError):
            return  # not a value this module wrote
        kind, verb = ("subscription", "unsubscribe")
        if entry.key.startswith("reg "):
            kind, verb = ("registration", "unregister")
        meta = self.realm.meta
        meta.emit(f"wamp.{kind}.on_{verb}", [session_id, item_id])
        if last[entry.key] == entry.member and entry.key not in live_keys:
            meta.emit(f"wamp.{kind}.on_delete", [session_id, item_id])

    # --- this node's members, purged while it lived -----------------------------------------------

    def check_own(self, live: Iterable[Entry]) -> None:
        """After a read: claim again this node's sessions that the registry lost."""
        held = {int(entry.key) for entry in live if is_session(entry)}
        lost = [
            session
            for session_id, session in self.realm.sessions.items()
            if session_id in self.recorded and session_id not in held
        ]
        if lost:
            logger.warning(
                "WAMP realm %r: %d sessions of this process were purged as dead (was it "
                "stopped past heartbeat_ttl?); claiming them again",
                self.cluster.name,
                len(lost),
            )
            self.recorded.difference_update(session.id for session in lost)
            self.cluster.queue(partial(self._reclaim, lost))

    async def _reclaim(self, lost: list[Session]) -> bool:
        meta, observed = self.realm.meta, self.realm.observed
        for session in lost:
            if session.id not in self.realm.sessions:
                continue  # it left meanwhile
            info = session_info(session)
            await self.sessions.claim_session(session.id, info)
            meta.emit("wamp.session.on_join", [info])
        for subscription in list(observed.subscriptions.values()):
            await self.cluster.reclaim_interest(subscription)
        for session in lost:
            for subscription in list(observed.subscriptions.values()):
                if session.id in subscription.subscribers:
                    await self._add(session.id, subscription)
            for registration in list(observed.registrations.values()):
                if session.id in registration.callees:
                    await self._reclaim_registration(session, registration)
        meta.flush()
        return True  # the other nodes read the registry again

    async def _reclaim_callee(self, session_id: int, registration: Registration) -> bool:
        """Claim again a callee in the realm's registrations space (its key and member as
        ``cluster.ClusterRealm.register`` writes them); False when the key is now another
        registration (another node took it meanwhile)."""
        cluster, key = self.cluster, f"{registration.match} {registration.uri}"
        ours = str(registration.id)
        member = f"{session_id} {key}"
        held = await cluster.node.registry.claim(
            cluster.reg_space,
            key,
            member,
            cluster.node.channel,
            exclusive=registration.invoke == "single",
            policy=registration.invoke,
            value=ours,
        )
        if held.value == ours:
            return True  # granted, or still held: one key has one value, ours
        if held.granted:
            await cluster.node.registry.release(cluster.reg_space, member)
        return False

    async def _reclaim_registration(self, session: Session, registration: Registration) -> None:
        if await self._reclaim_callee(session.id, registration):
            await self._add(session.id, registration)
            return
        logger.warning(
            "WAMP realm %r: %r was registered by another process while this one was late; "
            "session %s loses it",
            self.cluster.name,
            registration.uri,
            session.id,
        )
        self.realm.state.unregister(session.id, registration.id)  # announced by the purge
        session.registrations.discard(registration.id)
        if session.supports("callee", "registration_revocation"):
            session.peer.send(m.Unregistered(0, registration=registration.id, reason=TAKEN))
