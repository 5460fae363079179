"""The ``wampcra`` method: HMAC-SHA256 challenge-response on a shared secret (WAMP-CRA).

The router sends a JSON challenge (authid, method, session, a nonce, a timestamp); the client
answers with base64(HMAC-SHA256(key, challenge)). With a salted principal the key is
PBKDF2(password, salt, iterations, keylen) and the CHALLENGE's extra announces salt, iterations
and keylen so the client derives the same key (Crossbar.io's behaviour). An unknown authid still
gets a challenge, with a random key, so it fails the same way a wrong secret does. Each challenge
carries a fresh nonce and is verified once: a replayed signature does not match a new challenge.
A decoy looks like a real challenge: the challenge names no role, and its salt parameters copy
those of a principal chosen by the authid (salted or not, the same iterations and keylen, a salt
of the same length derived from the authid), so the shapes of decoys follow the shapes of real
principals. It is stable across attempts; across the processes of a cluster only when they share
``decoy_secret`` (else each process keys its decoys randomly, and an attacker who reaches two
workers sees two salts for an unknown authid). The key is not derived from the principals'
secrets: a decoy salt would then be an offline test of a guessed password. Give principals hex
salts: a decoy's salt is hex.
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
    ``salt``) or a dynamic ``authenticator`` returning ``{"secret", "role", "salt"?, ...}``.
    ``decoy_secret`` (the same in every worker, e.g. from Django's SECRET_KEY) keys the decoy
    challenges of unknown authids (see the module docstring)."""

    method = "wampcra"

    def __init__(
        self,
        principals: Mapping[str, Principal] | None = None,
        authenticator: DynamicAuthenticator | None = None,
        decoy_secret: str | bytes | None = None,
    ) -> None:
        super().__init__(principals, authenticator)
        self._templates = [self.principals[authid] for authid in sorted(self.principals)]
        if isinstance(decoy_secret, str):
            decoy_secret = decoy_secret.encode()
        self._decoy_key = decoy_secret or secrets.token_bytes(32)

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
            salt = self._decoy_salt(hello.authid or "")
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

    def _decoy_salt(self, authid: str) -> tuple[str, int, int] | None:
        """The salt parameters of an unknown authid: a principal's shape, chosen by the authid
        (a dynamic authenticator decides salts itself: its decoys are unsalted)."""
        if not self._templates:
            return None
        digest = hmac.new(self._decoy_key, authid.encode(), hashlib.sha256).hexdigest()
        template = self._templates[int(digest[:8], 16) % len(self._templates)]
        if template.salt is None:
            return None
        return (digest[8:][: len(template.salt)], template.iterations, template.keylen)


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
