"""Brute-force defence: failed authentications counted per authid and per client address.

A key (an authid, or an address) that failed ``max_failures`` times within ``window`` seconds is
blocked until its oldest failure in the window ages out; a blocked HELLO is refused without its
credential being checked. Counting failures, not attempts, means a legitimate user is never slowed
by their own successes. Memory is bounded: at most ``max_keys`` keys are tracked (the least recently
failing go first), each with at most ``max_failures`` timestamps.

The counts live in this process, so the check before a HELLO stays synchronous. On a cluster the
processes tell each other of every failure (``shared.py``) and each counts all of them.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class FailureLimiter:
    """Sliding-window failure counts per key (see the module docstring)."""

    def __init__(
        self,
        max_failures: int,
        window: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str) -> deque[float] | None:
        failures = self._failures.get(key)
        if failures is None:
            return None
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def recent(self, key: str) -> int:
        """How many failures ``key`` has in the current window."""
        return len(self._recent(key) or ())

    def blocked(self, key: str | None) -> bool:
        """Whether ``key`` has used up its failures in the current window (0 disables)."""
        if key is None or self.max_failures <= 0:
            return False
        failures = self._recent(key)
        return failures is not None and len(failures) >= self.max_failures

    def failed(self, key: str | None) -> None:
        """Count one failure of ``key``."""
        if key is None or self.max_failures <= 0:
            return
        failures = self._recent(key) or deque(maxlen=self.max_failures)
        failures.append(self.clock())
        self._failures[key] = failures
        self._failures.move_to_end(key)
        while len(self._failures) > self.max_keys:
            self._failures.popitem(last=False)


class AuthFailures:
    """The two limiters of a realm: per authid and per client address."""

    def __init__(
        self,
        per_authid: int,
        per_address: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.by_authid = FailureLimiter(per_authid, window, clock=clock)
        self.by_address = FailureLimiter(per_address, window, clock=clock)
        #: Told of each failure counted here (the cluster's ``FailureFeed``), when set.
        self.on_failure: Callable[[str | None, str | None], None] | None = None

    def blocked(self, authid: str | None, address: str | None) -> bool:
        """Whether either the authid or the address is blocked."""
        return self.by_authid.blocked(authid) or self.by_address.blocked(address)

    def failed(self, authid: str | None, address: str | None) -> None:
        """Count a failure of this process against both, and tell ``on_failure``."""
        self.count(authid, address)
        if self.on_failure is not None:
            self.on_failure(authid, address)

    def count(self, authid: str | None, address: str | None) -> None:
        """Count a failure against both (one of this process, or another's)."""
        self.by_authid.failed(authid)
        self.by_address.failed(address)
