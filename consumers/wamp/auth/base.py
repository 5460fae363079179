"""The interface every authentication method implements, and the values they exchange.

A method is an ``Authenticator``: ``start(hello)`` returns an ``Outcome``. ``Accept`` welcomes
the session with an identity, ``Refuse`` aborts it, ``Skip`` says the method does not apply (no
cookie, no Django session: the next method the client offered is tried), and ``Challenge`` sends a
CHALLENGE and carries the continuation that checks the client's AUTHENTICATE. Any of these may come
wrapped in an awaitable (a dynamic authenticator that is a coroutine or a WAMP procedure); the
session's handshake awaits it through the realm. Methods never see sockets or clocks.
"""

from __future__ import annotations

import hmac
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger("consumers.wamp")

NOT_AUTHORIZED = "wamp.error.not_authorized"
AUTHENTICATION_FAILED = "wamp.error.authentication_failed"
NO_AUTH_METHOD = "wamp.error.no_auth_method"


@dataclass(frozen=True)
class TransportInfo:
    """What authentication may know of the connection a HELLO came on."""

    #: The client's address (host only), for rate limiting and logs.
    peer: str | None = None
    #: The connection's WAMP cookie ID (cookie authentication), when the endpoint set one.
    cookie_id: str | None = None
    #: The connection's ``tls-unique`` channel binding (raw bytes, the ``tls_unique`` of the
    #: scope's TLS extension), when the transport has one.
    channel_binding: bytes | None = None
    #: The ASGI scope (Django's ``scope["user"]`` comes from here), when there is one.
    scope: dict[str, Any] | None = field(default=None, compare=False)

    def details(self) -> dict[str, Any]:
        """The transport as authenticators and authorizers are told it."""
        return {"peer": self.peer, "cookie": self.cookie_id is not None}


@dataclass(frozen=True)
class HelloInfo:
    """What a HELLO asks for: the realm, the claimed authid and its authextra."""

    realm: str
    authid: str | None
    authextra: dict[str, Any]
    transport: TransportInfo
    #: The session ID the WELCOME will carry (WAMP-CRA puts it in its challenge).
    session_id: int = 0
    #: Calls a WAMP procedure of the realm (for authenticators that are procedures).
    call: Callable[[str, list[Any]], Awaitable[Any]] | None = field(default=None, compare=False)

    def details(self) -> dict[str, Any]:
        """The details a dynamic authenticator receives."""
        return {
            "authid": self.authid,
            "authextra": self.authextra,
            "transport": self.transport.details(),
        }


@dataclass(frozen=True)
class Principal:
    """A statically configured identity: its role and the credential its method checks."""

    role: str
    #: The ticket (ticket), or the secret (wampcra; the password when ``salt`` is set).
    secret: str | None = None
    #: WAMP-CRA salted keys: the key is PBKDF2(secret, salt, iterations, keylen).
    salt: str | None = None
    iterations: int = 1000
    keylen: int = 32
    #: Cryptosign: the hex Ed25519 public keys this principal may log in with.
    authorized_keys: tuple[str, ...] = ()
    authextra: dict[str, Any] | None = None


@dataclass(frozen=True)
class Accept:
    """Welcome the session with this identity."""

    authid: str
    authrole: str
    authmethod: str
    authprovider: str = "static"
    authextra: dict[str, Any] | None = None


@dataclass(frozen=True)
class Refuse:
    """Abort the session: ``reason`` is the ABORT's error URI."""

    message: str
    reason: str = NOT_AUTHORIZED


@dataclass(frozen=True)
class Skip:
    """This method does not apply to this client; try the next one it offered."""


@dataclass(frozen=True)
class Challenge:
    """Send CHALLENGE(method, extra); ``verify(signature, extra)`` checks the AUTHENTICATE."""

    method: str
    extra: dict[str, Any]
    verify: Callable[[str, dict[str, Any]], Outcome]


Outcome = Accept | Refuse | Skip | Challenge | Awaitable[Any]


class Authenticator(Protocol):
    """One authentication method of a realm (see the module docstring)."""

    #: The authmethod name a HELLO asks for ("ticket", "wampcra", ...).
    method: str

    def start(self, hello: HelloInfo) -> Outcome:
        """Answer a HELLO that asked for this method."""
        ...


#: A dynamic authenticator: ``(realm, authid, details)`` -> a role name, a dict (``role`` and
#: optionally ``authid``, ``extra``, and the method's secret: ``secret``/``salt``/... for wampcra,
#: ``pubkey`` for cryptosign), or None/False to refuse; may be async. A string names a WAMP
#: procedure registered in the realm that is called with the same arguments.
DynamicAuthenticator = Callable[[str, str | None, dict[str, Any]], Any] | str


class StaticOrDynamic:
    """What the secret-checking methods (ticket, wampcra, cryptosign) start from: static
    ``principals`` (authid -> Principal) or a dynamic ``authenticator``, exactly one of the two."""

    def __init__(
        self,
        principals: Mapping[str, Principal] | None = None,
        authenticator: DynamicAuthenticator | None = None,
    ) -> None:
        if (principals is None) == (authenticator is None):
            raise ValueError(
                f"{type(self).__name__} needs either principals={{...}} or authenticator=..."
            )
        self.principals = dict(principals or {})
        self.authenticator = authenticator


def same(a: str, b: str) -> bool:
    """Constant-time string comparison (a secret's length and content leak nothing)."""
    return hmac.compare_digest(a.encode(), b.encode())


def ask(dynamic: DynamicAuthenticator, hello: HelloInfo, details: dict[str, Any]) -> Any:
    """Call a dynamic authenticator (a callable or a WAMP procedure's URI); the answer may be
    awaitable."""
    if isinstance(dynamic, str):
        if hello.call is None:
            raise RuntimeError(f"no way to call the authenticator procedure {dynamic!r}")
        return hello.call(dynamic, [hello.realm, hello.authid, details])
    return dynamic(hello.realm, hello.authid, details)


def principal_from(answer: Any) -> dict[str, Any] | None:
    """A dynamic authenticator's answer as a principal dict (``role`` at least), or None."""
    if isinstance(answer, str):
        return {"role": answer}
    if isinstance(answer, dict) and isinstance(answer.get("role"), str):
        return answer
    return None


def then(outcome: Any, step: Callable[[Any], Outcome]) -> Outcome:
    """Apply ``step`` to a value that may be awaitable, keeping it synchronous when it is not."""
    if not inspect.isawaitable(outcome):
        return step(outcome)

    async def chained() -> Any:
        return step(await outcome)

    return chained()
