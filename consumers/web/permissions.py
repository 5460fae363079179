"""The HTTP bridge's roles: the WAMP router's ``Role`` and ``Permission``, kept at this path.

They live in ``consumers.wamp.roles`` (one model, one Crossbar.io config parser).

``Permission(uri, match, allow)`` here still takes the set of allowed actions, as it did when
the bridge had a model of its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..wamp.roles import ACTIONS, Role
from ..wamp.roles import Permission as _Permission
from ..wamp.uris import MatchPolicy

__all__ = ["ACTIONS", "Permission", "Role"]


# A function under the old class name, so existing callers keep working.
def Permission(
    uri: str, match: MatchPolicy = "exact", allow: Iterable[str] = frozenset()
) -> _Permission:
    """A ``consumers.wamp.roles.Permission`` allowing the actions named in ``allow``."""
    allowed = frozenset(allow)
    return _Permission(uri, match, **{action: action in allowed for action in ACTIONS})
