"""A realm's routing state, behind one small interface.

The broker and the dealer never keep subscriptions, registrations or retained events themselves:
they ask a ``RoutingState``. ``LocalRoutingState`` keeps them in this process. A cluster-wide
implementation (the channel layer's registry capability, issue 11) replaces it without touching
the broker or the dealer: every method takes and returns plain data (IDs, URIs, session IDs), never
a session object, so each one maps onto a registry operation. Lookups on the routing path
(``subscriptions_matching``, ``registration_for``) are synchronous: a cluster-wide state answers
them from its local replica of the registry. ``register`` reports through a callback, because the
cluster must claim a ``single`` registration atomically before the callee hears REGISTERED.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from .filter import PublishFilter
from .ids import global_id
from .index import PatternIndex
from .uris import MatchPolicy, uri_matches

InvokePolicy = Literal["single", "roundrobin", "random", "first", "last"]
INVOKE_POLICIES: tuple[InvokePolicy, ...] = ("single", "roundrobin", "random", "first", "last")


@dataclass
class Subscription:
    """One topic pattern and the sessions subscribed to it (an ordered set of session IDs)."""

    id: int
    uri: str
    match: MatchPolicy
    subscribers: dict[int, None] = field(default_factory=dict)


@dataclass
class Registration:
    """One procedure pattern, its invocation policy and its callees in registration order."""

    id: int
    uri: str
    match: MatchPolicy
    invoke: InvokePolicy
    callees: list[int] = field(default_factory=list)
    next_callee: int = 0  # the round-robin cursor


@dataclass(frozen=True)
class RetainedEvent:
    """The last retained publication on a topic, replayed to new subscribers that ask for it."""

    topic: str
    publication: int
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    publisher: int | None = None
    publisher_authid: str | None = None
    publisher_authrole: str | None = None
    rules: PublishFilter | None = None  # who may receive it (plain sets of IDs and names)
    #: When it was published (seconds since the epoch; a cluster stamps it): of two retained
    #: events of one topic published on different nodes, a new subscriber gets the later.
    published: float = 0.0


class RegistrationRefused(Exception):
    """A REGISTER the state refuses; ``error`` is the WAMP error URI to answer with."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error


class RoutingState(Protocol):
    """Subscriptions, registrations and retained events of one realm (see the module docstring)."""

    def subscribe(self, session_id: int, topic: str, match: MatchPolicy) -> Subscription:
        """Add the session to the subscription for ``(topic, match)``, creating it if needed."""
        ...

    def unsubscribe(self, session_id: int, subscription_id: int) -> Subscription | None:
        """Remove the session from a subscription; None if it was not subscribed. A subscription
        left without subscribers is deleted."""
        ...

    def subscriptions_matching(self, topic: str) -> list[Subscription]:
        """Every subscription whose pattern matches ``topic``."""
        ...

    def register(
        self,
        session_id: int,
        procedure: str,
        match: MatchPolicy,
        invoke: InvokePolicy,
        done: Callable[[Registration | RegistrationRefused], None],
    ) -> None:
        """Add the session as a callee, atomically, and report the outcome to ``done``: at once
        here, after the cluster-wide claim in a registry-backed state (so the core stays
        sans-IO: a callback, not an await)."""
        ...

    def unregister(self, session_id: int, registration_id: int) -> Registration | None:
        """Remove the session as a callee; None if it was not one. An empty registration is
        deleted."""
        ...

    def registration_for(self, procedure: str) -> Registration | None:
        """The most specific registration matching ``procedure``."""
        ...

    def retain(self, event: RetainedEvent) -> None:
        """Keep ``event`` as its topic's retained event (bounded; the oldest topic goes first)."""
        ...

    def retained_for(self, topic: str, match: MatchPolicy) -> list[RetainedEvent]:
        """The retained events a new subscription on ``(topic, match)`` receives."""
        ...

    def drop_session(self, session_id: int) -> None:
        """Forget every subscription and registration of a session that left."""
        ...

    def is_empty(self) -> bool:
        """Whether no subscription, registration or session entry is left (retained events
        do not count)."""
        ...


