"""The ``anonymous`` method: no credential; the router picks the authid."""

from __future__ import annotations

import secrets

from .base import Accept, HelloInfo, Outcome


class Anonymous:
    """Let clients in without a credential, under ``role``. A client's claimed authid is not
    trusted: each session gets a fresh random one."""

    method = "anonymous"

    def __init__(self, role: str = "anonymous") -> None:
        self.role = role

    def start(self, hello: HelloInfo) -> Outcome:
        """Accept at once."""
        return Accept("anonymous-" + secrets.token_hex(6), self.role, self.method)
