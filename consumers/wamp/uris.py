"""URI checks (strict or loose, per realm) and the three match policies, as the spec defines them.

Strict URIs are lower-case letters, digits and underscores in dot-separated components; loose
URIs allow anything but whitespace, '.' and '#' in a component. Wildcard patterns may leave whole
components empty (``com..temp``); prefix patterns are matched on the string, not on components
(``com.app.obj1`` is a prefix of ``com.app.obj1-sub``), as the pattern-based subscription and
registration chapters say.
"""

from __future__ import annotations

import re
from typing import Literal

UriCheck = Literal["strict", "loose"]
MatchPolicy = Literal["exact", "prefix", "wildcard"]
MATCH_POLICIES: tuple[MatchPolicy, ...] = ("exact", "prefix", "wildcard")

_STRICT = r"[0-9a-z_]+"
_LOOSE = r"[^\s.#]+"
_PATTERNS: dict[tuple[UriCheck, bool], re.Pattern[str]] = {
    ("strict", False): re.compile(rf"^({_STRICT}\.)*{_STRICT}$"),
    ("loose", False): re.compile(rf"^({_LOOSE}\.)*{_LOOSE}$"),
    # Wildcard (and prefix) patterns: any component may be empty.
    ("strict", True): re.compile(rf"^(({_STRICT})?\.)*({_STRICT})?$"),
    ("loose", True): re.compile(rf"^(({_LOOSE})?\.)*({_LOOSE})?$"),
}


def valid_uri(uri: object, check: UriCheck, match: MatchPolicy = "exact") -> bool:
    """Whether ``uri`` is a well-formed URI (or a pattern, for a non-exact ``match``)."""
    if not isinstance(uri, str) or not uri:
        return False
    return _PATTERNS[(check, match != "exact")].match(uri) is not None


def reserved(uri: str) -> bool:
    """URIs under ``wamp.`` belong to the router (the meta API): clients may not register or
    publish there."""
    return uri.startswith("wamp.")


def wildcard_matches(pattern: str, uri: str) -> bool:
    """Whether ``uri`` matches the wildcard ``pattern`` (an empty component matches any one)."""
    pattern_parts = pattern.split(".")
    parts = uri.split(".")
    if len(pattern_parts) != len(parts):
        return False
    return all(p == "" or p == c for p, c in zip(pattern_parts, parts, strict=True))


def uri_matches(pattern: str, match: MatchPolicy, uri: str) -> bool:
    """Whether ``uri`` is matched by ``pattern`` under the policy ``match``."""
    if match == "exact":
        return pattern == uri
    if match == "prefix":
        return uri.startswith(pattern)
    return wildcard_matches(pattern, uri)
