"""A harness for the sans-IO WAMP core: recording peers, a manual clock, raw-message feeding."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from consumers.wamp.codec import SUBPROTOCOLS, ProtocolError, messages
from consumers.wamp.realm import Realm, RealmRouter
from consumers.wamp.session import Session
from consumers.wamp.settings import Limits

m: Any = messages
JSON = SUBPROTOCOLS["wamp.2.json"]

CLIENT_ROLES: dict[str, Any] = {
    "publisher": {"features": {"publisher_exclusion": True}},
    "subscriber": {"features": {"pattern_based_subscription": True}},
    "caller": {"features": {"call_canceling": True, "progressive_call_results": True}},
    "callee": {"features": {"call_canceling": True, "progressive_call_results": True}},
}


class RecordingPeer:
    """A ``Peer`` that keeps what the session sends, as messages and as their raw lists."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.closed = False

    def send(self, message: Any) -> None:
        self.sent.append(message)

    def close(self) -> None:
        self.closed = True

    def take(self) -> list[list[Any]]:
        """The raw lists of everything sent since the last take (round-tripped through JSON)."""
        raw = [json.loads(JSON.encode(message)) for message in self.sent]
        self.sent.clear()
        return raw


class ManualTimer:
    def __init__(self, clock: ManualTimers, when: float, callback: Callable[[], None]) -> None:
        self.clock, self.when, self.callback, self.cancelled = clock, when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class ManualTimers:
    """``Timers`` driven by the test: ``advance(seconds)`` runs what falls due."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[ManualTimer] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> ManualTimer:
        timer = ManualTimer(self, self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = [t for t in self.timers if t.when <= self.now and not t.cancelled]
        self.timers = [t for t in self.timers if t not in due]
        for timer in due:
            timer.callback()

    @property
    def active(self) -> int:
        return sum(1 for t in self.timers if not t.cancelled)


class Core:
    """One router with realm1 (strict URIs unless told) and helpers to join and feed sessions."""

    def __init__(self, limits: Limits | None = None, **realm_options: Any) -> None:
        self.timers = ManualTimers()
        self.realm = RealmRouter(Realm("realm1", **realm_options), limits or Limits(), self.timers)

    def realm_lookup(self, name: str) -> RealmRouter | None:
        return self.realm if name == "realm1" else None

    def new_session(self, **identity: Any) -> tuple[Session, RecordingPeer]:
        peer = RecordingPeer()

        class Lookup:
            realm = self.realm_lookup

        return Session(Lookup(), peer, **identity), peer

    def join(self, roles: dict[str, Any] | None = None, **identity: Any) -> Peer:
        session, peer = self.new_session(**identity)
        feed(session, [1, "realm1", {"roles": roles or CLIENT_ROLES}])
        welcome = peer.take()
        assert welcome[0][0] == 2, welcome
        return Peer(session, peer)


class Peer:
    """A joined session and its recorder, fed with raw lists."""

    def __init__(self, session: Session, peer: RecordingPeer) -> None:
        self.session = session
        self.peer = peer
        self.id = session.id

    def send(self, *raw: Any) -> list[list[Any]]:
        """Feed one raw message; return what this session got back."""
        feed(self.session, list(raw))
        return self.peer.take()

    def take(self) -> list[list[Any]]:
        return self.peer.take()


def feed(session: Session, raw: Any) -> None:
    """Encode ``raw`` as JSON and feed it the way the endpoint does (malformed -> violation)."""
    try:
        decoded = JSON.decode(json.dumps(raw).encode())
    except ProtocolError as exc:
        session.receive_malformed(str(exc))
        return
    for message, original in decoded:
        session.receive(message, original)
