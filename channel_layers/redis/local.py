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
import enum
import functools
import logging
import re
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from channel_layers.base import LayerStats, LayerUnavailable
from channel_layers.redis import scripts
from channel_layers.redis.client import CallbackConnection, RedisClient
from channel_layers.redis.connection import (
    REDIS_DOWN_ERRORS,
    Shard,
    evalsha,
    script_sha,
)
from channel_layers.redis.resp import encode_command

logger = logging.getLogger(__name__)

#: Counts of BLPOP-taken entries that await their decrement before a DRAIN goes out for them
#: alone: one DRAIN per this many keeps the counts near the truth for a fraction of a round trip.
DRAIN_PENDING_AT = 16

#: Local queues a loop keeps before the first sweep of unused ones.
SWEEP_MIN = 1000


class ListOwner(Protocol):
    """What the local queues and pop loops need from their layer (RedisChannelLayer), named
    here so that this module does not import the layer's."""

    receive_batch: int
    stats: LayerStats
    capacity: int
    channel_capacity: list[tuple[re.Pattern[str], int]]

    def channel_key(self, channel: str) -> str:
        """The Redis list holding ``channel``'s entries."""

    def shard_for(self, channel: str) -> Shard:
        """The shard that stores ``channel``."""

    def block_timeout(self, shard: Shard) -> float:
        """The server-side BLPOP timeout on ``shard``."""

    def get_capacity(self, channel: str) -> int:
        """The capacity of ``channel``."""


class LocalQueue:
    """Entries popped from Redis for one channel, waiting for this process's receive()."""

    __slots__ = ("entries", "poller", "used", "waiters")

    def __init__(self) -> None:
        self.entries: collections.deque[tuple[int, bytes]] = collections.deque()
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.poller: Poller | None = None  # what pops for this channel (RedisChannelLayer)
        self.used = True  # received from since the last sweep (RedisChannelLayer)

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


def _ready_done(queue: LocalQueue, poller: Poller, waiter: asyncio.Future[None]) -> None:
    """A readiness future completed (woken, failed or cancelled): it no longer waits."""
    poller.waiting -= 1
    if waiter in queue.waiters:  # cancelled before any wake-up reached it
        queue.waiters.remove(waiter)


class InFlight(enum.Enum):
    """The callback-driven command a Poller has on the wire (at most one; the loop task,
    when it runs, is the other way of popping, and excludes these)."""

    NOTHING = enum.auto()
    DRAIN = enum.auto()  # a DRAIN (maybe pipelined behind a send), reply to _drained
    POP = enum.auto()  # a BLPOP on a lent blocking connection, reply to _popped


