"""The sans-IO WAMP session: messages in, messages out, and the session's state machine.

A transport (the WebSocket endpoint, or an in-process component) owns one ``Session`` and feeds it
each message it decodes; the session answers and routes through the realm, and everything it sends
goes through the injected ``Peer``. No sockets, clocks or tasks here: the dealer's call timeouts go
through the realm's injected ``Timers``.

States (the spec's session lifecycle): NEW --HELLO--> ESTABLISHED --GOODBYE--> CLOSED, with
CLOSING while a router-initiated GOODBYE waits for the client's reply. A message that is malformed
or not allowed in the current state aborts the session with ``wamp.error.protocol_violation``.
Ordering: everything a session sends arrives in order; messages from one session are routed in the
order it sent them (the realm handles them one at a time, in the event loop).
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .codec import Message
from .codec import messages as m
from .ids import MAX_ID, SessionScopeIds, global_id

if TYPE_CHECKING:
    from .dealer import PendingCall
    from .realm import RealmRouter

logger = logging.getLogger("consumers.wamp")

PROTOCOL_VIOLATION = "wamp.error.protocol_violation"


class Peer(Protocol):
    """Where a session's outgoing messages go: a WebSocket, or an in-process component."""

    def send(self, message: Message) -> None:
        """Queue ``message`` for the client (never blocks; the transport writes it later)."""
        ...

    def close(self) -> None:
        """The session is over: close the transport once queued messages are written."""
        ...


class RealmLookup(Protocol):
    """What a session needs of the router: the realm a HELLO names."""

    def realm(self, name: str) -> RealmRouter | None:
        """The realm called ``name``, or None."""
        ...


class State(enum.Enum):
    """The session's lifecycle state."""

    NEW = "new"
    ESTABLISHED = "established"
    CLOSING = "closing"
    CLOSED = "closed"


class ProtocolViolation(Exception):
    """A message the session cannot accept; the session aborts with protocol_violation."""


# Messages only a router sends: a client that sends one violates the protocol.
_ROUTER_ONLY = (
    m.Welcome,
    m.Challenge,
    m.Published,
    m.Subscribed,
    m.Unsubscribed,
    m.Event,
    m.Result,
    m.Registered,
    m.Unregistered,
    m.Invocation,
    m.Interrupt,
)