class LocalRoutingState:
    """The in-process ``RoutingState``: pattern indexes plus per-session reverse maps."""

    def __init__(
        self,
        max_retained_events: int = 1000,
        subscription_id: Callable[[str, MatchPolicy], int] | None = None,
    ) -> None:
        self.max_retained_events = max_retained_events
        #: The ID a new subscription gets (a cluster derives it from the pattern, so that every
        #: node names one pattern alike); None: a random global-scope ID.
        self.subscription_id = subscription_id
        self._subscriptions = PatternIndex[Subscription]()
        self._subscriptions_by_id: dict[int, Subscription] = {}
        self._registrations = PatternIndex[Registration]()
        self._registrations_by_id: dict[int, Registration] = {}
        self._retained: OrderedDict[str, RetainedEvent] = OrderedDict()
        self._by_session: dict[int, tuple[set[int], set[int]]] = {}

    def _own(self, session_id: int) -> tuple[set[int], set[int]]:
        return self._by_session.setdefault(session_id, (set(), set()))

    def _disown(self, session_id: int, item: int, kind: int) -> None:
        owned = self._by_session.get(session_id)
        if owned is not None:
            owned[kind].discard(item)
            if not owned[0] and not owned[1]:
                del self._by_session[session_id]

    def subscribe(self, session_id: int, topic: str, match: MatchPolicy) -> Subscription:
        subscription = self._subscriptions.get(topic, match)
        if subscription is None:
            subscription = Subscription(self._new_subscription_id(topic, match), topic, match)
            self._subscriptions.add(topic, match, subscription)
            self._subscriptions_by_id[subscription.id] = subscription
        subscription.subscribers[session_id] = None
        self._own(session_id)[0].add(subscription.id)
        return subscription

    def _new_subscription_id(self, topic: str, match: MatchPolicy) -> int:
        if self.subscription_id is not None:
            derived = self.subscription_id(topic, match)
            if derived not in self._subscriptions_by_id:
                return derived
            # Two patterns with one 53-bit hash (about never): this one stays node-local.
        return global_id()

    def unsubscribe(self, session_id: int, subscription_id: int) -> Subscription | None:
        subscription = self._subscriptions_by_id.get(subscription_id)
        if subscription is None or session_id not in subscription.subscribers:
            return None
        del subscription.subscribers[session_id]
        self._disown(session_id, subscription_id, 0)
        if not subscription.subscribers:
            self._subscriptions.remove(subscription.uri, subscription.match)
            del self._subscriptions_by_id[subscription_id]
        return subscription

    def subscriptions_matching(self, topic: str) -> list[Subscription]:
        return self._subscriptions.matching(topic)

    def register(
        self,
        session_id: int,
        procedure: str,
        match: MatchPolicy,
        invoke: InvokePolicy,
        done: Callable[[Registration | RegistrationRefused], None],
    ) -> None:
        try:
            done(self.register_now(session_id, procedure, match, invoke))
        except RegistrationRefused as refused:
            done(refused)

    def register_now(
        self,
        session_id: int,
        procedure: str,
        match: MatchPolicy,
        invoke: InvokePolicy,
        registration_id: int | None = None,
    ) -> Registration:
        """``register`` without the callback: the Registration, or RegistrationRefused. A
        cluster passes the ``registration_id`` the whole cluster uses for the procedure."""
        registration = self._registrations.get(procedure, match)
        if registration is None:
            registration = Registration(registration_id or global_id(), procedure, match, invoke)
            self._registrations.add(procedure, match, registration)
            self._registrations_by_id[registration.id] = registration
        elif registration.invoke == "single" or invoke == "single":
            raise RegistrationRefused(
                "wamp.error.procedure_already_exists", f"{procedure!r} is already registered"
            )
        elif registration.invoke != invoke:
            raise RegistrationRefused(
                "wamp.error.procedure_exists_with_different_invocation_policy",
                f"{procedure!r} is registered with invoke={registration.invoke!r}",
            )
        elif session_id in registration.callees:
            raise RegistrationRefused(
                "wamp.error.procedure_already_exists",
                f"this session already registered {procedure!r}",
            )
        registration.callees.append(session_id)
        self._own(session_id)[1].add(registration.id)
        return registration

    def unregister(self, session_id: int, registration_id: int) -> Registration | None:
        registration = self._registrations_by_id.get(registration_id)
        if registration is None or session_id not in registration.callees:
            return None
        registration.callees.remove(session_id)
        self._disown(session_id, registration_id, 1)
        if not registration.callees:
            self._registrations.remove(registration.uri, registration.match)
            del self._registrations_by_id[registration_id]
        return registration

    def registration_for(self, procedure: str) -> Registration | None:
        return self._registrations.best(procedure)

    def subscription(self, topic: str, match: MatchPolicy) -> Subscription | None:
        """The subscription of exactly ``(topic, match)``, if any."""
        return self._subscriptions.get(topic, match)

    def subscription_id_for(self, topic: str, match: MatchPolicy) -> int:
        """The ID of the subscription to ``(topic, match)``: the held one's, else the one it
        will get when IDs are derived from patterns; 0 when that cannot be told yet."""
        held = self._subscriptions.get(topic, match)
        if held is not None:
            return held.id
        if self.subscription_id is None:
            return 0
        derived = self.subscription_id(topic, match)
        return 0 if derived in self._subscriptions_by_id else derived

    def registration(self, procedure: str, match: MatchPolicy) -> Registration | None:
        """The registration of exactly ``(procedure, match)``, if any."""
        return self._registrations.get(procedure, match)

    def held_by(self, session_id: int) -> tuple[list[int], list[int]]:
        """The subscription and registration IDs ``session_id`` holds."""
        subscriptions, registrations = self._by_session.get(session_id, (set(), set()))
        return list(subscriptions), list(registrations)

    def retain(self, event: RetainedEvent) -> None:
        self._retained.pop(event.topic, None)
        self._retained[event.topic] = event
        while len(self._retained) > self.max_retained_events:
            self._retained.popitem(last=False)

    def retained_for(self, topic: str, match: MatchPolicy) -> list[RetainedEvent]:
        if match == "exact":
            event = self._retained.get(topic)
            return [event] if event is not None else []
        # Bounded by max_retained_events, and only on a subscribe that asks for retained events.
        return [e for t, e in self._retained.items() if uri_matches(topic, match, t)]

    def drop_session(self, session_id: int) -> None:
        subscriptions, registrations = self.held_by(session_id)
        for subscription_id in subscriptions:
            self.unsubscribe(session_id, subscription_id)
        for registration_id in registrations:
            self.unregister(session_id, registration_id)

    def is_empty(self) -> bool:
        return not (self._subscriptions_by_id or self._registrations_by_id or self._by_session)
