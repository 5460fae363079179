"""Authorization of one realm: static role permissions, dynamic authorizers and their cache.

``RealmAuthorizer.authorize`` answers synchronously when it can (static rules, a cached or a
plain-function decision) and otherwise reports through a callback once an async authorizer or a
WAMP-procedure authorizer has answered; the session holds its later messages meanwhile, so a
session's messages are still routed in the order it sent them.

Cache: a dynamic decision is kept per (session, URI, action) for the ``cache`` seconds the
authorizer returned (0: not cached); a session's entries go when it leaves.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .roles import TRUSTED, Action, Decision, Role

if TYPE_CHECKING:
    from .realm import RealmRouter
    from .session import Session

logger = logging.getLogger("consumers.wamp")

NOT_AUTHORIZED = "wamp.error.not_authorized"


def session_details(session: Session) -> dict[str, Any]:
    """What an authorizer is told about a session (the shape of Crossbar.io's details)."""
    return {
        "session": session.id,
        "authid": session.authid,
        "authrole": session.authrole,
        "authmethod": session.authmethod,
        "authprovider": session.authprovider,
        "authextra": session.authextra,
        "transport": session.transport.details(),
    }


class RealmAuthorizer:
    """Decides, for one realm, whether a session may perform an action on a URI."""

    def __init__(self, realm: RealmRouter, clock: Callable[[], float] = time.monotonic) -> None:
        self.realm = realm
        roles = realm.config.roles
        #: No roles declared: the open realm of earlier versions, anyone may do anything.
        self.open = roles is None
        self.roles: dict[str, Role] = {role.name: role for role in roles or ()}
        self.roles.setdefault(TRUSTED.name, TRUSTED)
        self.clock = clock
        self.cache: dict[int, dict[tuple[str, str], tuple[Decision, float]]] = {}

    def authorize(
        self, session: Session, uri: str, action: Action, done: Callable[[Decision], None]
    ) -> Decision | None:
        """The decision now, or None when ``done`` will be called with it later."""
        if self.open:
            return Decision(True)
        role = self.roles.get(session.authrole)
        if role is None:
            return Decision(False)
        rule = role.rule_for(uri)
        if rule is not None or role.authorizer is None:
            return rule.decide(action) if rule is not None else Decision(False)
        cached = self.cache.get(session.id, {}).get((uri, action))
        if cached is not None and cached[1] > self.clock():
            return cached[0]
        return self._ask(role, session, uri, action, done)

    def _ask(
        self,
        role: Role,
        session: Session,
        uri: str,
        action: Action,
        done: Callable[[Decision], None],
    ) -> Decision | None:
        details = session_details(session)
        authorizer = role.authorizer
        if isinstance(authorizer, str):
            answer: Any = self.realm.internal_call(authorizer, [details, uri, action])
        else:
            assert authorizer is not None
            try:
                answer = authorizer(details, uri, action)
            except Exception:
                logger.exception("the authorizer of role %r failed; refusing", role.name)
                return Decision(False)
            if not inspect.isawaitable(answer):
                return self._remember(session, uri, action, Decision.of(answer))

        def finished(result: Any, failed: BaseException | None) -> None:
            if failed is not None:
                logger.warning("the authorizer of role %r failed (%s); refusing", role.name, failed)
                done(Decision(False))
            else:
                done(self._remember(session, uri, action, Decision.of(result)))

        self.realm.defer(answer, finished)
        return None

    def _remember(self, session: Session, uri: str, action: Action, decision: Decision) -> Decision:
        if decision.cache > 0:
            entries = self.cache.setdefault(session.id, {})
            entries[(uri, action)] = (decision, self.clock() + decision.cache)
        return decision

    def forget(self, session_id: int) -> None:
        """A session left: drop its cached decisions."""
        self.cache.pop(session_id, None)


def log_refusal(session: Session, action: str, uri: str) -> None:
    """The log line for a refused action: session, authid, role, action, URI."""
    logger.warning(
        "WAMP not authorized: session %s authid=%r authrole=%r %s %r",
        session.id,
        session.authid,
        session.authrole,
        action,
        uri,
    )


Deferred = Callable[[Awaitable[Any], Callable[[Any, BaseException | None], None]], None]
