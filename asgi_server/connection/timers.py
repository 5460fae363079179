"""Coarse deadlines shared by the connections of one server.

A connection's timeouts (request head, request body, keep-alive) are seconds long and need not
fire to the millisecond. An event-loop timer per connection costs more than the rest of a short
connection's bookkeeping: uvloop allocates, starts, stops and closes a libuv timer for each
``call_at()``/``cancel()`` pair, which a ``Connection: close`` request pays once for nothing.
Here connections share one loop timer per tick of ``1 / TICKS_PER_SECOND`` seconds instead: arming
is a dict lookup and a set insertion, disarming a set removal, and a deadline fires at most one
tick late.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["TICKS_PER_SECOND", "Deadlines", "TimedConnection"]

TICKS_PER_SECOND = 16  # a deadline fires at most 62.5 ms late


class TimedConnection(Protocol):
    """What ``Deadlines`` calls when a connection's tick comes (hashable by identity)."""

    def on_tick(self) -> None:
        """The tick the connection was armed for has come; it checks its own deadline."""


class Deadlines:
    """One loop timer per tick for every connection of a server that waits for that tick."""

    __slots__ = ("_loop", "_ticks")

    def __init__(self) -> None:
        self._ticks: dict[int, set[TimedConnection]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def arm(self, loop: asyncio.AbstractEventLoop, connection: TimedConnection, when: float) -> int:
        """Call ``connection.on_tick()`` at the first tick at or after ``when`` (``loop.time()``
        seconds). Returns the tick, which ``disarm`` takes."""
        tick = int(when * TICKS_PER_SECOND) + 1
        waiting = self._ticks.get(tick)
        if waiting is None:
            waiting = self._ticks[tick] = set()
            self._loop = loop
            loop.call_at(tick / TICKS_PER_SECOND, self._fire, tick)
        waiting.add(connection)
        return tick

    def disarm(self, connection: TimedConnection, tick: int) -> None:
        """Forget ``connection`` at ``tick`` (a tick that fired already is fine)."""
        waiting = self._ticks.get(tick)
        if waiting is not None:
            waiting.discard(connection)

    def _fire(self, tick: int) -> None:
        for connection in self._ticks.pop(tick, ()):
            try:
                connection.on_tick()
            except Exception as exc:  # one connection's failure must not spare the others
                assert self._loop is not None
                self._loop.call_exception_handler(
                    {"message": "Error in a connection's timer", "exception": exc}
                )
