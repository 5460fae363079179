"""The receiving side of RedisChannelLayer inside one process: local queues and pop loops.

One pop loop (:class:`Poller`) per Redis list serves every receiver in the process that reads
from it: the process list ``P:{base!}`` carries all of the process's ``base!suffix`` channels,
and the loop demultiplexes entries into per-channel :class:`LocalQueue` objects by name.

Why receivers never pop from Redis themselves: a cancelled ``BLPOP`` can take a message off
the server whose reply is then thrown away. Here a receiver only waits on its local queue; the
pop loop is never cancelled by a receiver, so whatever it pops lands in a local queue and the
next ``receive()`` gets it (no loss, no duplicate). The loop blocks with a server-side timeout
shorter than the socket timeout, in a loop, so an idle receive waits as long as it must
(channels_redis's receives died after 5 s idle under redis-py's default socket timeout, #422).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from channel_layers import _redis_scripts as scripts
from channel_layers._redis_connection import Client, Shard, evalsha

if TYPE_CHECKING:
    from channel_layers.redis import RedisChannelLayer

logger = logging.getLogger("channel_layers.redis")


class LocalQueue:
    """Entries popped from Redis for one channel, waiting for this process's receive()."""

    __slots__ = ("entries", "waiters")

    def __init__(self) -> None:
        self.entries: collections.deque[tuple[int, bytes]] = collections.deque()
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def wake_one(self) -> None:
        """Wake the first receiver still waiting (it takes the head entry itself)."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def fail_all(self, exc: BaseException) -> None:
        """Make every waiting receiver raise ``exc`` (its pop loop lost Redis)."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)


