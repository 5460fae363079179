"""TaskContext: what a running task knows about its run, and how it reports progress."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .queue import Queue

__all__ = ["TaskContext"]


@dataclass
class TaskContext:
    """The first argument of every task: its run's identity, and ``progress()``."""

    queue: Queue
    job_id: str
    name: str
    #: 1 for the first run; higher for retries (and for runs after a worker died).
    attempt: int
    max_attempts: int
    enqueued_at: float
    loop: asyncio.AbstractEventLoop = field(repr=False)
    #: The worker running it (``host:pid:random``), as recorded in the job's ``worker_ids``.
    worker_id: str = ""
    #: The last value given to progress(), None before.
    reported: float | None = None
    #: Set by progress(); the worker's lease keeper waits on it.
    changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    #: Called (on the loop) after each progress(): the worker starts its lease keeper.
    on_change: Callable[[], None] | None = field(default=None, repr=False)

    def progress(self, fraction: float) -> None:
        """Report progress (0.0 to 1.0). Never blocks: callable from sync and async tasks.

        The worker stores it with the next lease renewal (visible in status) and, when the queue
        has a ``progress_group``, sends it there.
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress takes a fraction from 0.0 to 1.0, got {fraction!r}")
        self.reported = float(fraction)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._changed()
        else:  # a sync task in a worker thread
            self.loop.call_soon_threadsafe(self._changed)

    def _changed(self) -> None:
        self.changed.set()
        if self.on_change is not None:
            self.on_change()

    @property
    def is_last_attempt(self) -> bool:
        """True when a failure now goes to the dead-letter list instead of a retry."""
        return self.attempt >= self.max_attempts