class Poller:
    """What pops one Redis list for this event loop while receivers wait on it.

    Two ways, one at a time: a *fast drain* (a process list, the lean client's connection up)
    is a DRAIN whose reply is dispatched by a callback right where it is parsed, with no task
    and no loop turn in between; everything else (waiting in BLPOP, reconnecting, reporting a
    failure to the receivers) is the pop loop task :meth:`run`.
    """

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
        self.is_local = len(keys) > 1
        self.batch = batch
        self.block_timeout = block_timeout
        self.waiting = 0
        self.channels: set[str] = set()
        self.task: asyncio.Task[None] | None = None
        self.in_flight = InFlight.NOTHING  # a callback-driven command on the wire
        self.pop_connection: CallbackConnection | None = None  # that of InFlight.POP
        self.ran_dry = False  # the last DRAIN found the list empty
        self.stopped = False
        # Channel fields of entries BLPOP took, whose counts the next DRAIN decrements.
        self.pending: list[str] = state.pending.setdefault(keys[0], []) if self.is_local else []
        # The DRAIN that rides behind a send to this process, encoded once (when no counts
        # await their decrement, as in the steady state).
        self.drain_one = encode_command(("EVALSHA", script_sha(scripts.DRAIN), 2, *keys, 1))

    def want(self) -> None:
        """A receiver waits on this list: make sure something pops for it."""
        if self.busy():
            return
        if self.is_local and self.waiting == 0:  # only counts to take down (see _after_dispatch)
            self._fast_drain(0)
            return
        # While the list runs dry, go straight to BLPOP: a DRAIN first would add a round trip
        # to every message's latency. A burst makes BLPOP pop one entry per round trip only
        # until DRAIN_PENDING_AT counts await their decrement; then a DRAIN takes the rest.
        drain = self.is_local and not (self.ran_dry and len(self.pending) < DRAIN_PENDING_AT)
        if not ((drain and self._fast_drain(self.batch)) or self._fast_pop()):
            self._start_loop(drain_first=self.is_local)

    def busy(self) -> bool:
        """True while a callback command or the loop task is under way, or after stop()."""
        return self.in_flight is not InFlight.NOTHING or self.stopped or self.loop_running()

    def loop_running(self) -> bool:
        """True while the pop loop task runs."""
        return self.task is not None and not self.task.done()

    def _start_loop(self, drain_first: bool) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(drain_first))

    def _connection(self) -> CallbackConnection | None:
        """The lean client's open shared connection when a fast drain may use it, else None."""
        # Inlined busy(): this runs once per send to a channel of this process.
        task = self.task
        if (
            self.in_flight is not InFlight.NOTHING
            or self.stopped
            or (task is not None and not task.done())
        ):
            return None
        return self.state.client(self.shard).ready_connection() if self.shard.available() else None

    def _drain_args(self, limit: int) -> tuple[tuple[Any, ...], list[str]]:
        decrements = self.pending[:]
        self.pending.clear()
        sha = script_sha(scripts.DRAIN)
        return ("EVALSHA", sha, 2, *self.keys, limit, *decrements), decrements

    def _fast_drain(self, limit: int) -> bool:
        """Send a DRAIN whose reply :meth:`_drained` handles; False when the loop must do it."""
        conn = self._connection()
        if conn is None:
            return False
        args, decrements = self._drain_args(limit)
        conn.request_callback(args, self.shard.timeout, partial(self._drained, decrements))
        self.in_flight = InFlight.DRAIN
        return True

    def send_and_drain(self, send: bytes) -> asyncio.Future[Any] | None:
        """Write the command ``send`` (encoded: a SEND to a channel of this very process) and a
        DRAIN of one entry in one write, so that the entry comes back with the send's reply and
        the receive() that follows costs no round trip. None when a drain is under way already
        (or the fast connection is not up)."""
        conn = self._connection()
        if conn is None:
            return None
        # One entry, not a batch: the channel's queue is empty, so this moves at most one of its
        # entries out of Redis's capacity count (its local queue holds at most one more).
        if self.pending:
            drain, decrements = self._drain_args(1)
            send += encode_command(drain)
        else:
            decrements = []
            send += self.drain_one
        limit = self.shard.timeout
        future: asyncio.Future[Any] = conn.request_encoded_then(
            send, limit, partial(self._drained, decrements)
        )
        self.in_flight = InFlight.DRAIN
        return future

    def _drained(self, decrements: list[str], reply: Any) -> None:
        self.in_flight = InFlight.NOTHING
        if self.stopped:
            return
        if isinstance(reply, Exception):
            # The decrements are retried: if the DRAIN did run before the connection broke, a
            # count one too low only loosens capacity until the list drains.
            self.pending[:0] = decrements
            if isinstance(reply, REDIS_DOWN_ERRORS):  # as the loop would: receivers must know
                self._fail(self.shard.failed(reply))
            elif self.waiting > 0:  # NOSCRIPT (Redis restarted): the loop loads the script
                self._start_loop(drain_first=True)
            return
        self.ran_dry = not reply
        if reply:
            self.state.dispatch(reply)
            # Decide on the next drain after the woken receivers ran (their wake-ups were
            # scheduled first): a receiver served now no longer counts as waiting. Nobody
            # waiting now (a send's own drain, received after): a receiver that comes later
            # calls want() itself, and no drain is under way to stop it.
            if self.waiting > 0 or len(self.pending) >= DRAIN_PENDING_AT:
                asyncio.get_running_loop().call_soon(self._after_dispatch)
        elif self.waiting > 0 and not self._fast_pop():  # nothing queued: wait in BLPOP
            self._start_loop(drain_first=False)

    def _fast_pop(self) -> bool:
        """Send a BLPOP on an idle blocking connection, its reply handled by :meth:`_popped`
        (no task, no loop turn); False when the loop must do it (no such connection yet)."""
        conn = (
            self.state.client(self.shard).idle_blocking_connection()
            if self.shard.available()
            else None
        )
        if conn is None:
            return False
        limit = self.shard.timeout
        margin = 1.0 if limit is None else min(limit, 1.0)  # as LeanClient.blpop
        args = ("BLPOP", self.keys[0], self.block_timeout)
        conn.request_callback(args, self.block_timeout + margin, partial(self._popped, conn))
        self.in_flight, self.pop_connection = InFlight.POP, conn
        return True

    def _popped(self, conn: CallbackConnection, reply: Any) -> None:
        self.in_flight, self.pop_connection = InFlight.NOTHING, None
        if self.stopped:
            return
        self.state.client(self.shard).release_blocking_connection(
            conn
        )  # unless the error closed it
        if isinstance(reply, Exception):
            if isinstance(reply, REDIS_DOWN_ERRORS):  # as the loop would: receivers must know
                self._fail(self.shard.failed(reply))
            elif self.waiting > 0:
                self._start_loop(drain_first=self.is_local)
            return
        if reply is None:  # the server-side timeout: block again while anyone waits
            if self.waiting > 0:
                self.want()
            return
        self.state.dispatch([reply[1]])
        if self.is_local:
            self.pending.append(reply[1].split(b"|", 2)[1].decode())  # may name several
        asyncio.get_running_loop().call_soon(self._after_dispatch)

    def _after_dispatch(self) -> None:
        # Runs after the receivers woken by a dispatch (scheduled first): a receiver served now
        # no longer counts as waiting, so no pop is sent for it. Another BLPOP for nobody would
        # take a message from the other processes reading the same plain channel.
        if self.waiting > 0 or len(self.pending) >= DRAIN_PENDING_AT:
            self.want()  # does nothing while another drain or the loop runs

    async def run(self, drain_first: bool) -> None:
        """Pop while anyone waits; hand failures to the waiting receivers.

        Round trips: a receive whose message is already queued costs one DRAIN (which also
        pops up to ``batch`` more); a receive that has to wait costs one BLPOP. The capacity
        count of an entry taken by BLPOP is decremented by the next DRAIN (``pending``), which
        keeps it off the latency path; until then the count is one too high.
        """
        # One loop on purpose (41 lines with this docstring): its states (drain, block, exit)
        # share ``need_drain``, which helper methods would have to thread through.
        pending = self.pending
        # A plain channel never drains: BLPOP returns at once when an entry waits, and it takes
        # just one (other processes may read the same channel).
        need_drain = drain_first
        try:
            while True:
                if need_drain:
                    limit = self.batch if self.waiting > 0 else 0
                    decrements = pending[:]
                    pending.clear()
                    try:
                        items = await self._drain(limit, decrements)
                    except BaseException:
                        # Not applied (or applied and unconfirmed: then the count ends one
                        # too low, which only loosens capacity): retried with the next DRAIN.
                        pending[:0] = decrements
                        raise
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
                    self.state.dispatch([popped[1]])
                    if self.is_local:
                        pending.append(popped[1].split(b"|", 2)[1].decode())  # may name several
                    # Hand over to the callbacks: the blocking connection is open now.
                    asyncio.get_running_loop().call_soon(self._after_dispatch)
                    return
        except Exception as exc:  # LayerUnavailable, or a bug: either way the waiters must know
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        for channel in self.channels:
            self.state.queue(channel).fail_all(exc)

    async def _blpop(self, client: RedisClient) -> Any:
        return await client.blpop([self.keys[0]], timeout=self.block_timeout)

    async def _drain(self, limit: int, pending: list[str]) -> list[bytes]:
        items: list[bytes] = await self.shard.run(
            lambda client: evalsha(client, scripts.DRAIN, self.keys, [limit, *pending])
        )
        return items