class Poller:
    """The one pop loop for one Redis list in this event loop; runs while receivers wait."""

    def __init__(
        self,
        state: LoopState,
        shard: Shard,
        keys: list[str],
        batch: int,
        block_timeout: float,
    ) -> None:
        self.state = state
        self.shard = shard
        self.keys = keys  # [list] or [list, counts] for a process list
        self.batch = batch
        self.block_timeout = block_timeout
        self.waiting = 0
        self.channels: set[str] = set()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Pop while anyone waits; hand failures to the waiting receivers.

        Round trips: a receive whose message is already queued costs one DRAIN (which also
        pops up to ``batch`` more); a receive that has to wait costs one BLPOP. The capacity
        count of an entry taken by BLPOP is decremented by the next DRAIN (``pending``), which
        keeps it off the latency path; until then the count is one too high.
        """
        # One loop on purpose (47 lines with this docstring): its states (drain, block, exit)
        # share ``pending`` and ``need_drain``, which helper methods would have to thread through.
        is_local = len(self.keys) > 1
        pending = self.state.pending.setdefault(self.keys[0], []) if is_local else []
        # A plain channel never drains: BLPOP returns at once when an entry waits, and it takes
        # just one (other processes may read the same channel).
        need_drain = is_local
        try:
            while True:
                if need_drain:
                    limit = self.batch if self.waiting > 0 else 0
                    decrements = pending[:]
                    pending.clear()
                    items = await self._drain(limit, decrements)
                    if items:
                        self.state.dispatch(items)
                        await asyncio.sleep(0)  # let the woken receivers finish first
                        need_drain = self.waiting > 0
                        continue
                    need_drain = False
                if self.waiting == 0:
                    return
                popped = await self.shard.run(self._blpop)
                if popped:
                    # The sender's reply often arrives in the same read as this pop: one loop
                    # turn lets the sender resume first, so it sees a receive() it cancels
                    # right after send() still waiting rather than already served.
                    await asyncio.sleep(0)
                    self.state.dispatch([popped[1]])
                    if is_local:
                        pending.append(popped[1].split(b"|", 2)[1].decode())
                    # Let the woken receivers run before counting who still waits: another
                    # BLPOP for a receiver that is already served would take a message from
                    # the other processes reading the same plain channel.
                    await asyncio.sleep(0)
                    need_drain = is_local and (self.waiting > 0 or len(pending) >= 16)
        except Exception as exc:  # LayerUnavailable, or a bug: either way the waiters must know
            for channel in self.channels:
                self.state.queue(channel).fail_all(exc)
        finally:
            self.state.pollers.pop(self.keys[0], None)

    async def _blpop(self, client: Client) -> Any:
        return await client.blpop([self.keys[0]], timeout=self.block_timeout)

    async def _drain(self, limit: int, pending: list[str]) -> list[bytes]:
        items: list[bytes] = await self.shard.run(
            lambda client: evalsha(client, scripts.DRAIN, self.keys, [limit, *pending])
        )
        return items


class LoopState:
    """Everything the layer keeps per event loop: local queues, pop loops, heartbeat task."""

    def __init__(self, layer: RedisChannelLayer) -> None:
        self.layer = layer
        self.queues: dict[str, LocalQueue] = {}
        self.pollers: dict[str, Poller] = {}
        self.heartbeat: asyncio.Task[None] | None = None
        self.local_bases: set[str] = set()
        # Per process list: channels of entries BLPOP took whose counts await a decrement.
        self.pending: dict[str, list[str]] = {}

    def queue(self, channel: str) -> LocalQueue:
        """The local queue of ``channel``, created on first use."""
        queue = self.queues.get(channel)
        if queue is None:
            queue = self.queues[channel] = LocalQueue()
        return queue

    def dispatch(self, items: list[bytes]) -> None:
        """Put popped entries into their channels' local queues and wake one receiver each."""
        for item in items:
            deadline, channel_bytes, payload = item.split(b"|", 2)
            channel = channel_bytes.decode()
            queue = self.queue(channel)
            if len(queue.entries) >= self.layer.get_capacity(channel):
                # Only reachable for a channel nobody receives from while a sibling channel of the
                # same process is being read; bounded so an abandoned channel cannot eat memory.
                self.layer.stats.dropped_full += 1
                logger.warning(
                    "dropped a message for %r: its local queue is full (%d) and nothing is "
                    "receiving from it; call receive() on it or discard it from its groups",
                    channel,
                    len(queue.entries),
                )
                continue
            queue.entries.append((int(deadline), payload))
            queue.wake_one()

    def poller_for(self, channel: str) -> Poller:
        """The running pop loop that feeds ``channel``; started when none runs."""
        layer = self.layer
        list_key = layer.channel_key(channel)
        poller = self.pollers.get(list_key)
        if poller is None:
            is_local = "!" in channel
            keys = [list_key, list_key + ":n"] if is_local else [list_key]
            # A plain channel is shared with other processes: take one entry at a time so that a
            # message never waits in this process while another one is idle.
            batch = layer.receive_batch if is_local else 1
            shard = layer.shard_for(channel)
            poller = Poller(self, shard, keys, batch, layer.block_timeout(shard))
            self.pollers[list_key] = poller
            poller.task = asyncio.get_running_loop().create_task(poller.run())
        poller.channels.add(channel)
        return poller

    async def take(self, channel: str, on_expired: Callable[[], None]) -> bytes:
        """Wait for and return the next live payload of ``channel`` (expired ones are skipped)."""
        queue = self.queue(channel)
        loop = asyncio.get_running_loop()
        while True:
            while queue.entries:
                deadline, payload = queue.entries.popleft()
                if deadline >= time.time() * 1000:
                    if queue.entries:
                        queue.wake_one()
                    return payload
                on_expired()
            poller = self.poller_for(channel)
            waiter: asyncio.Future[None] = loop.create_future()
            queue.waiters.append(waiter)
            poller.waiting += 1
            try:
                await waiter
            except asyncio.CancelledError:
                # Whatever woke us stays queued; pass the wake-up on so nothing is stranded.
                if queue.entries:
                    queue.wake_one()
                raise
            finally:
                poller.waiting -= 1
                if waiter in queue.waiters:
                    queue.waiters.remove(waiter)

    async def stop(self) -> None:
        """Cancel the pop loops and the heartbeat (an in-flight pop may lose one entry)."""
        tasks: list[asyncio.Task[Any]] = [p.task for p in self.pollers.values() if p.task]
        if self.heartbeat is not None:
            tasks.append(self.heartbeat)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.pollers.clear()
        self.heartbeat = None
