"""Roles and permissions: who may publish, subscribe, call or register which URIs in a realm.

A ``Role`` holds ``Permission`` rules on URI patterns. For one URI the most specific rule wins:
an exact rule, else the longest matching prefix, else the most specific wildcard (the one with the
most named components; among equals, the one declared first), the order the dealer uses to pick a
registration. A URI no rule matches is refused. A role may instead (or in addition, for the URIs
its rules do not cover) ask a dynamic ``authorizer``: a Python callable or a WAMP procedure; its
decisions are cached per session and URI (see ``authorizer.py``).

The built-in role ``trusted`` (the router's own in-process sessions) may do anything unless a
realm declares a role of that name itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .uris import MatchPolicy, uri_matches

Action = Literal["publish", "subscribe", "call", "register"]
ACTIONS: tuple[Action, ...] = ("publish", "subscribe", "call", "register")


@dataclass(frozen=True)
class Decision:
    """An authorization outcome: allowed or not, whether to disclose the session's identity
    (caller to callees, publisher to subscribers), and how long it may be cached (seconds)."""

    allow: bool
    disclose: bool = False
    cache: float = 0.0

    @classmethod
    def of(cls, value: object) -> Decision:
        """A decision from what an authorizer returned: a bool, a ``Decision``, or a dict
        ``{"allow": bool, "disclose": bool, "cache": seconds}`` (what a WAMP procedure returns)."""
        if isinstance(value, Decision):
            return value
        if isinstance(value, bool):
            return cls(value)
        if isinstance(value, dict):
            return cls(
                value.get("allow") is True,
                value.get("disclose") is True,
                float(value.get("cache") or 0.0),
            )
        return cls(False)  # anything else is a refusal: fail closed


@dataclass(frozen=True)
class Permission:
    """What a role may do on a URI pattern (``match``: exact, prefix or wildcard)."""

    uri: str
    match: MatchPolicy = "exact"
    publish: bool = False
    subscribe: bool = False
    call: bool = False
    register: bool = False
    #: Disclose the caller's identity to callees on calls this rule allows.
    disclose_caller: bool = False
    #: Disclose the publisher's identity to subscribers on publications this rule allows.
    disclose_publisher: bool = False

    def __post_init__(self) -> None:
        if self.match not in ("exact", "prefix", "wildcard"):
            raise ValueError(f"match must be exact, prefix or wildcard, not {self.match!r}")

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> Permission:
        """One ``permissions`` entry of a Crossbar.io config: ``uri``, ``match``, ``allow``
        flags and ``disclose`` (``caller``, ``publisher``); older configs put the flags beside
        ``uri`` and write a prefix as ``"com.example.*"``."""
        uri = str(entry.get("uri", ""))
        match: Any = entry.get("match")  # checked by __post_init__
        if not match:
            match = "prefix" if uri.endswith("*") else "exact"
            uri = uri.rstrip("*")
        flags = entry.get("allow", entry)
        disclose = entry.get("disclose") or {}
        if not isinstance(flags, Mapping) or not isinstance(disclose, Mapping):
            raise ValueError(f"permission {uri!r}: 'allow' and 'disclose' must be objects")
        return cls(
            uri,
            match,
            **{action: flags.get(action) is True for action in ACTIONS},
            disclose_caller=disclose.get("caller") is True,
            disclose_publisher=disclose.get("publisher") is True,
        )

    def decide(self, action: Action) -> Decision:
        """This rule's answer for ``action``."""
        allowed = bool(getattr(self, action))
        if action == "call":
            return Decision(allowed, self.disclose_caller)
        if action == "publish":
            return Decision(allowed, self.disclose_publisher)
        return Decision(allowed)


#: A dynamic authorizer: ``(session details, uri, action)`` -> a bool, a ``Decision`` or a dict,
#: possibly awaitable. Session details are a dict: session, authid, authrole, authmethod,
#: authprovider, authextra, transport.
AuthorizerCallable = Callable[[dict[str, Any], str, str], Any | Awaitable[Any]]


@dataclass(frozen=True)
class Role:
    """A named role of a realm: static permissions and, optionally, a dynamic authorizer (a
    callable, or the URI of a WAMP procedure some component registered)."""

    name: str
    permissions: Sequence[Permission] = ()
    authorizer: AuthorizerCallable | str | None = None
    _table: PermissionTable = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "permissions", tuple(self.permissions))
        object.__setattr__(self, "_table", PermissionTable(self.permissions))

    @classmethod
    def trusted(cls, name: str = "trusted") -> Role:
        """A role that may do anything (an explicit choice, e.g. for backend components)."""
        return cls(name, [Permission("", "prefix", True, True, True, True)])

    @classmethod
    def from_config(cls, entry: Mapping[str, Any]) -> Role:
        """One ``roles`` entry of a Crossbar.io config: ``name`` and ``permissions``, or
        ``authorizer`` (the URI of a WAMP procedure, Crossbar.io's dynamic authorizer)."""
        permissions: Iterable[Mapping[str, Any]] = entry.get("permissions", ())
        authorizer = entry.get("authorizer")
        if authorizer is not None and not isinstance(authorizer, str):
            raise ValueError(f"role {entry.get('name')!r}: 'authorizer' must be a procedure URI")
        return cls(str(entry["name"]), [Permission.from_config(p) for p in permissions], authorizer)

    def rule_for(self, uri: str) -> Permission | None:
        """The most specific permission matching ``uri`` (None: no rule covers it)."""
        return self._table.best(uri)

    def allows(self, action: str, uri: str) -> bool:
        """Whether this role's static permissions let it do ``action`` on ``uri`` (its dynamic
        authorizer, if any, is not asked: the HTTP bridge, which uses this, has none)."""
        rule = self._table.best(uri)
        return rule is not None and action in ACTIONS and bool(getattr(rule, action))


class PermissionTable:
    """Permissions indexed for most-specific-first lookup: exact rules in a dict, prefixes
    longest first, wildcards most named components first."""

    def __init__(self, permissions: Iterable[Permission]) -> None:
        self.exact: dict[str, Permission] = {}
        prefixes: list[Permission] = []
        wildcards: list[Permission] = []
        for permission in permissions:
            if permission.match == "exact":
                self.exact.setdefault(permission.uri, permission)
            elif permission.match == "prefix":
                prefixes.append(permission)
            else:
                wildcards.append(permission)
        # sorted() is stable: among equally specific rules the first declared wins.
        self.prefixes = sorted(prefixes, key=lambda p: -len(p.uri))
        self.wildcards = sorted(wildcards, key=lambda p: -sum(1 for c in p.uri.split(".") if c))

    def best(self, uri: str) -> Permission | None:
        """The most specific permission matching ``uri``."""
        exact = self.exact.get(uri)
        if exact is not None:
            return exact
        for permission in self.prefixes:
            if uri.startswith(permission.uri):
                return permission
        for permission in self.wildcards:
            if uri_matches(permission.uri, "wildcard", uri):
                return permission
        return None


TRUSTED = Role.trusted()
