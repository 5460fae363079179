"""The authentication round between HELLO and WELCOME, for one session.

The HELLO's ``authmethods`` are tried in the client's order (``["anonymous"]`` when it names none);
methods the realm does not offer are passed over. The first method that does not ``Skip`` decides:
``Accept`` welcomes, ``Challenge`` sends CHALLENGE and waits for AUTHENTICATE, ``Refuse`` aborts.
Nothing left to try: ABORT ``wamp.error.no_auth_method``. Every failure is logged, counted by the
rate limiter (per authid, per address) and answered after the same ``failure_delay``.
"""

from __future__ import annotations

import inspect
import logging
from typing import TYPE_CHECKING, Any

from .base import (
    NO_AUTH_METHOD,
    NOT_AUTHORIZED,
    Accept,
    Authenticator,
    Challenge,
    HelloInfo,
    Outcome,
    Refuse,
    Skip,
)
from .cookie import Cookie

if TYPE_CHECKING:
    from ..realm import RealmRouter
    from ..session import Session

logger = logging.getLogger("consumers.wamp")


class Handshake:
    """Drives one session's authentication (see the module docstring)."""

    def __init__(self, session: Session, realm: RealmRouter, hello: HelloInfo, methods: list[str]):
        self.session = session
        self.realm = realm
        self.hello = hello
        offered = realm.authenticators
        self.candidates: list[Authenticator] = [offered[m] for m in methods if m in offered]
        self.verify: Any = None
        self.method = "none"

    def begin(self) -> None:
        """Start: refuse at once a rate-limited client, else try the first method."""
        if self.realm.auth_failures.blocked(self.hello.authid, self.hello.transport.peer):
            # Counted here (the block slides on while attempts go on), not told to the cluster
            # again: the other processes counted the failures that made the block.
            self.fail(Refuse("too many failed authentications; try again later"), share=False)
            return
        self._next()

    def _next(self) -> None:
        if not self.candidates:
            self.fail(Refuse("no authentication method the client offered applies", NO_AUTH_METHOD))
            return
        authenticator = self.candidates.pop(0)
        self.method = authenticator.method
        self._handle(self._run(authenticator.start, self.hello))

    def authenticate(self, signature: str, extra: dict[str, Any]) -> bool:
        """An AUTHENTICATE arrived; False when no CHALLENGE is waiting for one."""
        verify, self.verify = self.verify, None
        if verify is None:
            return False
        self._handle(self._run(verify, signature, extra))
        return True

    def _run(self, step: Any, *args: Any) -> Outcome:
        try:
            outcome: Outcome = step(*args)
        except Exception as exc:
            logger.exception("WAMP authentication method %r failed", self.method)
            return Refuse(f"the {self.method} authenticator failed: {type(exc).__name__}")
        return outcome

    def _handle(self, outcome: Outcome) -> None:
        if not self.session.authenticating:
            return  # the client went away meanwhile
        if inspect.isawaitable(outcome):
            self.realm.defer(outcome, self._resolved)
        elif isinstance(outcome, Accept):
            self._accept(outcome)
        elif isinstance(outcome, Skip):
            self._next()
        elif isinstance(outcome, Challenge):
            self.verify = outcome.verify
            self.session.challenge(outcome.method, outcome.extra)
        elif isinstance(outcome, Refuse):
            self.fail(outcome)
        else:
            self.fail(Refuse(f"the {self.method} authenticator answered {outcome!r}"))

    def _resolved(self, result: Any, failed: BaseException | None) -> None:
        if failed is not None:
            logger.warning("WAMP authentication method %r failed: %r", self.method, failed)
            result = Refuse(f"the {self.method} authenticator failed")
        self._handle(result)

    def _accept(self, identity: Accept) -> None:
        if identity.authrole not in self.realm.authorizer.roles and not self.realm.authorizer.open:
            self.fail(Refuse(f"role {identity.authrole!r} does not exist in this realm"))
            return
        if identity.authmethod != Cookie.method:
            for authenticator in self.realm.authenticators.values():
                if isinstance(authenticator, Cookie):
                    authenticator.remember(self.hello, identity)
        self.session.welcome(identity)

    def fail(self, refusal: Refuse, share: bool = True) -> None:
        """Log, count (and tell the cluster, with ``share``), and abort after the realm's
        uniform failure delay."""
        transport = self.hello.transport
        logger.warning(
            "WAMP authentication failed: realm %r authid=%r method=%s peer=%s: %s",
            self.hello.realm,
            self.hello.authid,
            self.method,
            transport.peer,
            refusal.message,
        )
        failures = self.realm.auth_failures
        (failures.failed if share else failures.count)(self.hello.authid, transport.peer)
        session = self.session
        delay = self.realm.config.auth_limits.failure_delay

        def abort() -> None:
            if session.authenticating:
                session.abort(refusal.reason or NOT_AUTHORIZED, refusal.message)

        if delay > 0:
            self.realm.timers.call_later(delay, abort)
        else:
            abort()
