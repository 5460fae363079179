"""Crossbar.io's HTTP bridge request checks: signatures, client IPs, TLS, body size.

A signed request carries the query parameters ``key``, ``timestamp`` (UTC, ISO 8601 such as
``2011-10-14T16:59:51.123Z``), ``seq``, ``nonce`` and ``signature``: the Base64 of
HMAC-SHA256 under the shared ``secret`` over ``key | timestamp | seq | nonce | body``, the five
concatenated as bytes (crossbarconnect sends URL-safe Base64; standard Base64 is accepted too).
A timestamp further from now than ``timestamp_delta_limit`` seconds is refused, and so is a nonce
seen before within that window: a captured request cannot be replayed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..base import Scope


class Refused(Exception):
    """A request the bridge refuses: its HTTP status, a WAMP-style error URI and a message."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


@dataclass
class BridgeSecurity:
    """Who may use a publisher, caller or webhook path (Crossbar's path ``options``)."""

    #: Signing: both or neither. With them, every request must be signed.
    key: str | None = None
    secret: str | None = None
    #: Seconds a signed request's timestamp may differ from now. Crossbar's 0 ("any") becomes
    #: 300 here: without a window, the nonce memory would have to grow for ever.
    timestamp_delta_limit: float = 300.0
    #: Largest accepted body in bytes (413 above it). Crossbar's default: 0, unlimited.
    post_body_limit: int = 1024 * 1024
    #: Client addresses or networks allowed ("10.0.0.0/8", "192.168.1.1/255.255.255.0").
    require_ip: Iterable[str] | None = None
    #: Refuse requests that did not come over TLS.
    require_tls: bool = False
    _networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None = field(
        init=False, default=None
    )
    _nonces: OrderedDict[str, float] = field(init=False, default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if (self.key is None) != (self.secret is None):
            raise ValueError("request signing needs both 'key' and 'secret' (or neither)")
        if self.timestamp_delta_limit <= 0:
            self.timestamp_delta_limit = 300.0
        if self.post_body_limit <= 0:
            self.post_body_limit = 1 << 62
        if self.require_ip is not None:
            try:
                self._networks = [
                    ipaddress.ip_network(entry, strict=False) for entry in self.require_ip
                ]
            except ValueError as exc:
                raise ValueError(f"require_ip: {exc}") from exc

    def check_client(self, scope: Scope) -> None:
        """Refuse (403) a client outside ``require_ip`` or a plain-HTTP one under
        ``require_tls``."""
        if self.require_tls and scope.get("scheme") not in ("https", "wss"):
            raise Refused(403, "crossway.error.tls_required", "this path requires HTTPS")
        if self._networks is None:
            return
        client = scope.get("client")
        try:
            address = ipaddress.ip_address(client[0]) if client else None
        except ValueError:
            address = None
        if address is None or not any(address in network for network in self._networks):
            raise Refused(
                403, "crossway.error.ip_not_allowed", "your address may not use this path"
            )

    def check_signature(self, scope: Scope, body: bytes, now: float | None = None) -> None:
        """Refuse (401) an unsigned, wrongly signed, stale or replayed request when signing is
        configured; a no-op otherwise."""
        if self.key is None or self.secret is None:
            return
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        values = {name: query.get(name, [None])[0] for name in _SIGNED}
        missing = [name for name, value in values.items() if value is None]
        if missing:
            raise Refused(
                401,
                "crossway.error.signature_missing",
                f"signed requests need the query parameters {', '.join(missing)}",
            )
        key, stamp, seq, nonce, signature = (str(values[name]) for name in _SIGNED)
        if not hmac.compare_digest(key, self.key):
            raise Refused(401, "crossway.error.invalid_signature", "unknown key")
        expected = sign(self.secret, key, stamp, seq, nonce, body)
        if not hmac.compare_digest(_decode_signature(signature), expected):
            raise Refused(401, "crossway.error.invalid_signature", "the signature does not match")
        now = time.time() if now is None else now
        when = _parse_timestamp(stamp)
        if abs(now - when) > self.timestamp_delta_limit:
            raise Refused(
                401,
                "crossway.error.stale_timestamp",
                f"the timestamp is more than {self.timestamp_delta_limit:g} s from the server's "
                "clock",
            )
        self._remember_nonce(f"{key}:{nonce}", now)

    def _remember_nonce(self, nonce: str, now: float) -> None:
        while self._nonces:  # forget nonces whose timestamps would be refused anyway
            oldest, seen = next(iter(self._nonces.items()))
            if now - seen <= 2 * self.timestamp_delta_limit:
                break
            del self._nonces[oldest]
        if nonce in self._nonces:
            raise Refused(401, "crossway.error.replayed_nonce", "this nonce was used before")
        self._nonces[nonce] = now


_SIGNED = ("key", "timestamp", "seq", "nonce", "signature")


def sign(secret: str, key: str, timestamp: str, seq: str, nonce: str, body: bytes) -> bytes:
    """The raw HMAC-SHA256 of a request, as Crossbar.io computes it."""
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    for part in (key, timestamp, seq, nonce):
        mac.update(part.encode())
    mac.update(body)
    return mac.digest()


def signed_query(secret: str, key: str, body: bytes, seq: int, nonce: int) -> dict[str, str]:
    """The query parameters of a signed request for ``body`` (what crossbarconnect sends)."""
    stamp = _utc_now_iso()
    digest = sign(secret, key, stamp, str(seq), str(nonce), body)
    return {
        "key": key,
        "timestamp": stamp,
        "seq": str(seq),
        "nonce": str(nonce),
        "signature": base64.urlsafe_b64encode(digest).decode(),
    }


def _utc_now_iso() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def _decode_signature(signature: str) -> bytes:
    padded = signature + "=" * (-len(signature) % 4)
    try:
        if "-" in padded or "_" in padded:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded)
    except (binascii.Error, ValueError):
        return b""


def _parse_timestamp(stamp: str) -> float:
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(
            401,
            "crossway.error.invalid_timestamp",
            f"timestamp {stamp!r} is not UTC ISO 8601 like 2011-10-14T16:59:51.123Z",
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # Crossbar's timestamps are UTC
    return when.timestamp()
