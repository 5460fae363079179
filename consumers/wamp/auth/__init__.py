"""Authentication methods, one module each, behind the ``Authenticator`` interface (``base``).

``Realm("realm1", roles=[...], auth=[Ticket(...), WampCra(...)])``: the HELLO's ``authmethods``
are tried in the client's order; the first configured method that applies decides.
"""

from __future__ import annotations

from .anonymous import Anonymous
from .base import (
    Accept,
    Authenticator,
    Challenge,
    HelloInfo,
    Principal,
    Refuse,
    Skip,
    TransportInfo,
)
from .cookie import Cookie, CookieStore
from .cryptosign import Cryptosign
from .ticket import Ticket
from .wampcra import WampCra

__all__ = [
    "Accept",
    "Anonymous",
    "Authenticator",
    "Challenge",
    "Cookie",
    "CookieStore",
    "Cryptosign",
    "HelloInfo",
    "Principal",
    "Refuse",
    "Skip",
    "Ticket",
    "TransportInfo",
    "WampCra",
]
