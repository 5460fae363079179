"""The connections' shared ticks (asgi_server/connection/timers.py): never early, at most one tick
late, disarmed connections not called, one failing connection does not spare the others."""

from __future__ import annotations

import asyncio
from typing import Any

from asgi_server.connection.timers import TICKS_PER_SECOND, Deadlines


class Timed:
    """Records when its tick came; raises on it when told to."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fail: bool = False) -> None:
        self.loop = loop
        self.fail = fail
        self.fired_at: list[float] = []
        self.done = loop.create_future()

    def on_tick(self) -> None:
        self.fired_at.append(self.loop.time())
        if not self.done.done():
            self.done.set_result(None)
        if self.fail:
            raise RuntimeError("this connection's timer failed")


async def test_ticks_fire_in_order_never_early_and_skip_the_disarmed() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    now = loop.time()
    early, late, dropped = Timed(loop), Timed(loop), Timed(loop)
    early_when, late_when = now + 0.05, now + 0.3
    deadlines.arm(loop, early, early_when)
    deadlines.arm(loop, late, late_when)
    deadlines.disarm(dropped, deadlines.arm(loop, dropped, now + 0.05))
    await asyncio.wait_for(late.done, 5)
    assert early.fired_at[0] >= early_when and late.fired_at[0] >= late_when
    assert early.fired_at[0] < late.fired_at[0]
    assert len(early.fired_at) == len(late.fired_at) == 1 and dropped.fired_at == []


async def test_one_tick_serves_many_connections_with_one_loop_timer() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines()
    when = loop.time() + 0.05
    connections = [Timed(loop) for _ in range(100)]
    # Deadlines within one tick share it (and its one call_at): the same tick comes back.
    ticks = {
        deadlines.arm(loop, timed, when + i / (1000 * TICKS_PER_SECOND))
        for i, timed in enumerate(connections)
    }
    assert (
        len(ticks) <= 2
    )  # 100 deadlines spread over a tenth of a tick: one tick, two at a boundary
    await asyncio.wait_for(asyncio.gather(*(timed.done for timed in connections)), 5)
    assert all(timed.fired_at[0] >= when for timed in connections)


async def test_a_failing_connection_does_not_spare_the_others_in_its_tick() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    deadlines = Deadlines()
    when = loop.time() + 0.02
    failing, other = Timed(loop, fail=True), Timed(loop)
    deadlines.arm(loop, failing, when)
    deadlines.arm(loop, other, when)
    await asyncio.wait_for(asyncio.gather(failing.done, other.done), 5)
    await asyncio.sleep(0)
    assert other.fired_at and [type(e["exception"]) for e in errors] == [RuntimeError]
