"""The WAMP session meta API of one realm: meta events and meta procedures (``wamp.*``).

Events: ``wamp.session.on_join``/``on_leave`` (fired from ``RealmRouter.attach``/``detach``) and the
subscription and registration lifecycle events (fired by ``meta_state.ObservedState``). They are
delivered like any EVENT to the realm's subscribers of those topics, with the publisher left out;
clients cannot publish them (``wamp.`` is reserved); in a cluster they also go to the other nodes
(``cluster_sessions.py``).

Procedures: a CALL to a ``wamp.`` URI is answered here, after the caller's role was authorized to
call it. Each procedure is written once (``MetaProcedures``), over ``MetaFacts``: where the
sessions, subscriptions and registrations come from and how sessions are killed. ``LocalFacts``
answers from this process; in a cluster, ``meta_cluster.ClusterFacts`` answers for the whole
cluster, so every node answers alike. Lists of subscriptions and registrations are in ID order,
lists of sessions in join order.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from .codec import Message
from .codec import messages as m
from .ids import global_id
from .index import PatternIndex
from .uris import MatchPolicy, uri_matches

if TYPE_CHECKING:
    from .meta_state import ObservedState
    from .realm import RealmRouter
    from .session import Session

T = TypeVar("T")
Kind = Literal["subscriptions", "registrations"]
KINDS: tuple[Kind, ...] = ("subscriptions", "registrations")

NO_SUCH_SESSION = "wamp.error.no_such_session"
NO_SUCH = {
    "subscriptions": "wamp.error.no_such_subscription",
    "registrations": "wamp.error.no_such_registration",
}
KILLED = "wamp.close.killed"
UNAVAILABLE = "wamp.error.unavailable"


class MetaError(Exception):
    """A meta procedure's failure: ``error`` is the WAMP error URI."""

    def __init__(self, error: str, text: str) -> None:
        super().__init__(text)
        self.error = error


def session_info(session: Session) -> dict[str, Any]:
    """A session as ``wamp.session.get`` and ``on_join`` describe it."""
    return {
        "session": session.id,
        "authid": session.authid,
        "authrole": session.authrole,
        "authmethod": session.authmethod,
        "authprovider": session.authprovider,
        "authextra": session.authextra,
        "transport": session.transport.details(),
    }


@dataclass(frozen=True)
class Route:
    """A subscription or a registration as the meta procedures see it."""

    id: int
    uri: str
    match: MatchPolicy
    members: list[int]  # its subscribers or callees
    created: str | None
    invoke: str | None = None  # registrations only

    def details(self) -> dict[str, Any]:
        """What ``wamp.subscription.get`` or ``wamp.registration.get`` answers."""
        details = {"id": self.id, "created": self.created, "uri": self.uri, "match": self.match}
        if self.invoke is not None:
            details["invoke"] = self.invoke
        return details


def routes_here(observed: ObservedState, kind: Kind) -> list[Route]:
    """This process's subscriptions or registrations."""
    if kind == "subscriptions":
        return [
            Route(s.id, s.uri, s.match, list(s.subscribers), observed.created.get(s.id))
            for s in observed.subscriptions.values()
        ]
    return [
        Route(r.id, r.uri, r.match, list(r.callees), observed.created.get(r.id), r.invoke)
        for r in observed.registrations.values()
    ]


@dataclass(frozen=True)
class Kill:
    """Whom a kill ends (by IDs, authid or authrole, never ``spare``: the caller) and how."""

    spare: int
    reason: str | None
    message: str | None
    ids: list[int] | None = None
    authid: str | None = None
    authrole: str | None = None

    def picks(self, session_id: int, authid: object, authrole: object) -> bool:
        """Whether the kill ends this session."""
        return session_id != self.spare and (
            (self.ids is not None and session_id in self.ids)
            or (self.authid is not None and authid == self.authid)
            or (self.authrole is not None and authrole == self.authrole)
        )

    def carry_out(self, sessions: Iterable[Session]) -> list[int]:
        """End the picked ``sessions`` (of this process); their IDs."""
        killed = []
        for session in list(sessions):
            if self.picks(session.id, session.authid, session.authrole):
                session.goodbye(self.reason or KILLED, self.message)
                killed.append(session.id)
        return killed


class MetaFacts(Protocol):
    """Where the meta procedures' answers come from: this process or the cluster."""

    async def sessions(self) -> list[dict[str, Any]]:
        """Every joined session of the realm (``session_info``), in join order."""
        ...

    async def routes(self, kind: Kind) -> list[Route]:
        """Every subscription or registration of the realm, with all its members."""
        ...

    async def kill(self, order: Kill) -> list[int]:
        """End the sessions ``order`` picks; their IDs."""
        ...


