"""The ``ticket`` method: the client sends a shared secret (a password, a token) in AUTHENTICATE.

Static principals compare the ticket in constant time, and an unknown authid is compared against
a dummy so that both failures take the same path. A dynamic authenticator receives the ticket in
``details["ticket"]``.
"""

from __future__ import annotations

import secrets
from typing import Any

from .base import (
    Accept,
    Challenge,
    HelloInfo,
    Outcome,
    Refuse,
    StaticOrDynamic,
    ask,
    principal_from,
    same,
    then,
)

_DUMMY = secrets.token_urlsafe(24)


class Ticket(StaticOrDynamic):
    """Ticket authentication from static ``principals`` (authid -> Principal with ``secret``)
    or a dynamic ``authenticator``."""

    method = "ticket"

    def start(self, hello: HelloInfo) -> Outcome:
        """Ask the client for its ticket."""
        return Challenge(self.method, {}, lambda ticket, extra: self._verify(hello, ticket))

    def _verify(self, hello: HelloInfo, ticket: str) -> Outcome:
        authid = hello.authid
        if self.authenticator is not None:
            details = {**hello.details(), "ticket": ticket}
            return then(ask(self.authenticator, hello, details), lambda a: self._dynamic(hello, a))
        principal = self.principals.get(authid or "")
        expected = principal.secret if principal is not None and principal.secret else _DUMMY
        if not same(ticket, expected) or principal is None or authid is None:
            return Refuse("wrong ticket or unknown authid")
        return Accept(authid, principal.role, self.method, authextra=principal.authextra)

    def _dynamic(self, hello: HelloInfo, answer: Any) -> Outcome:
        principal = principal_from(answer)
        if principal is None:
            return Refuse("the authenticator refused the ticket")
        authid = principal.get("authid") or hello.authid
        if not isinstance(authid, str):
            return Refuse("no authid")
        return Accept(authid, principal["role"], self.method, "dynamic", principal.get("extra"))
