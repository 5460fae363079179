"""The sans-IO WAMP session: messages in, messages out, and the session's state machine.

A transport (the WebSocket endpoint, or an in-process component) owns one ``Session`` and feeds it
each message it decodes; the session answers and routes through the realm, and everything it sends
goes through the injected ``Peer``. No sockets, clocks or tasks here: the dealer's call timeouts go
through the realm's injected ``Timers``.

States (the spec's session lifecycle): NEW --HELLO--> ESTABLISHED --GOODBYE--> CLOSED, with
AUTHENTICATING between HELLO and WELCOME while an authentication method runs (``auth/handshake.py``:
CHALLENGE, AUTHENTICATE, or an async authenticator) and CLOSING while a router-initiated GOODBYE
waits for the client's reply. PUBLISH, SUBSCRIBE, CALL and REGISTER pass the realm's authorizer
first (``authorizer.py``); while a dynamic authorizer answers, the session's later messages wait
behind it, so they are still routed in order. A message that is malformed
or not allowed in the current state aborts the session with ``wamp.error.protocol_violation``.
Ordering: everything a session sends arrives in order; messages from one session are routed in the
order it sent them (the realm handles them one at a time, in the event loop).
"""

from __future__ import annotations

import enum
import logging
import secrets
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .auth.base import Accept, HelloInfo, TransportInfo
from .auth.handshake import Handshake
from .authorizer import NOT_AUTHORIZED, log_refusal
from .codec import Message
from .codec import messages as m
from .ids import MAX_ID, SessionScopeIds, global_id
from .roles import Action, Decision

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
    AUTHENTICATING = "authenticating"
    ESTABLISHED = "established"
    CLOSING = "closing"
    CLOSED = "closed"


class ProtocolViolation(Exception):
    """A message the session cannot accept; the session aborts with protocol_violation."""


# The actions the authorizer checks, and where each message keeps its URI.
_GUARDED: dict[type, tuple[Action, str]] = {
    m.Publish: ("publish", "topic"),
    m.Subscribe: ("subscribe", "topic"),
    m.Call: ("call", "procedure"),
    m.Register: ("register", "procedure"),
}