class LocalFacts:
    """The facts of this process: its sessions and routing state."""

    def __init__(self, realm: RealmRouter) -> None:
        self.realm = realm

    async def sessions(self) -> list[dict[str, Any]]:
        return [session_info(session) for session in self.realm.sessions.values()]

    async def routes(self, kind: Kind) -> list[Route]:
        return routes_here(self.realm.observed, kind)

    async def kill(self, order: Kill) -> list[int]:
        return order.carry_out(self.realm.sessions.values())


def run_now(answer: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never waits (over ``LocalFacts``), without a loop: so a
    meta CALL in a single process is answered before the next message, as any CALL."""
    try:
        answer.send(None)
    except StopIteration as finished:
        result: T = finished.value
        return result
    answer.close()
    raise RuntimeError("a meta procedure over this process's facts waited")


class MetaProcedures:
    """The ``wamp.*`` procedures over some ``MetaFacts``; each takes the caller's ID first."""

    def __init__(self, facts: MetaFacts) -> None:
        self.facts = facts
        self.procedures: dict[str, Callable[..., Coroutine[Any, Any, Any]]] = {
            "wamp.session.count": self.session_count,
            "wamp.session.list": self.session_list,
            "wamp.session.get": self.session_get,
            "wamp.session.kill": self.session_kill,
            "wamp.session.kill_by_authid": self.kill_by_authid,
            "wamp.session.kill_by_authrole": self.kill_by_authrole,
            "wamp.subscription.list": partial(self.listed, "subscriptions"),
            "wamp.subscription.lookup": partial(self.lookup, "subscriptions"),
            "wamp.subscription.match": self.subscription_match,
            "wamp.subscription.get": partial(self.get, "subscriptions"),
            "wamp.subscription.list_subscribers": partial(self.members, "subscriptions"),
            "wamp.subscription.count_subscribers": partial(self.count_members, "subscriptions"),
            "wamp.registration.list": partial(self.listed, "registrations"),
            "wamp.registration.lookup": partial(self.lookup, "registrations"),
            "wamp.registration.match": self.registration_match,
            "wamp.registration.get": partial(self.get, "registrations"),
            "wamp.registration.list_callees": partial(self.members, "registrations"),
            "wamp.registration.count_callees": partial(self.count_members, "registrations"),
        }

    # --- sessions -------------------------------------------------------------------------------

    async def _sessions(self, authroles: list[str] | None) -> list[dict[str, Any]]:
        infos = await self.facts.sessions()
        return [i for i in infos if authroles is None or i.get("authrole") in authroles]

    async def session_count(self, caller: int, authroles: list[str] | None = None) -> int:
        """How many sessions are joined (of the given roles)."""
        return len(await self._sessions(authroles))

    async def session_list(self, caller: int, authroles: list[str] | None = None) -> list[int]:
        """The joined sessions' IDs (of the given roles), in join order."""
        return [info["session"] for info in await self._sessions(authroles)]

    async def session_get(self, caller: int, session_id: int) -> dict[str, Any]:
        """One session's details."""
        for info in await self.facts.sessions():
            if info["session"] == session_id:
                return info
        raise MetaError(NO_SUCH_SESSION, f"no session {session_id}")

    async def session_kill(
        self, caller: int, session_id: int, reason: str | None = None, message: str | None = None
    ) -> None:
        """End one session with GOODBYE ``reason`` (default ``wamp.close.killed``)."""
        if session_id not in await self.facts.kill(Kill(caller, reason, message, ids=[session_id])):
            raise MetaError(NO_SUCH_SESSION, f"no session {session_id} (other than the caller)")

    async def kill_by_authid(
        self, caller: int, authid: str, reason: str | None = None, message: str | None = None
    ) -> list[int]:
        """End every session of ``authid`` but the caller's; their IDs."""
        return await self.facts.kill(Kill(caller, reason, message, authid=authid))

    async def kill_by_authrole(
        self, caller: int, authrole: str, reason: str | None = None, message: str | None = None
    ) -> list[int]:
        """End every session of ``authrole`` but the caller's; their IDs."""
        return await self.facts.kill(Kill(caller, reason, message, authrole=authrole))

    # --- subscriptions and registrations --------------------------------------------------------

    async def _sorted(self, kind: Kind) -> list[Route]:
        return sorted(await self.facts.routes(kind), key=lambda route: route.id)

    async def _route(self, kind: Kind, route_id: int) -> Route:
        for route in await self.facts.routes(kind):
            if route.id == route_id:
                return route
        raise MetaError(NO_SUCH[kind], f"no {kind[:-1]} {route_id}")

    async def listed(self, kind: Kind, caller: int) -> dict[str, list[int]]:
        """The subscription or registration IDs by match policy."""
        listed: dict[str, list[int]] = {"exact": [], "prefix": [], "wildcard": []}
        for route in await self._sorted(kind):
            listed[route.match].append(route.id)
        return listed

    async def lookup(
        self, kind: Kind, caller: int, uri: str, options: dict[str, Any] | None = None
    ) -> int | None:
        """The ID of the subscription or registration on exactly ``(uri, match)``, or None."""
        match = (options or {}).get("match", "exact")
        found = [r.id for r in await self._sorted(kind) if (r.uri, r.match) == (uri, match)]
        return found[0] if found else None

    async def subscription_match(self, caller: int, topic: str) -> list[int] | None:
        """The IDs of the subscriptions an event on ``topic`` would reach, or None."""
        routes = await self._sorted("subscriptions")
        return [r.id for r in routes if uri_matches(r.uri, r.match, topic)] or None

    async def registration_match(self, caller: int, procedure: str) -> int | None:
        """The ID of the registration a call to ``procedure`` would go to, or None."""
        index = PatternIndex[int]()
        for route in await self.facts.routes("registrations"):
            index.add(route.uri, route.match, route.id)
        return index.best(procedure)

    async def get(self, kind: Kind, caller: int, route_id: int) -> dict[str, Any]:
        """One subscription's or registration's details."""
        return (await self._route(kind, route_id)).details()

    async def members(self, kind: Kind, caller: int, route_id: int) -> list[int]:
        """The subscription's subscribers or the registration's callees."""
        return list((await self._route(kind, route_id)).members)

    async def count_members(self, kind: Kind, caller: int, route_id: int) -> int:
        """How many subscribers or callees the subscription or registration has."""
        return len((await self._route(kind, route_id)).members)


class MetaApi:
    """Meta events and procedures for one realm."""

    def __init__(self, realm: RealmRouter) -> None:
        self.realm = realm
        self._pending: list[tuple[str, list[Any]]] = []
        #: The procedures over this process's facts (a cluster realm uses ``cluster.meta``).
        self.here = MetaProcedures(LocalFacts(realm))

    # --- events -------------------------------------------------------------------------------

    def emit(self, topic: str, args: list[Any]) -> None:
        """Queue a meta event for ``flush``: it goes out after the reply to the message that
        caused it (a client must see SUBSCRIBED before an EVENT on its new subscription)."""
        self._pending.append((topic, args))

    def flush(self) -> None:
        """Deliver the queued meta events, in the order they happened."""
        while self._pending:
            topic, args = self._pending.pop(0)
            self._deliver(topic, args)

    def _deliver(self, topic: str, args: list[Any]) -> None:
        sessions = self.realm.sessions
        cluster = self.realm.cluster
        publication = 0 if cluster is None else global_id()
        for subscription in self.realm.state.subscriptions_matching(topic):
            publication = publication or global_id()
            event = m.Event(
                subscription.id,
                publication,
                args=args,
                topic=topic if subscription.match != "exact" else None,
            )
            for session_id in subscription.subscribers:
                receiver = sessions.get(session_id)
                if receiver is not None:
                    receiver.peer.send(event)
        if cluster is not None:
            cluster.sessions.forward(topic, publication, args)

    def joined(self, session: Session) -> None:
        """``wamp.session.on_join``."""
        self.emit("wamp.session.on_join", [session_info(session)])
        self.flush()

    def left(self, session: Session) -> None:
        """``wamp.session.on_leave`` (after the events of its subscriptions and registrations,
        which a cluster realm fires once its registry has heard of them)."""
        cluster = self.realm.cluster
        if cluster is not None:
            cluster.sessions.lifecycle.left(session)
            return
        self.emit("wamp.session.on_leave", [session.id, session.authid, session.authrole])
        self.flush()

    # --- procedures ---------------------------------------------------------------------------

    def call(self, caller: Session, request: Message) -> None:
        """Answer a CALL to a ``wamp.`` procedure: at once from this process's facts, or once
        the cluster answered (the registry and the other nodes)."""
        kind = m.Call.MESSAGE_TYPE
        cluster = self.realm.cluster
        procedures = (self.here if cluster is None else cluster.meta).procedures
        procedure = procedures.get(request.procedure)
        if procedure is None:
            text = f"no meta procedure {request.procedure!r}"
            caller.peer.send(
                m.Error(kind, request.request, "wamp.error.no_such_procedure", args=[text])
            )
            return

        def done(result: Any, exc: BaseException | None) -> None:
            if exc is None:
                caller.peer.send(m.Result(request.request, args=[result]))
                return
            if isinstance(exc, MetaError):
                error, text = exc.error, str(exc)
            elif isinstance(exc, TypeError):
                error, text = "wamp.error.invalid_argument", str(exc)
            else:
                error, text = UNAVAILABLE, f"the cluster did not answer: {exc!r}"
            caller.peer.send(m.Error(kind, request.request, error, args=[text]))

        try:
            answer = procedure(caller.id, *(request.args or ()), **(request.kwargs or {}))
        except TypeError as exc:
            done(None, exc)
            return
        if cluster is not None:
            self.realm.defer(answer, done)
            return
        try:
            result = run_now(answer)
        except (MetaError, TypeError) as exc:
            done(None, exc)
            return
        done(result, None)
