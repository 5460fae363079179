"""A realm: its configuration (``Realm``) and its running router (``RealmRouter``).

``RealmRouter`` owns the realm's sessions in this process, its broker, its dealer and its
``RoutingState``; it is what a session attaches to after WELCOME and detaches from when it leaves.
Roles (``roles.py``, checked by ``authorizer.py``) and authentication methods (``auth/``) hang off
``Realm``. A realm declared without roles or authentication is open: anonymous sessions may do
anything (the behaviour before roles existed, kept so ``Realm("realm1")`` still works). Declaring
authentication requires declaring roles, so a realm with logins never silently lets everyone in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from autobahn.wamp import role as _role

from .auth.base import Authenticator
from .auth.ratelimit import AuthFailures
from .authorizer import RealmAuthorizer
from .broker import Broker
from .dealer import Dealer
from .internal import InternalCaller
from .meta import MetaApi, session_info
from .meta_state import ObservedState
from .roles import Role
from .session import Session
from .settings import AuthLimits, Limits
from .state import LocalRoutingState, RoutingState
from .uris import UriCheck

if TYPE_CHECKING:
    from .cluster import ClusterRealm


@dataclass(frozen=True)
class Realm:
    """A realm's configuration: its name and policies. ``Router(realms=[Realm("realm1")])``."""

    name: str
    #: "strict" (lower-case letters, digits, underscores) or "loose" (anything but whitespace,
    #: '.' and '#') URI components for topics and procedures.
    uri_check: UriCheck = "strict"
    #: Disclose every publisher to subscribers, whether or not the publisher asked (disclose_me).
    disclose_publisher: bool = False
    #: Disclose every caller to callees, whether or not the caller asked (disclose_me).
    disclose_caller: bool = False
    #: The realm's roles; None (the default) is an open realm where anyone may do anything.
    roles: Sequence[Role] | None = None
    #: Authentication methods (``consumers.wamp.auth``); None admits anonymous sessions only,
    #: with the role "anonymous".
    auth: Sequence[Authenticator] | None = None
    #: Brute-force defences of authentication.
    auth_limits: AuthLimits = field(default_factory=AuthLimits)

    def __post_init__(self) -> None:
        if self.uri_check not in ("strict", "loose"):
            raise ValueError(f"uri_check must be 'strict' or 'loose', not {self.uri_check!r}")
        if self.roles is not None:
            object.__setattr__(self, "roles", tuple(self.roles))
        if self.auth is not None:
            object.__setattr__(self, "auth", tuple(self.auth))
            methods = [a.method for a in self.auth]
            if len(set(methods)) != len(methods):
                raise ValueError(
                    f"realm {self.name!r}: two authenticators for one method: {methods}"
                )
            if self.roles is None:
                raise ValueError(
                    f"realm {self.name!r} has authentication but no roles: declare"
                    " roles=[Role(...)]"
                    " (Role.trusted('name') is a role that may do anything)"
                )


class TimerHandle(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None:
        """Do not run the callback (nothing happens if it already ran)."""
        ...


class Timers(Protocol):
    """The clock the dealer needs for call timeouts, injected so the core stays sans-IO."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` after ``delay`` seconds."""
        ...


def router_features() -> dict[str, Any]:
    """The roles and features announced in WELCOME."""
    roles: Any = _role  # autobahn's role classes are untyped
    broker = roles.RoleBrokerFeatures(
        publisher_identification=True,
        pattern_based_subscription=True,
        subscriber_blackwhite_listing=True,
        publisher_exclusion=True,
        event_retention=True,
    )
    dealer = roles.RoleDealerFeatures(
        caller_identification=True,
        pattern_based_registration=True,
        shared_registration=True,
        call_timeout=True,
        call_canceling=True,
        progressive_call_results=True,
    )
    return {"broker": broker, "dealer": dealer}


class RealmRouter:
    """One realm at run time: sessions in this process, broker, dealer and routing state."""

    def __init__(
        self,
        config: Realm,
        limits: Limits,
        timers: Timers,
        state: RoutingState | None = None,
        cluster: ClusterRealm | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.limits = limits
        self.timers = timers
        self.meta = MetaApi(self)
        #: The realm's link to the other router processes (None: this process alone); it is
        #: also the routing state then.
        self.cluster = cluster
        inner = cluster or state or LocalRoutingState(limits.max_retained_events)
        #: The routing state, wrapped so that changes fire the meta events (``meta_state``).
        lifecycle = cluster.sessions.lifecycle if cluster is not None else None
        self.observed = ObservedState(inner, self.meta, lifecycle)
        self.state: RoutingState = self.observed
        self.sessions: dict[int, Session] = {}
        self.features = router_features()
        self.broker = Broker(self)
        self.dealer = Dealer(self)
        self.authorizer = RealmAuthorizer(self)
        self.authenticators: dict[str, Authenticator] = {a.method: a for a in config.auth or ()}
        auth_limits = config.auth_limits
        self.auth_failures = AuthFailures(
            auth_limits.max_failures_per_authid,
            auth_limits.max_failures_per_address,
            auth_limits.failure_window,
        )
        self._internal: InternalCaller | None = None
        self._deferred: set[asyncio.Future[Any]] = set()

    def defer(
        self, awaitable: Awaitable[Any], done: Callable[[Any, BaseException | None], None]
    ) -> None:
        """Await ``awaitable`` in the running loop, then call ``done(result, error)`` (for async
        authenticators and authorizers; the sans-IO core itself never awaits)."""
        future = asyncio.ensure_future(awaitable)
        self._deferred.add(future)

        def finished(future: asyncio.Future[Any]) -> None:
            self._deferred.discard(future)
            if future.cancelled():
                done(None, asyncio.CancelledError())
            elif future.exception() is not None:
                done(None, future.exception())
            else:
                done(future.result(), None)

        future.add_done_callback(finished)

    def internal_call(self, procedure: str, args: list[Any]) -> Awaitable[Any]:
        """Call a procedure of this realm as the router itself (for WAMP-procedure
        authenticators and authorizers); resolves to the result's first argument."""
        if self._internal is None or not self._internal.attached:
            self._internal = InternalCaller(self)
        return self._internal.call(procedure, args)

    def attach(self, session: Session) -> None:
        """A session joined (after WELCOME)."""
        self.sessions[session.id] = session
        if self.cluster is not None:
            self.cluster.session_joined(session.id, session_info(session))
        self.meta.joined(session)

    def detach(self, session: Session) -> None:
        """A session left: fail or interrupt its calls, then forget its routing state."""
        self.authorizer.forget(session.id)
        self.dealer.session_left(session)
        self.state.drop_session(session.id)
        session.subscriptions.clear()
        session.registrations.clear()
        self.sessions.pop(session.id, None)
        self.meta.left(session)

    def is_idle(self) -> bool:
        """Whether no session, subscription, registration or call is left (retained events
        aside): what a realm looks like once every client has gone."""
        return not self.sessions and self.state.is_empty() and not self.dealer.pending
