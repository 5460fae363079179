"""A ``RoutingState`` wrapper that reports subscription and registration changes (meta events)
and keeps what the meta procedures list.

It wraps whichever state the realm uses and speaks only the ``RoutingState`` interface to it, so
the meta API works the same on the in-process state and on a registry-backed one: the events fire
in the process where the session acted, and ``subscriptions``/``registrations`` hold the objects
the state returned (a registry-backed state that keeps them current makes the lists cluster-wide).

In a cluster, ``on_create``/``on_delete`` must fire once for the whole cluster, which only the
registry can tell: the wrapper then hands each change to ``cluster_lifecycle.ClusterLifecycle``
(``lifecycle``), which claims or releases it and fires the events after.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, Protocol

from .state import (
    InvokePolicy,
    Registration,
    RegistrationRefused,
    RetainedEvent,
    RoutingState,
    Subscription,
)
from .uris import MatchPolicy


class MetaEvents(Protocol):
    """Where the wrapper reports changes (``meta.MetaApi``)."""

    def emit(self, topic: str, args: list[Any]) -> None:
        """Publish a meta event on ``topic`` (queued until ``flush``)."""
        ...

    def flush(self) -> None:
        """Deliver the queued meta events."""
        ...


class Lifecycle(Protocol):
    """Where a cluster realm's wrapper hands the changes (``cluster_lifecycle.py``)."""

    def added(self, session_id: int, item: Subscription | Registration) -> None:
        """A session subscribed or registered."""
        ...

    def removed(self, session_id: int, item: Subscription | Registration) -> None:
        """A session unsubscribed or unregistered."""
        ...


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class ObservedState:
    """``RoutingState`` that emits meta events (see the module docstring)."""

    def __init__(
        self, inner: RoutingState, events: MetaEvents, lifecycle: Lifecycle | None = None
    ) -> None:
        self.inner = inner
        self.events = events
        self.lifecycle = lifecycle
        self.subscriptions: dict[int, Subscription] = {}
        self.registrations: dict[int, Registration] = {}
        self.created: dict[int, str] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # anything beyond the interface (tests, diagnostics)

    def subscribe(self, session_id: int, topic: str, match: MatchPolicy) -> Subscription:
        subscription = self.inner.subscribe(session_id, topic, match)
        new = subscription.id not in self.subscriptions
        if new:
            self.subscriptions[subscription.id] = subscription
            self.created[subscription.id] = _now()
        if self.lifecycle is not None:
            self.lifecycle.added(session_id, subscription)
            return subscription
        if new:
            self.events.emit(
                "wamp.subscription.on_create", [session_id, self.subscription_details(subscription)]
            )
        self.events.emit("wamp.subscription.on_subscribe", [session_id, subscription.id])
        return subscription

    def unsubscribe(self, session_id: int, subscription_id: int) -> Subscription | None:
        subscription = self.inner.unsubscribe(session_id, subscription_id)
        if subscription is None:
            return None
        if not subscription.subscribers:
            self.subscriptions.pop(subscription_id, None)
            self.created.pop(subscription_id, None)
        if self.lifecycle is not None:
            self.lifecycle.removed(session_id, subscription)
            return subscription
        self.events.emit("wamp.subscription.on_unsubscribe", [session_id, subscription_id])
        if not subscription.subscribers:
            self.events.emit("wamp.subscription.on_delete", [session_id, subscription_id])
        return subscription

    def subscriptions_matching(self, topic: str) -> list[Subscription]:
        return self.inner.subscriptions_matching(topic)

    def register(
        self,
        session_id: int,
        procedure: str,
        match: MatchPolicy,
        invoke: InvokePolicy,
        done: Callable[[Registration | RegistrationRefused], None],
    ) -> None:
        def observed(outcome: Registration | RegistrationRefused) -> None:
            done(outcome)  # REGISTERED first: the events may reach the new callee itself
            # (a registration the dealer undid at once, its session gone, is not announced)
            if isinstance(outcome, Registration) and session_id in outcome.callees:
                self._registered(session_id, outcome)
            self.events.flush()

        self.inner.register(session_id, procedure, match, invoke, observed)

    def _registered(self, session_id: int, registration: Registration) -> None:
        new = registration.id not in self.registrations
        if new:
            self.registrations[registration.id] = registration
            self.created[registration.id] = _now()
        if self.lifecycle is not None:
            self.lifecycle.added(session_id, registration)
            return
        if new:
            details = self.registration_details(registration)
            self.events.emit("wamp.registration.on_create", [session_id, details])
        self.events.emit("wamp.registration.on_register", [session_id, registration.id])

    def unregister(self, session_id: int, registration_id: int) -> Registration | None:
        registration = self.inner.unregister(session_id, registration_id)
        if registration is None or registration_id not in self.registrations:
            return registration
        if not registration.callees:
            self.registrations.pop(registration_id, None)
            self.created.pop(registration_id, None)
        if self.lifecycle is not None:
            self.lifecycle.removed(session_id, registration)
            return registration
        self.events.emit("wamp.registration.on_unregister", [session_id, registration_id])
        if not registration.callees:
            self.events.emit("wamp.registration.on_delete", [session_id, registration_id])
        return registration

    def registration_for(self, procedure: str) -> Registration | None:
        return self.inner.registration_for(procedure)

    def retain(self, event: RetainedEvent) -> None:
        self.inner.retain(event)

    def retained_for(self, topic: str, match: MatchPolicy) -> list[RetainedEvent]:
        return self.inner.retained_for(topic, match)

    def drop_session(self, session_id: int) -> None:
        # Through our own unsubscribe/unregister first, so the session's leaving fires the
        # same events an explicit UNSUBSCRIBE/UNREGISTER would; the inner state then forgets
        # anything left.
        for subscription in list(self.subscriptions.values()):
            if session_id in subscription.subscribers:
                self.unsubscribe(session_id, subscription.id)
        for registration in list(self.registrations.values()):
            if session_id in registration.callees:
                self.unregister(session_id, registration.id)
        self.inner.drop_session(session_id)

    def is_empty(self) -> bool:
        return self.inner.is_empty()

    def subscription_details(self, subscription: Subscription) -> dict[str, Any]:
        """A subscription as ``wamp.subscription.get`` and ``on_create`` describe it."""
        return {
            "id": subscription.id,
            "created": self.created.get(subscription.id),
            "uri": subscription.uri,
            "match": subscription.match,
        }

    def registration_details(self, registration: Registration) -> dict[str, Any]:
        """A registration as ``wamp.registration.get`` and ``on_create`` describe it."""
        return {
            "id": registration.id,
            "created": self.created.get(registration.id),
            "uri": registration.uri,
            "match": registration.match,
            "invoke": registration.invoke,
        }