class Session:
    """One WAMP session, from HELLO to its end, independent of any transport."""

    def __init__(
        self,
        router: RealmLookup,
        peer: Peer,
        *,
        authid: str | None = None,
        authrole: str = "anonymous",
        authmethod: str = "anonymous",
    ) -> None:
        self.router = router
        self.peer = peer
        self.id = 0
        self.state = State.NEW
        self.realm: RealmRouter | None = None
        self.authid = authid
        self.authrole = authrole
        self.authmethod = authmethod
        self.roles: dict[str, Any] = {}
        self.request_ids = SessionScopeIds()  # the router's requests towards this peer
        self.subscriptions: set[int] = set()
        self.registrations: set[int] = set()
        self.pending_calls: dict[int, PendingCall] = {}  # by the caller's request ID
        self.invocations: dict[int, PendingCall] = {}  # by INVOCATION request ID, as callee

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.state.value} authid={self.authid!r}>"

    def supports(self, role: str, feature: str) -> bool:
        """Whether the client announced ``feature`` for ``role`` in its HELLO."""
        features = self.roles.get(role)
        return features is not None and getattr(features, feature, None) is True

    # --- messages in --------------------------------------------------------------------------

    def receive(self, message: Message, raw: list[Any] | None = None) -> None:
        """Handle one message from the client (``raw`` is its decoded list, when there is one)."""
        try:
            if self.state is State.ESTABLISHED:
                self._established(message, raw)
            elif self.state is State.NEW:
                self._new(message)
            elif self.state is State.CLOSING and isinstance(message, m.Goodbye | m.Abort):
                self._end()
            # CLOSING ignores everything else (the spec); CLOSED ignores everything.
        except ProtocolViolation as exc:
            self.protocol_violation(str(exc))

    def receive_malformed(self, reason: str) -> None:
        """The transport could not decode a message: abort the session."""
        self.protocol_violation(reason)

    def _new(self, message: Message) -> None:
        if isinstance(message, m.Abort):
            self._end()
        elif not isinstance(message, m.Hello):
            raise ProtocolViolation(f"{type(message).__name__} before HELLO")
        else:
            self._hello(message)

    def _hello(self, hello: Message) -> None:
        realm = self.router.realm(hello.realm)
        if realm is None:
            self.peer.send(
                m.Abort("wamp.error.no_such_realm", f"no realm {hello.realm!r} on this router")
            )
            self._end()
            return
        self.id = global_id()
        self.roles = dict(hello.roles)
        # Authentication (issue 12) hooks in here: a CHALLENGE/AUTHENTICATE round between HELLO
        # and WELCOME that sets authid, authrole and authmethod. Today: anonymous.
        if self.authid is None:
            # Anonymous: the router picks the authid (a client's claimed one is not trusted).
            self.authid = "anonymous-" + secrets.token_hex(6)
        self.realm = realm
        self.state = State.ESTABLISHED
        realm.attach(self)
        self.peer.send(
            m.Welcome(
                self.id,
                realm.features,
                realm=realm.name,
                authid=self.authid,
                authrole=self.authrole,
                authmethod=self.authmethod,
                authprovider="static",
            )
        )

    def _established(self, message: Message, raw: list[Any] | None) -> None:
        realm = self.realm
        assert realm is not None
        kind = type(message)
        request = getattr(message, "request", None)
        if request is not None and not 1 <= request <= MAX_ID:  # the spec's ID range
            raise ProtocolViolation(f"request ID {request} is outside 1..2^53")
        # The hot paths first: a publish or a call costs one type test.
        if kind is m.Publish:
            realm.broker.publish(self, message, raw)
        elif kind is m.Call:
            realm.dealer.call(self, message, raw)
        elif kind is m.Yield:
            realm.dealer.yield_(self, message)
        else:
            self._established_other(realm, kind, message)

    def _established_other(self, realm: RealmRouter, kind: type, message: Message) -> None:
        routes: dict[type, Callable[[Session, Any], None]] = {
            m.Subscribe: realm.broker.subscribe,
            m.Unsubscribe: realm.broker.unsubscribe,
            m.Register: realm.dealer.register,
            m.Unregister: realm.dealer.unregister,
            m.Cancel: realm.dealer.cancel,
        }
        route = routes.get(kind)
        if route is not None:
            route(self, message)
        elif kind is m.Error:
            if message.request_type != m.Invocation.MESSAGE_TYPE:
                raise ProtocolViolation("ERROR is only valid in reply to an INVOCATION")
            realm.dealer.error(self, message)
        elif kind is m.Goodbye:
            self.peer.send(m.Goodbye("wamp.close.goodbye_and_out"))
            self._end()
        elif kind is m.Abort:
            self._end()
        elif kind is m.Hello:
            raise ProtocolViolation("HELLO on an established session")
        elif issubclass(kind, _ROUTER_ONLY):
            raise ProtocolViolation(f"{kind.__name__} is sent by routers, not clients")
        else:
            raise ProtocolViolation(f"{kind.__name__} is not supported by this router")

    # --- endings ------------------------------------------------------------------------------

    def protocol_violation(self, reason: str) -> None:
        """Abort the session with ``wamp.error.protocol_violation`` and a log line."""
        if self.state is State.CLOSED:
            return
        logger.warning("WAMP session %s aborted: protocol violation: %s", self.id, reason)
        self.peer.send(m.Abort(PROTOCOL_VIOLATION, reason))
        self._end()

    def goodbye(self, reason: str = "wamp.close.system_shutdown", text: str | None = None) -> None:
        """Router-initiated close: send GOODBYE, leave the realm and wait for the client's reply."""
        if self.state is not State.ESTABLISHED:
            return
        self.peer.send(m.Goodbye(reason, text))
        self._leave()
        self.state = State.CLOSING

    def lost(self) -> None:
        """The transport is gone (closed, reset, killed): leave without a word."""
        self._leave()
        self.state = State.CLOSED

    def _end(self) -> None:
        self._leave()
        self.state = State.CLOSED
        self.peer.close()

    def _leave(self) -> None:
        if self.realm is not None and self.state is State.ESTABLISHED:
            self.realm.detach(self)
