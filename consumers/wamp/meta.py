"""The WAMP session meta API of one realm: meta events and meta procedures (``wamp.*``).

Events: ``wamp.session.on_join``/``on_leave`` (fired from ``RealmRouter.attach``/``detach``) and the
subscription and registration lifecycle events (fired by ``meta_state.ObservedState``). They are
delivered like any EVENT to the realm's subscribers of those topics, with the publisher left out;
clients cannot publish them (``wamp.`` is reserved). Procedures: a CALL to a ``wamp.`` URI is
answered here, after the caller's role was authorized to call it, from this process's sessions
and routing state; in a cluster, ``meta_cluster.py`` answers them for the whole cluster and meta
events also go to the other nodes (``cluster_sessions.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .codec import Message
from .codec import messages as m
from .ids import global_id

if TYPE_CHECKING:
    from .meta_state import ObservedState
    from .realm import RealmRouter
    from .session import Session

NO_SUCH_SESSION = "wamp.error.no_such_session"
NO_SUCH_SUBSCRIPTION = "wamp.error.no_such_subscription"
NO_SUCH_REGISTRATION = "wamp.error.no_such_registration"
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


class MetaApi:
    """Meta events and procedures for one realm."""

    def __init__(self, realm: RealmRouter) -> None:
        self.realm = realm
        self._caller: Session | None = None  # the session whose meta call is being answered
        self._pending: list[tuple[str, list[Any]]] = []
        self.procedures: dict[str, Callable[..., Any]] = {
            "wamp.session.count": self.session_count,
            "wamp.session.list": self.session_list,
            "wamp.session.get": self.session_get,
            "wamp.session.kill": self.session_kill,
            "wamp.session.kill_by_authid": self.kill_by_authid,
            "wamp.session.kill_by_authrole": self.kill_by_authrole,
            "wamp.subscription.list": lambda: self._list(self.observed.subscriptions),
            "wamp.subscription.lookup": self.subscription_lookup,
            "wamp.subscription.match": self.subscription_match,
            "wamp.subscription.get": self.subscription_get,
            "wamp.subscription.list_subscribers": lambda i: list(self._subscription(i).subscribers),
            "wamp.subscription.count_subscribers": lambda i: len(self._subscription(i).subscribers),
            "wamp.registration.list": lambda: self._list(self.observed.registrations),
            "wamp.registration.lookup": self.registration_lookup,
            "wamp.registration.match": self.registration_match,
            "wamp.registration.get": self.registration_get,
            "wamp.registration.list_callees": lambda i: list(self._registration(i).callees),
            "wamp.registration.count_callees": lambda i: len(self._registration(i).callees),
        }

    @property
    def observed(self) -> ObservedState:
        """The realm's routing state, as the meta wrapper sees it."""
        return self.realm.observed

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
        """Answer a CALL to a ``wamp.`` procedure."""
        kind = m.Call.MESSAGE_TYPE
        procedure = self.procedures.get(request.procedure)
        if procedure is None:
            text = f"no meta procedure {request.procedure!r}"
            caller.peer.send(
                m.Error(kind, request.request, "wamp.error.no_such_procedure", args=[text])
            )
            return
        cluster = self.realm.cluster
        if cluster is not None:
            self._call_cluster(cluster.meta.procedures[request.procedure], caller, request)
            return
        self._caller = caller
        try:
            result = procedure(*(request.args or ()), **(request.kwargs or {}))
        except MetaError as exc:
            caller.peer.send(m.Error(kind, request.request, exc.error, args=[str(exc)]))
            return
        except TypeError as exc:
            error = "wamp.error.invalid_argument"
            caller.peer.send(m.Error(kind, request.request, error, args=[str(exc)]))
            return
        caller.peer.send(m.Result(request.request, args=[result]))

    def _call_cluster(
        self, procedure: Callable[..., Awaitable[Any]], caller: Session, request: Message
    ) -> None:
        """Answer a meta CALL with the cluster-wide procedure (it awaits the registry and the
        other nodes)."""
        kind = m.Call.MESSAGE_TYPE
        try:
            answer = procedure(caller, *(request.args or ()), **(request.kwargs or {}))
        except TypeError as exc:
            error = "wamp.error.invalid_argument"
            caller.peer.send(m.Error(kind, request.request, error, args=[str(exc)]))
            return

        def done(result: Any, exc: BaseException | None) -> None:
            if exc is None:
                caller.peer.send(m.Result(request.request, args=[result]))
            elif isinstance(exc, MetaError):
                caller.peer.send(m.Error(kind, request.request, exc.error, args=[str(exc)]))
            else:
                text = f"the cluster did not answer: {exc!r}"
                caller.peer.send(m.Error(kind, request.request, UNAVAILABLE, args=[text]))

        self.realm.defer(answer, done)

    def _sessions(self, authroles: list[str] | None) -> list[Session]:
        sessions = self.realm.sessions.values()
        return [s for s in sessions if authroles is None or s.authrole in authroles]

    def session_count(self, authroles: list[str] | None = None) -> int:
        """How many sessions are joined (of the given roles)."""
        return len(self._sessions(authroles))

    def session_list(self, authroles: list[str] | None = None) -> list[int]:
        """The joined sessions' IDs (of the given roles)."""
        return [session.id for session in self._sessions(authroles)]

    def session_get(self, session_id: int) -> dict[str, Any]:
        """One session's details."""
        session = self.realm.sessions.get(session_id)
        if session is None:
            raise MetaError(NO_SUCH_SESSION, f"no session {session_id}")
        return session_info(session)

    def _kill(self, sessions: list[Session], reason: str | None, message: str | None) -> list[int]:
        killed = []
        for session in sessions:
            if session is not self._caller:  # a session cannot kill itself (leave instead)
                session.goodbye(reason or KILLED, message)
                killed.append(session.id)
        return killed

    def session_kill(
        self, session_id: int, reason: str | None = None, message: str | None = None
    ) -> None:
        """End one session with GOODBYE ``reason`` (default ``wamp.close.killed``)."""
        session = self.realm.sessions.get(session_id)
        if session is None or session is self._caller:
            raise MetaError(NO_SUCH_SESSION, f"no session {session_id} (other than the caller)")
        self._kill([session], reason, message)

    def kill_by_authid(
        self, authid: str, reason: str | None = None, message: str | None = None
    ) -> list[int]:
        """End every session of ``authid`` but the caller's; returns their IDs."""
        return self._kill(
            [s for s in self.realm.sessions.values() if s.authid == authid], reason, message
        )

    def kill_by_authrole(
        self, authrole: str, reason: str | None = None, message: str | None = None
    ) -> list[int]:
        """End every session of ``authrole`` but the caller's; returns their IDs."""
        return self._kill(
            [s for s in self.realm.sessions.values() if s.authrole == authrole], reason, message
        )

    @staticmethod
    def _list(items: dict[int, Any]) -> dict[str, list[int]]:
        listed: dict[str, list[int]] = {"exact": [], "prefix": [], "wildcard": []}
        for item in items.values():
            listed[item.match].append(item.id)
        return listed

    def _subscription(self, subscription_id: int) -> Any:
        subscription = self.observed.subscriptions.get(subscription_id)
        if subscription is None:
            raise MetaError(NO_SUCH_SUBSCRIPTION, f"no subscription {subscription_id}")
        return subscription

    def _registration(self, registration_id: int) -> Any:
        registration = self.observed.registrations.get(registration_id)
        if registration is None:
            raise MetaError(NO_SUCH_REGISTRATION, f"no registration {registration_id}")
        return registration

    def subscription_lookup(self, topic: str, options: dict[str, Any] | None = None) -> int | None:
        """The ID of the subscription on exactly ``(topic, match)``, or None."""
        match = (options or {}).get("match", "exact")
        found = [
            s.id for s in self.observed.subscriptions.values() if (s.uri, s.match) == (topic, match)
        ]
        return found[0] if found else None

    def subscription_match(self, topic: str) -> list[int] | None:
        """The IDs of the subscriptions an event on ``topic`` would reach, or None."""
        return [s.id for s in self.realm.state.subscriptions_matching(topic)] or None

    def subscription_get(self, subscription_id: int) -> dict[str, Any]:
        """One subscription's details."""
        return self.observed.subscription_details(self._subscription(subscription_id))

    def registration_lookup(
        self, procedure: str, options: dict[str, Any] | None = None
    ) -> int | None:
        """The ID of the registration on exactly ``(procedure, match)``, or None."""
        match = (options or {}).get("match", "exact")
        found = [
            r.id
            for r in self.observed.registrations.values()
            if (r.uri, r.match) == (procedure, match)
        ]
        return found[0] if found else None

    def registration_match(self, procedure: str) -> int | None:
        """The ID of the registration a call to ``procedure`` would go to, or None."""
        registration = self.realm.state.registration_for(procedure)
        return registration.id if registration is not None else None

    def registration_get(self, registration_id: int) -> dict[str, Any]:
        """One registration's details."""
        return self.observed.registration_details(self._registration(registration_id))