_STOP: Any = object()  # a guarded message that is not routed now

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
        transport: TransportInfo | None = None,
    ) -> None:
        self.router = router
        self.peer = peer
        self.id = 0
        self.state = State.NEW
        self.realm: RealmRouter | None = None
        self.authid = authid
        self.authrole = authrole
        self.authmethod = authmethod
        self.authprovider = "static"
        self.authextra: dict[str, Any] | None = None
        #: A session created with an identity is the router's own (in-process): no handshake.
        self.preauthenticated = authid is not None
        self.transport = transport or TransportInfo()
        self.handshake: Handshake | None = None
        self._held: deque[tuple[Message, list[Any] | None]] | None = None  # behind an authorizer
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
            elif self.state is State.AUTHENTICATING:
                self._authenticating(message)
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
        self.realm = realm
        if self.preauthenticated or realm.config.auth is None:
            # In-process sessions come with their identity; a realm without authentication
            # admits anonymous sessions, whose authid the router picks (a claimed one is not
            # trusted).
            authid = self.authid or "anonymous-" + secrets.token_hex(6)
            self.welcome(Accept(authid, self.authrole, self.authmethod))
            return
        self.state = State.AUTHENTICATING
        info = HelloInfo(
            realm.name,
            hello.authid,
            dict(hello.authextra or {}),
            self.transport,
            self.id,
            realm.internal_call,
        )
        self.handshake = Handshake(self, realm, info, list(hello.authmethods or ["anonymous"]))
        self.handshake.begin()

    def _authenticating(self, message: Message) -> None:
        handshake = self.handshake
        assert handshake is not None
        if isinstance(message, m.Abort):
            self._end()
        elif not isinstance(message, m.Authenticate):
            raise ProtocolViolation(f"{type(message).__name__} before WELCOME")
        elif not handshake.authenticate(message.signature, dict(message.extra or {})):
            raise ProtocolViolation("AUTHENTICATE without a CHALLENGE")

    @property
    def authenticating(self) -> bool:
        """Whether the session is between HELLO and WELCOME."""
        return self.state in (State.NEW, State.AUTHENTICATING) and self.realm is not None

    def challenge(self, method: str, extra: dict[str, Any]) -> None:
        """Send CHALLENGE (from the handshake)."""
        self.peer.send(m.Challenge(method, extra))

    def welcome(self, identity: Accept) -> None:
        """Authentication succeeded: take the identity, join the realm, send WELCOME."""
        realm = self.realm
        assert realm is not None
        self.handshake = None
        self.authid = identity.authid
        self.authrole = identity.authrole
        self.authmethod = identity.authmethod
        self.authprovider = identity.authprovider
        self.authextra = identity.authextra
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
                authprovider=self.authprovider,
                authextra=self.authextra,
            )
        )

    def abort(self, reason: str, message: str) -> None:
        """Authentication failed: ABORT and close (the session never joined)."""
        self.peer.send(m.Abort(reason, message))
        self.state = State.CLOSED
        self.peer.close()

    # --- authorization ------------------------------------------------------------------------

    def _guard(self, realm: RealmRouter, message: Message, raw: list[Any] | None) -> Any:
        """The raw message to route with, or ``_STOP`` when it was refused or must wait."""
        action, field = _GUARDED[type(message)]
        uri = getattr(message, field)
        decision = realm.authorizer.authorize(
            self, uri, action, lambda later: self._decided(later, message, raw)
        )
        if decision is None:
            self._held = deque()  # later messages wait behind this one
            return _STOP
        return self._apply(decision, action, uri, message, raw)

    def _apply(
        self, decision: Decision, action: str, uri: str, message: Message, raw: list[Any] | None
    ) -> Any:
        if not decision.allow:
            log_refusal(self, action, uri)
            if not isinstance(message, m.Publish) or message.acknowledge:
                text = f"{self.authrole!r} may not {action} {uri!r}"
                self.peer.send(
                    m.Error(message.MESSAGE_TYPE, message.request, NOT_AUTHORIZED, args=[text])
                )
            return _STOP
        if decision.disclose and isinstance(message, m.Publish | m.Call):
            # The broker and the dealer read disclosure from the message's options; a rule that
            # discloses reads as if the client had asked (disclose_me).
            options = raw[2] if raw and len(raw) > 2 and isinstance(raw[2], dict) else {}
            return [message.MESSAGE_TYPE, message.request, {**options, "disclose_me": True}]
        return raw

    def _decided(self, decision: Decision, message: Message, raw: list[Any] | None) -> None:
        """A dynamic authorizer answered: route (or refuse) the message, then the held ones."""
        realm = self.realm
        if self.state is not State.ESTABLISHED or realm is None:
            return
        try:
            action, field = _GUARDED[type(message)]
            routed = self._apply(decision, action, getattr(message, field), message, raw)
            if routed is not _STOP:
                self._route(realm, type(message), message, routed)
            held, self._held = self._held or deque(), None
            while held and self.state is State.ESTABLISHED:
                next_message, next_raw = held.popleft()
                self._established(next_message, next_raw)
                if self._held is not None:  # waiting again: the rest stays behind, in order
                    self._held.extend(held)
                    return
        except ProtocolViolation as exc:
            self.protocol_violation(str(exc))

    def _established(self, message: Message, raw: list[Any] | None) -> None:
        realm = self.realm
        assert realm is not None
        if self._held is not None:
            if len(self._held) >= realm.limits.max_outgoing_queue:  # bounded, like a send queue
                raise ProtocolViolation("too many messages while an authorizer decides")
            self._held.append((message, raw))
            return
        kind = type(message)
        request = getattr(message, "request", None)
        if request is not None and not 1 <= request <= MAX_ID:  # the spec's ID range
            raise ProtocolViolation(f"request ID {request} is outside 1..2^53")
        if kind in _GUARDED and not realm.authorizer.open:
            raw = self._guard(realm, message, raw)
            if raw is _STOP:
                return
        self._route(realm, kind, message, raw)

    def _route(self, realm: RealmRouter, kind: type, message: Message, raw: Any) -> None:
        # The hot paths first: a publish or a call costs one type test.
        if kind is m.Publish:
            realm.broker.publish(self, message, raw)
        elif kind is m.Call:
            if message.procedure.startswith("wamp."):
                realm.meta.call(self, message)  # the meta API (clients cannot register wamp.*)
            else:
                realm.dealer.call(self, message, raw)
        elif kind is m.Yield:
            realm.dealer.yield_(self, message)
        else:
            self._established_other(realm, kind, message)
        realm.meta.flush()  # meta events this message caused go out after its reply

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
