"""Exactly-once handling on top of at-least-once delivery: message ids and a duplicate filter.

A ``send`` that raised :class:`~channel_layers.base.LayerUnavailable` may have been delivered
(see the contract in ``base.py``), so a sender that retries can deliver a message twice. Give
such messages an id once, before the first attempt, and let the receiver drop ids it has seen::

    message = with_message_id({"type": "order.paid", "order": 42})
    for attempt in range(3):
        try:
            await layer.send("billing", message)  # the same id on every attempt
            break
        except LayerUnavailable:
            await asyncio.sleep(1)

    seen = DuplicateFilter()
    while True:
        message = await layer.receive("billing")
        if seen.is_duplicate(message):
            continue
        ...

The filter remembers the last ``size`` ids of one receiver, in memory: it covers retries, which
follow the first attempt within seconds, not a receiver that restarts (keep ids in your
database when handling must be idempotent across restarts).
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = ["MESSAGE_ID_KEY", "DuplicateFilter", "with_message_id"]

#: The message key that carries the id (any str or bytes value; a uuid4 hex by default).
MESSAGE_ID_KEY = "message_id"


def with_message_id(message: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``message`` with a fresh id under :data:`MESSAGE_ID_KEY` (kept if it has one)."""
    copy = dict(message)
    copy.setdefault(MESSAGE_ID_KEY, uuid.uuid4().hex)
    return copy


class DuplicateFilter:
    """Remembers the ids of the last ``size`` messages a receiver handled."""

    def __init__(self, size: int = 10_000, key: str = MESSAGE_ID_KEY) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.size = size
        self.key = key
        self._seen: collections.OrderedDict[Any, None] = collections.OrderedDict()

    def is_duplicate(self, message: Mapping[str, Any]) -> bool:
        """True when ``message``'s id was seen before; else remember it. No id: never a
        duplicate (messages sent without one are not deduplicated)."""
        message_id = message.get(self.key)
        if message_id is None:
            return False
        if message_id in self._seen:
            self._seen.move_to_end(message_id)
            return True
        self._seen[message_id] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return False
