"""RedisChannelLayer: durable channel queues in Redis, sharded over one or more servers.

A drop-in for ``channels_redis.core.RedisChannelLayer``: same CONFIG keys (``hosts``, ``prefix``,
``expiry``, ``group_expiry``, ``capacity``, ``channel_capacity``, ``symmetric_encryption_keys``,
``serializer_format``), different machinery:

- a send is one EVALSHA (capacity check, expiry trim and push in one Lua script); a receive costs
  one BLPOP, plus one EVALSHA per batch for process-local channels; a group_send is one EVALSHA
  on a single server (else one for the members plus one per shard the members live on;
  channels_redis: ~8 commands a message),
  and stores one entry per receiving process, which that process pops and decodes once;
- all process-local channels of a process share one Redis list and ONE pop loop (see
  ``_redis_local``), and a cancelled receive() loses nothing;
- messages and memberships are sharded by consistent hashing of the channel (process-local:
  its ``base!`` part) or group name; keys are hash-tagged, so a Redis Cluster works too;
- every process-local base has a heartbeat key; group_send drops members whose process stopped
  beating (within ``heartbeat_ttl`` seconds, 30 by default) instead of writing to a dead queue
  for ``group_expiry`` (channels_redis: a day);
- Redis down: calls raise LayerUnavailable within seconds and work again once Redis is back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from redis.crc import key_slot
from redis.exceptions import NoScriptError

from channel_layers.base import (
    BaseChannelLayer,
    CapacityPattern,
    ChannelFull,
    InvalidChannelName,
    LayerUnavailable,
)
from channel_layers.redis import scripts
from channel_layers.redis.client import RedisClient
from channel_layers.redis.connection import (
    REDIS_DOWN_ERRORS,
    HashRing,
    Shard,
    decode_hosts,
    evalsha,
    script_sha,
    socket_timeout,
)
from channel_layers.redis.local import LoopState
from channel_layers.redis.resp import bulk_int, encode_command
from channel_layers.serializers import MessageDecodeError, MessageSerializer

__all__ = ["RedisChannelLayer"]

logger = logging.getLogger(__name__)

#: Channels whose send route a layer keeps (names come and go: the cache is then rebuilt).
ROUTES_KEPT = 100_000


class _SendRoute:
    """What a send to one channel needs, worked out once per channel: its name checked, its
    shard, its keys, and the head of its SEND command encoded (the last four arguments,
    entry, capacity, TTL and time, are the only ones that change)."""

    __slots__ = ("head", "is_local", "keys", "name", "shard")

    def __init__(self, channel: str, shard: Shard, keys: list[str]) -> None:
        self.name = channel.encode()
        self.is_local = "!" in channel
        self.shard = shard
        self.keys = keys
        command = ("EVALSHA", script_sha(scripts.SEND), len(keys), *keys, channel)
        self.head = encode_command(command, total=len(command) + 4)


class RedisChannelLayer(BaseChannelLayer):
    """Channel layer on Redis lists: messages survive until received or expired."""

    #: Entries one pop-loop round trip may take off a process list.
    receive_batch = 500

    def __init__(
        self,
        hosts: Sequence[Any] | None = None,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[CapacityPattern, int] | None = None,
        symmetric_encryption_keys: Iterable[str | bytes] | None = None,
        serializer_format: str = "msgpack",
        heartbeat_ttl: float = 30,
        random_prefix_length: int = 12,  # accepted for channels_redis settings; not needed here
    ) -> None:
        super().__init__(expiry, group_expiry, capacity, channel_capacity)
        if not prefix or any(char in prefix for char in "{}*?[]\\"):
            raise ValueError(f"prefix {prefix!r} must be non-empty, without {{}}*?[]\\")
        self.prefix = prefix
        self.hosts = decode_hosts(hosts)
        self.shards = [Shard(host) for host in self.hosts]
        self.ring = HashRing([shard.name for shard in self.shards])
        self.serializer = MessageSerializer(serializer_format, symmetric_encryption_keys)
        self.heartbeat_ttl = float(heartbeat_ttl)
        # Unique per layer object: its process-local channels get their own Redis list.
        self.client_tag = os.urandom(6).hex()
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._placements: dict[str, tuple[int, int, str]] = {}
        self._routes: dict[str, _SendRoute] = {}
        self._kept_limits: tuple[int, int, bytes] = (-1, -1, b"")
        # The last event loop's state (a weak reference to the loop): a WeakKeyDictionary
        # lookup per send and per receive cost more than the rest of finding a queue.
        self._hot: tuple[weakref.ref[asyncio.AbstractEventLoop], LoopState] | None = None
        # Entries one event loop popped for channels nobody received from before that loop went
        # (close(), or the end of an async_to_sync call): the next loop's state takes them, else
        # a process list shared by all local channels would lose them.
        self._carried: dict[str, collections.deque[tuple[int, bytes]]] = {}
        # One shard that is no Cluster, one capacity: group_send reads the members and delivers
        # in one script call (else: one call for the members, then one per shard).
        self._one_trip_group_send = (
            len(self.shards) == 1 and not self.shards[0].is_cluster and not self.channel_capacity
        )

    # --- names and placement ---------------------------------------------------------------

    def channel_key(self, channel: str) -> str:
        """The Redis list holding ``channel``'s entries (shared by a process's local channels)."""
        return scripts.list_key(self.prefix, self.non_local_name(channel))

    def group_key(self, group: str) -> str:
        """The sorted set of ``group``'s members."""
        return scripts.group_key(self.prefix, group)

    def shard_for(self, channel: str) -> Shard:
        """The shard that stores ``channel`` (all of a process's local channels share one)."""
        return self.shards[self.ring.index(self.non_local_name(channel))]

    def block_timeout(self, shard: Shard) -> float:
        """Server-side BLPOP timeout: well under the socket timeout, so idle waits never die."""
        limit = socket_timeout(shard.host)
        return 2.0 if limit is None else max(0.1, min(2.0, limit / 2))

    def _state(self) -> LoopState:
        return self._loop_state(asyncio.get_running_loop())

    def _loop_state(self, loop: asyncio.AbstractEventLoop) -> LoopState:
        """The state of ``loop`` (the running one), made on first use."""
        hot = self._hot
        if hot is not None and hot[0]() is loop:
            return hot[1]
        state = self._states.get(loop) or self._new_state(loop)
        self._hot = (weakref.ref(loop), state)
        return state

    def _new_state(self, loop: asyncio.AbstractEventLoop) -> LoopState:
        """This loop's state, holding what earlier (now closed) loops popped but never gave out."""
        for old_loop, old_state in list(self._states.items()):
            if old_loop.is_closed():
                del self._states[old_loop]
                self._carry_over(old_state)
        state = self._states[loop] = LoopState(self)
        for channel, entries in self._carried.items():
            state.queue(channel).entries.extend(entries)
        self._carried.clear()
        return state

    def _carry_over(self, state: LoopState) -> None:
        for channel, queue in state.queues.items():
            if queue.entries:
                self._carried.setdefault(channel, collections.deque()).extend(queue.entries)

    def _expiry_ms(self) -> tuple[int, int, int]:
        """(now, the deadline of a message sent now, a key TTL) in milliseconds."""
        now = int(time.time() * 1000)
        expiry = math.ceil(self.expiry * 1000)
        return now, now + expiry, expiry + 1000

    # --- the contract ---------------------------------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """Queue ``message`` on ``channel`` (one EVALSHA); ChannelFull when it is at capacity."""
        route = self._routes.get(channel) if type(channel) is str else None
        if route is None:
            route = self._route(channel)
        payload = self.serializer.serialize(self.require_valid_message(message))
        now = int(time.time() * 1000)
        expiry = math.ceil(self.expiry * 1000)
        entry = b"%d|%b|%b" % (now + expiry, route.name, payload)
        capacity = self.get_capacity(channel) if self.channel_capacity else self.capacity
        # On the lean client's open connection the command goes out right here, encoded from
        # the route's head: shard.run's and the client's coroutines, and encoding every
        # argument again, were a third of a send's CPU.
        shard = route.shard
        state = self._loop_state(asyncio.get_running_loop())
        conn = state.client(shard).ready_connection() if shard.available() else None
        queued = None
        if conn is not None:
            limits = self._limits(capacity, expiry + 1000)
            data = b"%b$%d\r\n%b\r\n%b%b" % (route.head, len(entry), entry, limits, bulk_int(now))
            queue = state.queues.get(channel) if route.is_local else None
            sent = None
            if queue is not None and not queue.entries and queue.poller is not None:
                # This process receives from the channel and holds none of its entries: a
                # DRAIN in the same write brings the message back with the send's reply.
                sent = queue.poller.send_and_drain(data)
            try:
                queued = await (sent or conn.request_encoded(data, shard.timeout))
            except REDIS_DOWN_ERRORS as exc:
                # As shard.run does (a lean connection that failed has closed itself: nothing
                # to drop; the next send opens a new one).
                raise shard.failed(exc) from exc
            except NoScriptError:  # Redis restarted: sent again below, which loads the script
                pass  # (a DRAIN behind it failed alike and left it to the pop loop)
        if queued is None:  # connecting, cooling down, redis-py's client, or NOSCRIPT
            args = [channel, entry, capacity, expiry + 1000, now]
            queued = await shard.run(lambda client: evalsha(client, scripts.SEND, route.keys, args))
        if not queued:
            raise ChannelFull(
                f"channel {channel!r} holds {capacity} messages (its capacity); "
                "its consumer is not keeping up: retry later, or raise 'capacity'"
            )
        self.stats.sent += 1

    def _limits(self, capacity: int, ttl: int) -> bytes:
        """SEND's capacity and TTL arguments encoded (the same for most sends: kept)."""
        kept = self._kept_limits
        if kept[0] != capacity or kept[1] != ttl:
            kept = self._kept_limits = (capacity, ttl, bulk_int(capacity) + bulk_int(ttl))
        return kept[2]

    def _route(self, channel: str) -> _SendRoute:
        """Check ``channel`` and work out its send route (then cached)."""
        self.require_valid_channel_name(channel)
        if len(self._routes) >= ROUTES_KEPT:
            self._routes.clear()
        key = self.channel_key(channel)
        keys = [key, scripts.counts_key(key)] if "!" in channel else [key]
        route = self._routes[channel] = _SendRoute(channel, self.shard_for(channel), keys)
        return route

    async def receive(self, channel: str) -> dict[str, Any]:
        """Wait (as long as it takes) for the next message on ``channel``; cancel-safe."""
        # One get_running_loop() per receive (on Python < 3.12 each is a getpid() system call).
        loop = asyncio.get_running_loop()
        state = self._loop_state(loop)
        if type(channel) is not str or channel not in state.queues:  # known names were checked
            self._require_receivable(channel)
        while True:
            # A message already here (a send's DRAIN brought it): no coroutine to take it.
            payload = state.take_ready(channel, self._count_expired)
            if payload is None:
                payload = await state.take(channel, self._count_expired, loop)
            try:
                message = self.serializer.deserialize_shared(payload)
            except MessageDecodeError as exc:
                logger.error("skipped a message on %r: %s", channel, exc)
                continue
            self.stats.received += 1
            return message

    def receive_ready(self, channel: str) -> asyncio.Future[None]:
        """A future done once ``channel`` has a message popped into this process (see the
        contract): the pop loop serves it as it serves a waiting receive()."""
        loop = asyncio.get_running_loop()
        state = self._loop_state(loop)
        if type(channel) is not str or channel not in state.queues:
            self._require_receivable(channel)
        return state.ready(channel, loop)

    def _require_receivable(self, channel: str) -> None:
        self.require_valid_channel_name(channel)
        if "!" in channel and not self.non_local_name(channel).endswith(f".{self.client_tag}!"):
            # Its entries go to another process's list: this receive would wait forever.
            raise InvalidChannelName(
                f"{channel!r} is a process-local channel of another layer or process: only "
                "the layer whose new_channel() made it can receive from it"
            )

    def _count_expired(self) -> None:
        self.stats.expired += 1

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new process-local channel; its process's heartbeat starts with the first one."""
        name = self.make_channel_name(prefix, self.client_tag)
        base = self.non_local_name(name)
        state = self._state()
        if base not in state.local_bases:
            state.local_bases.add(base)
            await self._beat(base)
        if state.heartbeat is None or state.heartbeat.done():
            state.heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(state))
        return name

    async def _beat(self, base: str) -> None:
        key = scripts.alive_key(self.channel_key(base))
        ttl = math.ceil(self.heartbeat_ttl * 1000)
        await self.shard_for(base).run(lambda client: client.set(key, b"1", px=ttl))

    async def _heartbeat(self, state: LoopState) -> None:
        """Refresh this process's heartbeat keys three times per TTL while the loop runs."""
        while True:
            await asyncio.sleep(self.heartbeat_ttl / 3)
            for base in list(state.local_bases):
                try:
                    await self._beat(base)
                except LayerUnavailable as exc:
                    logger.warning("could not refresh the heartbeat of %r: %s", base, exc)

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` or refresh its membership (one EVALSHA)."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        key = self.group_key(group)
        ttl = math.ceil(self.group_expiry * 1000)

        args = [channel, time.time(), ttl]
        await self._group_shard(group).run(
            lambda client: evalsha(client, scripts.GROUP_ADD, [key], args)
        )

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; not being a member is fine."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        key = self.group_key(group)
        await self._group_shard(group).run(lambda client: client.zrem(key, channel))

    def _group_shard(self, group: str) -> Shard:
        return self.shards[self.ring.index(group)]

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Deliver ``message`` to every member: one round trip per shard holding members."""
        self.require_valid_group_name(group)
        payload = self.serializer.serialize(self.require_valid_message(message))
        self.stats.group_sends += 1
        if self._one_trip_group_send:
            await self._group_send_one_trip(group, payload)
            return
        members = await self._group_members(group)
        if not members:
            return
        now, deadline, ttl = self._expiry_ms()
        head = [payload, deadline, ttl, now, math.ceil(self.heartbeat_ttl * 1000)]
        batches = [
            self._deliver(shard, keys, args)
            for shard, keys, args in self._delivery_batches(members, head)
        ]
        delivered = dropped = 0
        dead: list[str] = []
        for result in await asyncio.gather(*batches):
            delivered += int(result[0])
            dropped += int(result[1])
            dead.extend(name.decode() for name in result[2])
        self.stats.group_deliveries += delivered
        self.record_group_drops(group, dropped, len(members))
        if dead:
            await self._remove_dead(group, dead)

    async def _group_send_one_trip(self, group: str, payload: bytes) -> None:
        """group_send as one script call (one plain server, no per-channel capacities)."""
        key = self.group_key(group)
        now, deadline, ttl = self._expiry_ms()
        grace = math.ceil(self.heartbeat_ttl * 1000)
        cutoff = time.time() - self.group_expiry
        args = [self.prefix, payload, deadline, ttl, now, grace, self.capacity, cutoff]
        delivered, dropped, dead, members = await self.shards[0].run(
            lambda client: evalsha(client, scripts.GROUP_SEND, [key], args)
        )
        self.stats.group_deliveries += int(delivered)
        self.record_group_drops(group, int(dropped), int(members))
        if dead:
            self._log_dead(group, [name.decode() for name in dead])

    async def _group_members(self, group: str) -> list[tuple[str, float]]:
        key = self.group_key(group)
        cutoff = time.time() - self.group_expiry
        flat = await self._group_shard(group).run(
            lambda client: evalsha(client, scripts.GROUP_MEMBERS, [key], [cutoff])
        )
        return [(flat[i].decode(), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    def _placement(self, channel: str) -> tuple[int, int, str]:
        """(shard index, cluster slot or 0, list key) of ``channel``, cached: group_send asks
        for every member every time."""
        placement = self._placements.get(channel)
        if placement is None:
            if len(self._placements) > 100_000:  # names come and go: bound the cache
                self._placements.clear()
            key = self.channel_key(channel)
            index = self.ring.index(self.non_local_name(channel))
            slot = key_slot(key.encode()) if self.shards[index].is_cluster else 0
            placement = self._placements[channel] = (index, slot, key)
        return placement

    def _delivery_batches(
        self, members: list[tuple[str, float]], head: list[Any]
    ) -> list[tuple[Shard, list[str], list[Any]]]:
        """One GROUP_DELIVER call per shard (and per cluster slot: a script's keys must share
        one), with one segment per target list (see the script for the layout)."""
        targets: dict[tuple[int, int], dict[str, tuple[list[str], list[float]]]] = {}
        for channel, joined in members:
            index, slot, key = self._placement(channel)
            channels, joins = targets.setdefault((index, slot), {}).setdefault(key, ([], []))
            channels.append(channel)
            joins.append(joined)
        with_capacities = bool(self.channel_capacity)
        batches = []
        for (index, _), lists in targets.items():
            keys: list[str] = []
            args: list[Any] = [*head, self.capacity, 1 if with_capacities else 0]
            for key, (channels, joins) in lists.items():
                is_local = key.endswith("!" + scripts.LIST_CLOSE)
                args += [len(keys) + 1, 1 if is_local else 0, int(max(joins) * 1000)]
                args.append(len(channels))
                if with_capacities:
                    for channel in channels:
                        args += [channel, self.get_capacity(channel)]
                else:
                    args += channels
                keys += [key, scripts.counts_key(key), scripts.alive_key(key)]
            batches.append((self.shards[index], keys, args))
        return batches

    async def _deliver(self, shard: Shard, keys: list[str], args: list[Any]) -> Any:
        return await shard.run(lambda client: evalsha(client, scripts.GROUP_DELIVER, keys, args))

    def _log_dead(self, group: str, dead: list[str]) -> None:
        logger.info(
            "removed %d member(s) of group %r whose process stopped its heartbeat: %s",
            len(dead),
            group,
            ", ".join(dead[:5]),
        )

    async def _remove_dead(self, group: str, dead: list[str]) -> None:
        self._log_dead(group, dead)
        key = self.group_key(group)
        await self._group_shard(group).run(lambda client: client.zrem(key, *dead))

    async def flush(self) -> None:
        """Delete every key under this layer's prefix (SCAN + UNLINK, never KEYS)."""
        for state in list(self._states.values()):
            for queue in state.queues.values():
                queue.entries.clear()
        pattern = f"{self.prefix}:*"

        async def wipe(client: RedisClient) -> None:
            batch: list[Any] = []
            async for key in client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    await client.unlink(*batch)
                    batch = []
            if batch:
                await client.unlink(*batch)

        for shard in self.shards:
            await shard.run(wipe)

    async def _release(self, base: str, decrements: list[str]) -> None:
        """What a closing process leaves of base ``base!``: none of its keys once its list
        is empty (before, its counts hash outlived it by ``expiry``)."""
        key = self.channel_key(base)
        keys = [key, scripts.counts_key(key)]
        await self.shard_for(base).run(partial(_release_keys, keys=keys, decrements=decrements))

    async def close(self) -> None:
        """Stop this loop's pop loops and heartbeat, drop its heartbeat keys, close clients."""
        state = self._states.pop(asyncio.get_running_loop(), None)
        self._hot = None
        if state is not None:
            await state.stop()
            self._carry_over(state)
            for base in state.local_bases:
                with contextlib.suppress(LayerUnavailable):  # else they expire by themselves
                    await self._release(base, state.pending.pop(self.channel_key(base), []))
        for shard in self.shards:
            await shard.close()


async def _release_keys(client: RedisClient, keys: list[str], decrements: list[str]) -> None:
    """Apply the last count decrements (an empty list's counts go: see DRAIN), and drop the
    heartbeat key, in one round trip."""
    await asyncio.gather(
        evalsha(client, scripts.DRAIN, keys, [0, *decrements]),
        client.delete(scripts.alive_key(keys[0])),
    )
