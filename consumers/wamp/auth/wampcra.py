"""The ``wampcra`` method: HMAC-SHA256 challenge-response on a shared secret (WAMP-CRA).

The router sends a JSON challenge (authid, method, session, a nonce, a timestamp); the client
answers with base64(HMAC-SHA256(key, challenge)). With a salted principal the key is
PBKDF2(password, salt, iterations, keylen) and the CHALLENGE's extra announces salt, iterations
and keylen so the client derives the same key (Crossbar.io's behaviour). An unknown authid still
gets a challenge, with a random key, so it fails the same way a wrong secret does. Each challenge
carries a fresh nonce and is verified once: a replayed signature does not match a new challenge.
A decoy looks like a real challenge: the challenge names no role, and where this method has salted
principals a decoy announces a salt derived from the authid (stable across attempts), so neither
the shape nor the salt tells whether the authid exists.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any

from .base import (
    Accept,
    Challenge,
    DynamicAuthenticator,
    HelloInfo,
    Outcome,
    Principal,
    Refuse,
    StaticOrDynamic,
    ask,
    principal_from,
    then,
)

_DECOY_KEY = secrets.token_bytes(32)


def derived_key(secret: str, salt: str | None, iterations: int, keylen: int) -> bytes:
    """The WAMP-CRA key: the secret itself, or base64(PBKDF2-SHA256(secret, salt)) when salted
    (the value autobahn's ``derive_key`` computes)."""
    if salt is None:
        return secret.encode()
    raw = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), iterations, keylen)
    return base64.b64encode(raw)


def signature(key: bytes, challenge: str) -> str:
    """base64(HMAC-SHA256(key, challenge)): what the client must send."""
    return base64.b64encode(hmac.new(key, challenge.encode(), hashlib.sha256).digest()).decode()


class WampCra(StaticOrDynamic):
    """WAMP-CRA from static ``principals`` (authid -> Principal with ``secret`` and optionally
    ``salt``) or a dynamic ``authenticator`` returning ``{"secret", "role", "salt"?, ...}``."""

    method = "wampcra"

    def __init__(
        self,
        principals: Mapping[str, Principal] | None = None,
        authenticator: DynamicAuthenticator | None = None,
    ) -> None:
        super().__init__(principals, authenticator)
        self.salted = any(p.salt is not None for p in self.principals.values())

    def start(self, hello: HelloInfo) -> Outcome:
        """Look the principal up, then challenge (a principal of None gets a decoy challenge)."""
        if self.authenticator is None:
            static = self.principals.get(hello.authid or "")
            return self._challenge(hello, static, "static")
        return then(
            ask(self.authenticator, hello, hello.details()),
            lambda answer: self._challenge(hello, _as_principal(answer), "dynamic"),
        )

    def _challenge(self, hello: HelloInfo, principal: Principal | None, provider: str) -> Outcome:
        salt: tuple[str, int, int] | None = None
        if principal is not None and principal.secret and hello.authid:
            key = derived_key(
                principal.secret, principal.salt, principal.iterations, principal.keylen
            )
            if principal.salt is not None:
                salt = (principal.salt, principal.iterations, principal.keylen)
        else:
            principal, key = None, secrets.token_bytes(32)
            if self.salted:  # (a dynamic authenticator decides salts itself)
                decoy = hmac.new(_DECOY_KEY, (hello.authid or "").encode(), hashlib.sha256)
                salt = (decoy.hexdigest()[:16], 1000, 32)
        challenge = json.dumps(
            {
                "authid": hello.authid,
                "authmethod": self.method,
                "nonce": secrets.token_urlsafe(24),
                "timestamp": datetime.datetime.now(datetime.UTC).isoformat(),
                "session": hello.session_id,
            }
        )
        extra: dict[str, Any] = {"challenge": challenge}
        if salt is not None:
            extra.update(salt=salt[0], iterations=salt[1], keylen=salt[2])

        def verify(answer: str, _extra: dict[str, Any]) -> Outcome:
            expected = signature(key, challenge)
            if not hmac.compare_digest(expected.encode(), answer.encode()) or principal is None:
                return Refuse("wrong WAMP-CRA signature or unknown authid")
            assert hello.authid is not None
            return Accept(hello.authid, principal.role, self.method, provider, principal.authextra)

        return Challenge(self.method, extra, verify)


def _as_principal(answer: Any) -> Principal | None:
    found = principal_from(answer)
    if found is None or not isinstance(found.get("secret"), str):
        return None
    return Principal(
        role=found["role"],
        secret=found["secret"],
        salt=found.get("salt"),
        iterations=int(found.get("iterations", 1000)),
        keylen=int(found.get("keylen", 32)),
        authextra=found.get("extra"),
    )
