"""Who receives a publication: the publisher-exclusion and black/white-listing rules.

The spec's "Subscriber Black- and Whitelisting" and "Publisher Exclusion" chapters: a subscriber
receives an event unless it is excluded by session ID, authid or authrole, and, when any eligible
list is given, only if it is on every eligible list given. ``exclude_me`` defaults to true.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .codec import Message


class Receiver(Protocol):
    """What the filter looks at: a session's ID, authid and authrole."""

    @property
    def id(self) -> int: ...

    @property
    def authid(self) -> str | None: ...

    @property
    def authrole(self) -> str: ...


def _set(values: list[int] | list[str] | None) -> frozenset[int | str] | None:
    return frozenset(values) if values is not None else None


@dataclass(frozen=True, slots=True)
class PublishFilter:
    """The receiver rules of one PUBLISH."""

    exclude: frozenset[int | str]
    exclude_authid: frozenset[int | str]
    exclude_authrole: frozenset[int | str]
    eligible: frozenset[int | str] | None
    eligible_authid: frozenset[int | str] | None
    eligible_authrole: frozenset[int | str] | None

    @classmethod
    def of(cls, publish: Message, publisher: int) -> PublishFilter:
        """The rules of ``publish`` sent by the session ``publisher``."""
        exclude = set(publish.exclude or ())
        if publish.exclude_me is not False:  # default true
            exclude.add(publisher)
        return cls(
            frozenset(exclude),
            frozenset(publish.exclude_authid or ()),
            frozenset(publish.exclude_authrole or ()),
            _set(publish.eligible),
            _set(publish.eligible_authid),
            _set(publish.eligible_authrole),
        )

    @property
    def only_excludes_sessions(self) -> bool:
        """True when only session IDs are excluded (the common case: a cheap set lookup)."""
        return not (
            self.exclude_authid
            or self.exclude_authrole
            or self.eligible is not None
            or self.eligible_authid is not None
            or self.eligible_authrole is not None
        )

    def allows(self, receiver: Receiver) -> bool:
        """Whether ``receiver`` gets the event."""
        if receiver.id in self.exclude:
            return False
        if receiver.authid in self.exclude_authid or receiver.authrole in self.exclude_authrole:
            return False
        if self.eligible is not None and receiver.id not in self.eligible:
            return False
        if self.eligible_authid is not None and receiver.authid not in self.eligible_authid:
            return False
        return self.eligible_authrole is None or receiver.authrole in self.eligible_authrole
