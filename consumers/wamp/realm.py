"""A realm: its configuration (``Realm``) and its running router (``RealmRouter``).

``RealmRouter`` owns the realm's sessions in this process, its broker, its dealer and its
``RoutingState``; it is what a session attaches to after WELCOME and detaches from when it leaves.
Roles and authentication (issue 12) will hang off ``Realm``; today every session is anonymous and
may do anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from autobahn.wamp import role as _role

from .broker import Broker
from .dealer import Dealer
from .session import Session
from .settings import Limits
from .state import LocalRoutingState, RoutingState
from .uris import UriCheck


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

    def __post_init__(self) -> None:
        if self.uri_check not in ("strict", "loose"):
            raise ValueError(f"uri_check must be 'strict' or 'loose', not {self.uri_check!r}")


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
    ) -> None:
        self.config = config
        self.name = config.name
        self.limits = limits
        self.timers = timers
        self.state: RoutingState = state or LocalRoutingState(limits.max_retained_events)
        self.sessions: dict[int, Session] = {}
        self.features = router_features()
        self.broker = Broker(self)
        self.dealer = Dealer(self)

    def attach(self, session: Session) -> None:
        """A session joined (after WELCOME)."""
        self.sessions[session.id] = session

    def detach(self, session: Session) -> None:
        """A session left: fail or interrupt its calls, then forget its routing state."""
        self.dealer.session_left(session)
        self.state.drop_session(session.id)
        session.subscriptions.clear()
        session.registrations.clear()
        self.sessions.pop(session.id, None)

    def is_idle(self) -> bool:
        """Whether no session, subscription, registration or call is left (retained events
        aside): what a realm looks like once every client has gone."""
        return not self.sessions and self.state.is_empty() and not self.dealer.pending
