"""WAMP IDs, as the spec's "IDs" section says: integers in [1, 2^53].

Global-scope IDs (sessions, publications, subscriptions, registrations) are drawn at random from the
whole range so that they are unguessable and unique across router nodes without coordination;
session-scope IDs (the router's request IDs towards one peer) are a counter that wraps at 2^53.
"""

from __future__ import annotations

import hashlib
import secrets

#: The largest ID: 2^53, as far as an IEEE double (JavaScript's number) counts exactly.
MAX_ID = 2**53


def global_id() -> int:
    """A random global-scope ID in [1, 2^53]."""
    return secrets.randbelow(MAX_ID) + 1


def pattern_id(realm: str, uri: str, match: str) -> int:
    """The ID of a subscription to ``(uri, match)`` in ``realm`` on every node of a cluster:
    derived from the pattern (a hash, as evenly spread as a random ID), so that nodes name one
    subscription alike without asking each other. A pattern subscribed again gets it again."""
    digest = hashlib.blake2b(f"{realm}\x00{uri}\x00{match}".encode(), digest_size=8).digest()
    return int.from_bytes(digest) % MAX_ID + 1


class SessionScopeIds:
    """Sequential IDs for one session: 1, 2, 3, ... wrapping back to 1 after 2^53."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        """The next ID in this session's scope."""
        self._last = self._last + 1 if self._last < MAX_ID else 1
        return self._last
