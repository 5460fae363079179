"""One channel of the in-memory layer: its queued messages and the receivers waiting for one
(``receive()`` calls and ``receive_ready()`` futures)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

# The queue of every channel with no message queued: an empty deque costs ~700 bytes, once per
# idle consumer's channel. Never appended to (``Channel.push`` swaps in a deque of its own).
NO_MESSAGES: deque[tuple[float, dict[str, Any]]] = deque(maxlen=0)


class ReadyWaiter(asyncio.Future[None]):
    """A readiness future (``receive_ready``) that leaves its channel's waiters when cancelled:
    at once, in ``cancel()`` itself, because a done callback on every readiness would cost each
    idle consumer's wake-up a scheduled call (measured ~15% of a group message's CPU)."""

    __slots__ = ("layer", "name", "state")
    # Set when it waits (not when it is done at once): where to leave from.
    layer: _Owner
    name: str
    state: Channel

    def cancel(self, msg: Any | None = None) -> bool:
        """Cancel, and take this waiter off its channel (which is forgotten if nobody waits)."""
        if not super().cancel(msg):
            return False
        layer = getattr(self, "layer", None)
        if layer is not None:
            layer.ready_cancelled(self.name, self.state, self)
        return True


class _Owner(Protocol):
    def ready_cancelled(self, name: str, state: Channel, waiter: asyncio.Future[None]) -> None:
        """Forget ``waiter``, and ``name`` when nothing waits on it any more."""


class Channel:
    """One channel's queued messages and the receivers waiting for one."""

    __slots__ = ("capacity", "queue", "waiters")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.queue = NO_MESSAGES
        # A list, not a deque: there is rarely more than one waiter, and an empty deque costs
        # 13 times the memory of an empty list (700 bytes per idle consumer's channel).
        self.waiters: list[asyncio.Future[None]] = []

    def push(self, deadline: float, message: dict[str, Any]) -> None:
        """Queue ``message`` (its own deque from the first message on)."""
        if self.queue is NO_MESSAGES:
            self.queue = deque()
        self.queue.append((deadline, message))

    def pop(self) -> dict[str, Any]:
        """Take the head message; an emptied queue goes back to the shared empty one."""
        message = self.queue.popleft()[1]
        if not self.queue:
            self.queue = NO_MESSAGES
        return message

    def wake_one(self) -> None:
        """Wake the first receiver still waiting (skipping cancelled ones and dead loops)."""
        while self.waiters:
            waiter = self.waiters.pop(0)
            if waiter.done():
                continue
            try:
                waiter.set_result(None)
            except RuntimeError:
                # The waiter's event loop is closed (a cached layer outliving a test's loop).
                continue
            return
