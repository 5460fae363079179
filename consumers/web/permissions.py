"""Crossbar.io's static roles: which actions a role may do on which URIs.

A permission has a ``uri``, a ``match`` (``exact``, ``prefix`` or ``wildcard``; older configs
write ``"uri": "*"`` or ``"com.example.*"`` for a prefix) and ``allow`` flags for ``call``,
``register``, ``publish`` and ``subscribe`` (older configs put the flags beside ``uri``). As in
Crossbar, the most specific matching permission decides: exact, then the longest prefix, then a
wildcard.

The HTTP bridge applies a role to its own requests. The WAMP router applies no roles yet (issue
12): a config's roles are parsed and checked here, and the bridge enforces its role.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ACTIONS = ("call", "register", "publish", "subscribe")


@dataclass(frozen=True)
class Permission:
    """The actions allowed on the URIs one pattern matches."""

    uri: str
    match: str = "exact"
    allow: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> Permission:
        """Parse one ``permissions`` entry of a Crossbar.io config."""
        uri = str(entry.get("uri", ""))
        match = str(entry.get("match", ""))
        if not match:
            match = "prefix" if uri.endswith("*") else "exact"
            uri = uri.rstrip("*")
        if match not in ("exact", "prefix", "wildcard"):
            raise ValueError(f"permission {uri!r}: match must be exact, prefix or wildcard")
        flags = entry.get("allow", entry)
        if not isinstance(flags, Mapping):
            raise ValueError(f"permission {uri!r}: 'allow' must be an object of flags")
        allowed = frozenset(action for action in ACTIONS if flags.get(action))
        return cls(uri, match, allowed)

    def matches(self, uri: str) -> bool:
        """Whether this permission's pattern covers ``uri``."""
        if self.match == "exact":
            return uri == self.uri
        if self.match == "prefix":
            return uri.startswith(self.uri)
        pattern, parts = self.uri.split("."), uri.split(".")
        return len(pattern) == len(parts) and all(
            not want or want == got for want, got in zip(pattern, parts, strict=True)
        )

    def rank(self) -> tuple[int, int]:
        """Specificity: exact beats the longest prefix, which beats a wildcard."""
        order = {"exact": 2, "prefix": 1, "wildcard": 0}[self.match]
        return order, len(self.uri)


@dataclass(frozen=True)
class Role:
    """A named role and its permissions; ``Role.everything(name)`` may do anything."""

    name: str
    permissions: tuple[Permission, ...] = ()

    @classmethod
    def everything(cls, name: str = "anonymous") -> Role:
        """A role allowed every action on every URI."""
        return cls(name, (Permission("", "prefix", frozenset(ACTIONS)),))

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> Role:
        """Parse one ``roles`` entry (``name`` and ``permissions``)."""
        if "authorizer" in entry:
            raise ValueError(
                f"role {entry.get('name')!r}: dynamic authorizers are not supported; "
                "list static permissions"
            )
        permissions: Iterable[Mapping[str, Any]] = entry.get("permissions", ())
        return cls(str(entry["name"]), tuple(Permission.from_config(p) for p in permissions))

    def allows(self, action: str, uri: str) -> bool:
        """Whether this role may do ``action`` (publish, call, ...) on ``uri``."""
        found = [permission for permission in self.permissions if permission.matches(uri)]
        if not found:
            return False
        return action in max(found, key=Permission.rank).allow