class LoopState:
    """Everything the layer keeps per event loop: local queues, pop loops, heartbeat task."""

    def __init__(self, layer: ListOwner) -> None:
        self.layer = layer
        self.queues: dict[str, LocalQueue] = {}
        self.pollers: dict[str, Poller] = {}
        self.heartbeat: asyncio.Task[None] | None = None
        self.local_bases: set[str] = set()
        # Per process list: channels of entries BLPOP took whose counts await a decrement.
        self.pending: dict[str, list[str]] = {}
        self.sweep_at = SWEEP_MIN  # sweep() when this many queues exist
        self.clients: dict[Shard, RedisClient] = {}

    def client(self, shard: Shard) -> RedisClient:
        """``shard``'s client for this loop (looked up once: Shard.client() finds the running
        loop and looks it up in a weak dictionary on every call)."""
        client = self.clients.get(shard)
        if client is None:
            client = self.clients[shard] = shard.client()
        return client

    def sweep(self) -> None:
        """Forget the empty queues of channels nobody received from since the last sweep (and
        pop loops left without channels): else every channel a process ever used, one per
        WebSocket connection, would keep its queue for the life of the server."""
        for channel, queue in list(self.queues.items()):
            if queue.used or queue.entries or queue.waiters:
                queue.used = False
                continue
            del self.queues[channel]
            poller = queue.poller
            if poller is None:
                continue
            poller.channels.discard(channel)
            idle = poller.in_flight is InFlight.NOTHING and not poller.loop_running()
            if not poller.channels and idle and self.pollers.get(poller.keys[0]) is poller:
                del self.pollers[poller.keys[0]]
        # Twice what is left: sweeping costs O(queues), so it runs O(1) times per new queue.
        self.sweep_at = max(SWEEP_MIN, 2 * len(self.queues))

    def queue(self, channel: str) -> LocalQueue:
        """The local queue of ``channel``, created on first use."""
        queue = self.queues.get(channel)
        if queue is None:
            queue = self.queues[channel] = LocalQueue()
        return queue

    def dispatch(self, items: list[bytes]) -> None:
        """Put popped entries into their channels' local queues and wake one receiver each.

        A group_send's entry names every member in this process (``a!x,a!y``): each of their
        queues gets the same payload object, which receive() decodes once (see the layer).
        """
        for item in items:
            deadline_bytes, channels, payload = item.split(b"|", 2)
            deadline = int(deadline_bytes)
            for channel_bytes in channels.split(b","):
                self._enqueue(channel_bytes.decode(), deadline, payload)

    def _enqueue(self, channel: str, deadline: int, payload: bytes) -> None:
        queue = self.queues.get(channel)
        if queue is None:
            queue = self.queues[channel] = LocalQueue()
        layer = self.layer
        capacity = layer.get_capacity(channel) if layer.channel_capacity else layer.capacity
        if len(queue.entries) >= capacity:
            # Only reachable for a channel nobody receives from while a sibling channel of the
            # same process is being read; bounded so an abandoned channel cannot eat memory.
            self.layer.stats.dropped_full += 1
            logger.warning(
                "dropped a message for %r: its local queue is full (%d) and nothing is "
                "receiving from it; call receive() on it or discard it from its groups",
                channel,
                len(queue.entries),
            )
            return
        queue.entries.append((deadline, payload))
        if queue.waiters:
            queue.wake_one()

    def poller_for(self, channel: str) -> Poller:
        """The Poller of the Redis list that feeds ``channel`` (made on first use)."""
        layer = self.layer
        list_key = layer.channel_key(channel)
        poller = self.pollers.get(list_key)
        if poller is None or poller.stopped:
            is_local = "!" in channel
            keys = [list_key, scripts.counts_key(list_key)] if is_local else [list_key]
            # A plain channel is shared with other processes: take one entry at a time so that a
            # message never waits in this process while another one is idle.
            batch = layer.receive_batch if is_local else 1
            shard = layer.shard_for(channel)
            poller = Poller(self, shard, keys, batch, layer.block_timeout(shard))
            self.pollers[list_key] = poller
        poller.channels.add(channel)
        return poller

    def take_ready(self, channel: str, on_expired: Callable[[], None]) -> bytes | None:
        """The next live payload of ``channel`` if one is here already, else None (then
        :meth:`take` waits for one); expired ones are skipped."""
        queue = self.queues.get(channel)
        if queue is None or not queue.entries:
            return None
        if len(self.queues) > self.sweep_at:
            self.sweep()
        queue.used = True
        entries = queue.entries
        now = time.time() * 1000
        while entries:
            deadline, payload = entries.popleft()
            if deadline >= now:
                if entries:
                    queue.wake_one()
                return payload
            on_expired()
        return None

    async def take(
        self, channel: str, on_expired: Callable[[], None], loop: asyncio.AbstractEventLoop
    ) -> bytes:
        """Wait for and return the next live payload of ``channel`` (expired ones are skipped);
        ``loop`` is the running loop (the caller's, looked up once)."""
        if len(self.queues) > self.sweep_at:
            self.sweep()
        queue = self.queues.get(channel) or self.queue(channel)
        queue.used = True
        while True:
            while queue.entries:
                deadline, payload = queue.entries.popleft()
                if deadline >= time.time() * 1000:
                    if queue.entries:
                        queue.wake_one()
                    return payload
                on_expired()
            poller = queue.poller
            if poller is None or poller.stopped:
                poller = queue.poller = self.poller_for(channel)
            waiter: asyncio.Future[None] = loop.create_future()
            queue.waiters.append(waiter)
            poller.waiting += 1
            poller.want()
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

    def ready(self, channel: str, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """A future done once ``channel`` has an entry here (see the contract's receive_ready):
        it waits among the receivers, so the pop loop pops for it as for a receive()."""
        if len(self.queues) > self.sweep_at:
            self.sweep()
        queue = self.queues.get(channel) or self.queue(channel)
        queue.used = True
        waiter: asyncio.Future[None] = loop.create_future()
        if queue.entries:  # maybe expired: receive() skips those and waits
            waiter.set_result(None)
            return waiter
        poller = queue.poller
        if poller is None or poller.stopped:
            poller = queue.poller = self.poller_for(channel)
        queue.waiters.append(waiter)
        poller.waiting += 1
        waiter.add_done_callback(functools.partial(_ready_done, queue, poller))
        poller.want()
        return waiter

    async def stop(self) -> None:
        """Cancel the pop loops and the heartbeat (an in-flight pop may lose one entry)."""
        for poller in self.pollers.values():
            poller.stopped = True
            if poller.pop_connection is not None:  # its BLPOP must not pop for nobody
                poller.pop_connection.abort(LayerUnavailable("the layer was closed"))
        tasks: list[asyncio.Task[Any]] = [p.task for p in self.pollers.values() if p.task]
        if self.heartbeat is not None:
            tasks.append(self.heartbeat)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.pollers.clear()
        self.heartbeat = None
