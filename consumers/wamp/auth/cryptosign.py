"""The ``cryptosign`` method: the client proves it holds an Ed25519 private key (needs PyNaCl).

HELLO carries ``authextra.pubkey`` (hex). The router sends 32 random bytes (hex) as
``extra.challenge``; the client answers with hex(signature || signed message), 96 bytes, the way
autobahn's ``AuthCryptoSign`` does. An unknown key still gets a challenge and fails at AUTHENTICATE.

Channel binding: when the realm's method has ``channel_binding="tls-unique"``, or the client asks
for it (``authextra.channel_binding``, as autobahn's clients do), the signed message is the
challenge XOR SHA-256(the connection's tls-unique), the channel ID autobahn computes, so a
signature cannot be relayed to another TLS connection. A connection without that value (plain
``ws:``, the Twisted transport) is refused; we never bind to autobahn's all-zero fallback ID. On
TLS 1.3 the value is the handshake's first Finished as Python gives it (see ``asgi_server.tls``):
what autobahn and Crossbar.io use, though TLS 1.3 defines no tls-unique.
"""

from __future__ import annotations

import hashlib
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


def _verify_key(pubkey: str) -> Any:
    from nacl.exceptions import CryptoError  # PyNaCl is an optional extra: import on use
    from nacl.signing import VerifyKey

    try:
        return VerifyKey(bytes.fromhex(pubkey))
    except (ValueError, TypeError, CryptoError):
        return None


class Cryptosign(StaticOrDynamic):
    """Cryptosign from static ``principals`` (authid -> Principal with ``authorized_keys``) or a
    dynamic ``authenticator`` (given ``details["authextra"]["pubkey"]``, returns a role or
    ``{"role", "authid"?}``)."""

    method = "cryptosign"

    def __init__(
        self,
        principals: Mapping[str, Principal] | None = None,
        authenticator: DynamicAuthenticator | None = None,
        channel_binding: str | None = None,
    ) -> None:
        super().__init__(principals, authenticator)
        if channel_binding not in (None, "tls-unique"):
            raise ValueError("channel_binding must be None or 'tls-unique'")
        self.channel_binding = channel_binding
        self._by_key = {
            key.lower(): (authid, p)
            for authid, p in self.principals.items()
            for key in p.authorized_keys
        }

    def start(self, hello: HelloInfo) -> Outcome:
        """Find who owns the offered key, then challenge."""
        pubkey = hello.authextra.get("pubkey")
        if not isinstance(pubkey, str):
            return Refuse("cryptosign needs authextra.pubkey (hex)")
        if self.authenticator is None:
            owner = self._by_key.get(pubkey.lower())
            if owner is not None and hello.authid not in (None, owner[0]):
                owner = None  # the key belongs to someone else
            found = (owner[0], owner[1].role, owner[1].authextra) if owner else None
            return self._challenge(hello, pubkey, found, "static")
        return then(
            ask(self.authenticator, hello, hello.details()),
            lambda answer: self._challenge(hello, pubkey, _identity(hello, answer), "dynamic"),
        )

    def _challenge(
        self,
        hello: HelloInfo,
        pubkey: str,
        identity: tuple[str, str, dict[str, Any] | None] | None,
        provider: str,
    ) -> Outcome:
        challenge = secrets.token_bytes(32)
        requested = hello.authextra.get("channel_binding")
        if requested not in (None, "tls-unique"):
            return Refuse(f"cryptosign channel binding {requested!r} is not supported")
        if self.channel_binding and requested is None:
            return Refuse("this realm's cryptosign needs authextra.channel_binding='tls-unique'")
        signed = challenge
        if requested:
            if not hello.transport.channel_binding:
                return Refuse(
                    "cryptosign channel binding needs a TLS connection with a tls-unique value"
                )
            channel_id = hashlib.sha256(hello.transport.channel_binding).digest()
            signed = bytes(a ^ b for a, b in zip(challenge, channel_id, strict=True))
        extra = {"challenge": challenge.hex(), "channel_binding": requested}

        def verify(answer: str, _extra: dict[str, Any]) -> Outcome:
            # One answer for an unknown key and a wrong signature, and the signature checked
            # either way: neither the ABORT nor its timing says whether the key is known.
            valid = _signed_by(pubkey, answer, signed)
            if not valid or identity is None:
                return Refuse("wrong cryptosign signature or unknown key")
            return Accept(identity[0], identity[1], self.method, provider, identity[2])

        return Challenge(self.method, extra, verify)


def _signed_by(pubkey: str, answer: str, message: bytes) -> bool:
    """Whether ``answer`` is hex(signature || message) with a valid signature by ``pubkey``."""
    from nacl.exceptions import BadSignatureError

    key = _verify_key(pubkey)
    try:
        raw = bytes.fromhex(answer)
    except ValueError:
        return False
    if key is None or len(raw) != 96 or raw[64:] != message:
        return False
    try:
        key.verify(raw[64:], raw[:64])
    except BadSignatureError:
        return False
    return True


def _identity(hello: HelloInfo, answer: Any) -> tuple[str, str, dict[str, Any] | None] | None:
    found = principal_from(answer)
    if found is None:
        return None
    authid = found.get("authid") or hello.authid or hello.authextra.get("pubkey")
    return (str(authid), found["role"], found.get("extra"))
