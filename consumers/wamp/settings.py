"""The router's limits: one frozen dataclass, the only place their defaults are written."""

from __future__ import annotations

from dataclasses import dataclass

#: The error a request gets when it would cross a per-session limit (not a spec URI: the spec
#: defines none for this).
LIMIT_EXCEEDED = "crossway.error.limit_exceeded"


@dataclass(frozen=True)
class Limits:
    """Per-router limits; the docs' WAMP reference tables them from these fields and comments."""

    #: The largest WAMP message (one WebSocket message) a client may send, in bytes; a larger one
    #: closes the connection (WebSocket close 1009) and ends the session.
    max_message_size: int = 1024 * 1024
    #: Subscriptions one session may hold; the next SUBSCRIBE gets LIMIT_EXCEEDED.
    max_subscriptions_per_session: int = 1000
    #: Registrations one session may hold; the next REGISTER gets LIMIT_EXCEEDED.
    max_registrations_per_session: int = 1000
    #: Calls one session may have in flight; the next CALL gets LIMIT_EXCEEDED.
    max_pending_calls_per_session: int = 1000
    #: Topics whose retained event a realm keeps; past it the least recently retained is dropped.
    #: In a cluster each process keeps its own, and a new subscriber gets at most this many.
    max_retained_events: int = 1000
    #: Messages queued for one WebSocket client that reads too slowly; past it the session is
    #: closed (close 1008) rather than letting the router's memory grow without bound.
    max_outgoing_queue: int = 10000


@dataclass(frozen=True)
class AuthLimits:
    """Brute-force defences of authentication; each is documented in docs/guide/wamp.md."""

    #: Seconds between a failed authentication and its ABORT: the same whatever failed (unknown
    #: authid, wrong secret, rate limit), so timing tells an attacker nothing.
    failure_delay: float = 0.5
    #: Failed authentications one authid may have within ``failure_window``; past it every HELLO
    #: for that authid is refused (without checking its credential) until the window moves on.
    max_failures_per_authid: int = 10
    #: The same, per client address.
    max_failures_per_address: int = 100
    #: The sliding window, in seconds, the two counts above are taken over.
    failure_window: float = 60.0
