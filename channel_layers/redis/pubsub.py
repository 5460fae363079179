"""RedisPubSubChannelLayer: the lowest latency, no storage: Redis PUBLISH/SUBSCRIBE.

A drop-in for ``channels_redis.pubsub.RedisPubSubChannelLayer`` (same CONFIG keys, including
``on_disconnect`` / ``on_reconnect``). A send or group_send is one PUBLISH; each process holds one
subscriber connection per shard and fans group messages out to its local member channels.

What pub/sub cannot do, said plainly:

- Nothing is stored. A message sent to a channel nobody subscribes to at that moment is gone,
  and so is every message published while this process is disconnected from Redis (between
  ``on_disconnect`` and ``on_reconnect``). Use RedisChannelLayer when messages must wait.
- A plain channel (no ``!``) read by several processes reaches EVERY one of them: PUBLISH is a
  broadcast. It cannot hand each message to exactly one reader (channels_redis#299); use
  RedisChannelLayer for worker queues.
- ``send`` never raises ChannelFull (the sender cannot see the receivers' queues); each local
  queue holds at most ``capacity`` messages and drops the rest with a WARNING and a counter.
- ``group_add`` only works for channels of this process (the process subscribes to the group).

No leaks (channels_redis#276 kept every subscription and queue forever): a channel on which
nothing has called ``receive()`` for ``idle_timeout`` seconds, and that no receive() is waiting
on, is unsubscribed, its queue dropped and its group memberships forgotten; a process-local
channel goes ``RELEASE_AFTER`` (2) seconds after its receive() was cancelled (its consumer
left) unless one came back; ``flush()`` and ``close()`` unsubscribe everything, and return
once Redis confirmed it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from channel_layers.base import BaseChannelLayer, CapacityPattern
from channel_layers.redis.client import RedisClient
from channel_layers.redis.connection import (
    REDIS_DOWN_ERRORS,
    HashRing,
    Shard,
    decode_hosts,
)
from channel_layers.redis.local import LocalQueue
from channel_layers.redis.resp import encode_command
from channel_layers.redis.subscriber import Subscriber
from channel_layers.serializers import MessageDecodeError, MessageSerializer

__all__ = ["RedisPubSubChannelLayer"]

logger = logging.getLogger(__name__)

Hook = Callable[[], Any]

#: Channels and groups whose PUBLISH head a layer keeps (names come and go: then rebuilt).
HEADS_KEPT = 100_000

#: Seconds after a cancelled receive() (a consumer that left) before its process-local channel
#: is unsubscribed, unless a receive() came back meanwhile (a timeout around receive()).
RELEASE_AFTER = 2.0


class _LocalChannel(LocalQueue):
    """A subscribed channel's queue plus what the idle sweep needs to know."""

    __slots__ = ("groups", "last_receive", "subscriber", "topic")

    def __init__(self) -> None:
        super().__init__()
        self.last_receive = time.monotonic()
        self.groups: dict[str, float] = {}  # group -> joined at (wall clock)
        # Where it is subscribed: receive() skips the subscribe call while this still holds.
        self.subscriber: Subscriber | None = None
        self.topic = ""

    def subscribed(self) -> bool:
        """True while its subscriber still has (or is getting) its topic."""
        return self.subscriber is not None and self.topic in self.subscriber.topics


class _LoopState:
    def __init__(self) -> None:
        self.channels: dict[str, _LocalChannel] = {}
        self.groups: dict[str, set[str]] = {}
        self.subscribers: dict[int, Subscriber] = {}
        self.sweeper: asyncio.Task[None] | None = None
        self.forgetting: set[asyncio.Task[None]] = set()  # releases under way (kept referenced)
        self.clients: dict[Shard, RedisClient] = {}  # each shard's client for this loop

    def client(self, shard: Shard) -> RedisClient:
        """``shard``'s client for this loop (Shard.client() looks the loop up every call)."""
        client = self.clients.get(shard)
        if client is None:
            client = self.clients[shard] = shard.client()
        return client


class RedisPubSubChannelLayer(BaseChannelLayer):
    """Channel layer on Redis pub/sub: one PUBLISH per message, nothing stored."""

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
        on_disconnect: Hook | None = None,
        on_reconnect: Hook | None = None,
        idle_timeout: float = 60,
    ) -> None:
        super().__init__(expiry, group_expiry, capacity, channel_capacity)
        if not prefix:
            raise ValueError("prefix must be a non-empty string, e.g. 'asgi'")
        self.prefix = prefix
        self._channel_prefix = f"{prefix}:c:"
        # Classic pub/sub is cluster-wide: any one node of a Cluster serves it as a plain server.
        hosts_ = [{k: v for k, v in h.items() if k != "cluster"} for h in decode_hosts(hosts)]
        self.shards = [Shard(host) for host in hosts_]
        self.ring = HashRing([shard.name for shard in self.shards])
        self.serializer = MessageSerializer(serializer_format, symmetric_encryption_keys)
        self.on_disconnect = on_disconnect
        self.on_reconnect = on_reconnect
        self.idle_timeout = float(idle_timeout)
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        # The last event loop's state (a weak reference to the loop): no WeakKeyDictionary
        # lookup per send.
        self._hot: tuple[weakref.ref[asyncio.AbstractEventLoop], _LoopState] | None = None
        # Per channel (and per group, keyed "g:" + group) checked once: its shard and its
        # PUBLISH command encoded up to the payload.
        self._heads: dict[str, tuple[Shard, str, bytes]] = {}

    # --- placement -------------------------------------------------------------------------

    def _topic(self, channel: str) -> str:
        return f"{self.prefix}:c:{channel}"

    def _group_topic(self, group: str) -> str:
        return f"{self.prefix}:g:{group}"

    def _shard_index(self, name: str) -> int:
        return self.ring.index(name)

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loop_state(loop)
        if state.sweeper is None or state.sweeper.done():
            state.sweeper = loop.create_task(self._sweep(state))
        return state

    def _loop_state(self, loop: asyncio.AbstractEventLoop) -> _LoopState:
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState()
        self._hot = (weakref.ref(loop), state)
        return state

    def _subscriber(self, state: _LoopState, index: int) -> Subscriber:
        subscriber = state.subscribers.get(index)
        if subscriber is None:
            subscriber = state.subscribers[index] = Subscriber(
                self.shards[index], partial(self._on_message, state), self._fire_hook
            )
        return subscriber

    async def _fire_hook(self, which: str) -> None:
        hook = self.on_disconnect if which == "disconnect" else self.on_reconnect
        if hook is None:
            return
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("the %s hook of the pub/sub channel layer failed", which)

    # --- the contract ---------------------------------------------------------------------

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """PUBLISH ``message`` to whoever subscribes to ``channel`` now (one round trip)."""
        head = self._heads.get(channel) if type(channel) is str else None
        if head is None:
            self.require_valid_channel_name(channel)
            head = self._head(channel, self._shard_index(channel), self._topic(channel))
        payload = self.serializer.serialize(self.require_valid_message(message))
        try:  # no coroutine of its own for the PUBLISH: awaited right here
            await self._publish(head, payload)
        except REDIS_DOWN_ERRORS as exc:
            # As shard.run does (a lean connection that failed has closed itself: nothing to
            # drop; the next send opens a new one).
            raise head[0].failed(exc) from exc
        self.stats.sent += 1

    def _head(self, key: str, index: int, topic: str) -> tuple[Shard, str, bytes]:
        if len(self._heads) >= HEADS_KEPT:
            self._heads.clear()
        command = encode_command(("PUBLISH", topic), total=3)
        head = self._heads[key] = (self.shards[index], topic, command)
        return head

    def _publish(self, head: tuple[Shard, str, bytes], payload: bytes) -> Awaitable[Any]:
        """One PUBLISH, to await (the caller turns the lean connection's errors into
        LayerUnavailable). On the lean client's open connection the request goes out right
        here, encoded from its head: the three coroutines of ``shard.run`` and the client were
        a fifth of a send's CPU."""
        shard, topic, command = head
        conn = None
        if shard.available():
            loop = asyncio.get_running_loop()
            hot = self._hot
            state = hot[1] if hot is not None and hot[0]() is loop else self._loop_state(loop)
            conn = state.client(shard).ready_connection()
        if conn is None:  # connecting, cooling down after a failure, or redis-py's client
            return shard.run(lambda client: client.publish(topic, payload))
        data = b"%b$%d\r\n%b\r\n" % (command, len(payload), payload)
        future: Awaitable[Any] = conn.request_encoded(data, shard.timeout)
        return future

    async def _subscribe_channel(self, channel: str) -> _LocalChannel:
        state = self._state()
        local = state.channels.get(channel)
        if local is None:
            local = state.channels[channel] = _LocalChannel()
        subscriber = self._subscriber(state, self._shard_index(channel))
        topic = self._topic(channel)
        await subscriber.subscribe(topic)
        local.subscriber, local.topic = subscriber, topic
        return local

    async def receive(self, channel: str) -> dict[str, Any]:
        """Subscribe to ``channel`` (once) and wait for its next message."""
        loop = asyncio.get_running_loop()
        hot = self._hot
        state = hot[1] if hot is not None and hot[0]() is loop else self._states.get(loop)
        local = state.channels.get(channel) if state is not None and type(channel) is str else None
        # Inlined local.subscribed(): this runs once per delivery of every group message.
        subscriber = local.subscriber if local is not None else None
        if subscriber is None or local is None or local.topic not in subscriber.topics:
            self.require_valid_channel_name(channel)  # else: checked and subscribed before
            local = await self._subscribe_channel(channel)
        local.last_receive = time.monotonic()  # and again after each wait (finally, below)
        while True:
            while local.entries:
                deadline, payload = local.entries.popleft()
                if local.entries and local.waiters:
                    local.wake_one()
                if deadline < time.time() * 1000:
                    self.stats.expired += 1
                    continue
                try:
                    message = self.serializer.deserialize_shared(payload)
                except MessageDecodeError as exc:
                    logger.error("skipped a message on %r: %s", channel, exc)
                    continue
                self.stats.received += 1
                return message
            waiter: asyncio.Future[None] = loop.create_future()
            local.waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if local.entries:
                    local.wake_one()
                elif "!" in channel:  # as a consumer's reader is when its client disconnects
                    loop.call_soon(self._release_later, channel, local)  # after last_receive
                raise
            finally:
                if waiter in local.waiters:
                    local.waiters.remove(waiter)
                local.last_receive = time.monotonic()

    def receive_ready(self, channel: str) -> asyncio.Future[None]:
        """A future done once ``channel`` has a message here (see the contract). Done at once
        when the channel is not subscribed yet: receive() subscribes (a round trip) and waits."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        local = state.channels.get(channel) if state is not None and type(channel) is str else None
        waiter: asyncio.Future[None] = loop.create_future()
        if local is None or not local.subscribed() or local.entries:
            waiter.set_result(None)
            return waiter
        local.waiters.append(waiter)
        local.last_receive = time.monotonic()
        waiter.add_done_callback(partial(self._ready_done, channel, local))
        return waiter

    def _ready_done(self, channel: str, local: _LocalChannel, waiter: asyncio.Future[None]) -> None:
        local.last_receive = time.monotonic()  # the idle sweep counts from here
        if not waiter.cancelled():
            return
        if waiter in local.waiters:
            local.waiters.remove(waiter)
        if "!" in channel and not local.waiters:  # its consumer ended: unsubscribe soon
            self._release_later(channel, local)

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new process-local channel, subscribed at once so no early message is missed."""
        name = self.make_channel_name(prefix, "pubsub")
        await self._subscribe_channel(name)
        return name

    async def group_add(self, group: str, channel: str) -> None:
        """Subscribe this process to ``group`` and deliver its messages to local ``channel``."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        local = await self._subscribe_channel(channel)
        state = self._state()
        local.groups[group] = time.time()
        members = state.groups.setdefault(group, set())
        members.add(channel)
        index = self._shard_index(group)
        await self._subscriber(state, index).subscribe(self._group_topic(group))

    async def group_discard(self, group: str, channel: str) -> None:
        """Forget ``channel`` in ``group``; unsubscribe from the group when no member is left."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        state = self._state()
        local = state.channels.get(channel)
        if local is not None:
            local.groups.pop(group, None)
        members = state.groups.get(group)
        if members is not None:
            members.discard(channel)
            if not members:
                await self._leave_group(state, group)

    async def _leave_group(self, state: _LoopState, group: str) -> None:
        state.groups.pop(group, None)
        subscriber = state.subscribers.get(self._shard_index(group))
        if subscriber is not None:
            await subscriber.unsubscribe(self._group_topic(group))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """PUBLISH ``message`` once; each subscribed process fans it out to its members."""
        head = self._heads.get("g:" + group) if type(group) is str else None
        if head is None:
            self.require_valid_group_name(group)
            head = self._head("g:" + group, self._shard_index(group), self._group_topic(group))
        payload = self.serializer.serialize(self.require_valid_message(message))
        try:
            await self._publish(head, payload)
        except REDIS_DOWN_ERRORS as exc:  # as in send()
            raise head[0].failed(exc) from exc
        self.stats.group_sends += 1

    # --- incoming messages ----------------------------------------------------------------

    def _on_message(self, state: _LoopState, topic: str, payload: bytes) -> None:
        """Called by ``state``'s Subscribers for every published message they read."""
        deadline = int((time.time() + self.expiry) * 1000)
        if topic.startswith(self._channel_prefix):
            channel = topic[len(self._channel_prefix) :]
            if not self._enqueue(state, channel, deadline, payload):
                self.stats.dropped_full += 1
                logger.warning(
                    "dropped a message for %r: its local queue is full (capacity %d); its "
                    "consumer is not keeping up",
                    channel,
                    self.get_capacity(channel),
                )
            return
        group = topic[len(self.prefix) + 3 :]
        members = state.groups.get(group, set())
        cutoff = time.time() - self.group_expiry
        dropped = delivered = 0
        entry = (deadline, payload)
        capacity = None if self.channel_capacity else self.capacity  # else: per channel
        channels = state.channels
        # Inlined _enqueue: this loop runs once per member of every group message.
        for channel in list(members):
            local = channels.get(channel)
            if local is None or local.groups.get(group, 0.0) < cutoff:
                members.discard(channel)  # expired (group_expiry) or forgotten
            elif len(local.entries) >= (capacity or self.get_capacity(channel)):
                dropped += 1
            else:
                local.entries.append(entry)
                waiters = local.waiters
                while waiters:  # inlined local.wake_one()
                    waiter = waiters.popleft()
                    if not waiter.done():
                        waiter.set_result(None)
                        break
                delivered += 1
        self.stats.group_deliveries += delivered
        self.record_group_drops(group, dropped, delivered + dropped)

    def _enqueue(self, state: _LoopState, channel: str, deadline: int, payload: bytes) -> bool:
        local = state.channels.get(channel)
        if local is None:
            return True  # unsubscribed meanwhile: nobody wants it
        if len(local.entries) >= (
            self.get_capacity(channel) if self.channel_capacity else self.capacity
        ):
            return False
        local.entries.append((deadline, payload))
        if local.waiters:
            local.wake_one()
        return True

    # --- cleanup ---------------------------------------------------------------------------

    async def _sweep(self, state: _LoopState) -> None:
        """Forget channels nobody receives from any more (the #276 leak), every so often."""
        while True:
            await asyncio.sleep(max(0.05, self.idle_timeout / 4))
            now = time.monotonic()
            for channel, local in list(state.channels.items()):
                if not local.waiters and now - local.last_receive > self.idle_timeout:
                    await self._forget(state, channel)

    def _release_later(self, channel: str, local: _LocalChannel) -> None:
        asyncio.get_running_loop().call_later(RELEASE_AFTER, self._release_if_left, channel, local)

    def _release_if_left(self, channel: str, local: _LocalChannel) -> None:
        """Forget a process-local channel whose last receive() was cancelled RELEASE_AFTER
        seconds ago and not resumed: its consumer is gone, so its subscription goes now rather
        than after ``idle_timeout`` (channels_redis unsubscribes at once)."""
        state = self._states.get(asyncio.get_running_loop())
        if state is None or state.channels.get(channel) is not local or local.waiters:
            return
        # (A timer may fire a hair early: the margin keeps that from skipping the release.)
        if time.monotonic() - local.last_receive >= RELEASE_AFTER * 0.9:
            state.forgetting.add(
                asyncio.get_running_loop().create_task(self._forget(state, channel))
            )
            for task in [task for task in state.forgetting if task.done()]:
                state.forgetting.discard(task)

    async def _forget(self, state: _LoopState, channel: str) -> None:
        local = state.channels.pop(channel, None)
        if local is None:
            return
        if local.entries:
            logger.info(
                "dropped %d unread message(s) of %r: nothing received from it for %g s",
                len(local.entries),
                channel,
                self.idle_timeout,
            )
        for group in list(local.groups):
            members = state.groups.get(group)
            if members is not None:
                members.discard(channel)
                if not members:
                    await self._leave_group(state, group)
        subscriber = state.subscribers.get(self._shard_index(channel))
        if subscriber is not None:
            await subscriber.unsubscribe(self._topic(channel))

    async def flush(self) -> None:
        """Unsubscribe from everything and drop every local queue (waiters keep waiting)."""
        state = self._states.get(asyncio.get_running_loop())
        if state is None:
            return
        waiting = {name: local for name, local in state.channels.items() if local.waiters}
        for channel in list(state.channels):
            await self._forget(state, channel)
        # A receive() waiting across a flush keeps its subscription: it still wants messages.
        for channel, local in waiting.items():
            local.entries.clear()
            local.groups.clear()
            state.channels[channel] = local
            await self._subscriber(state, self._shard_index(channel)).subscribe(
                self._topic(channel)
            )
        # Return once Redis has confirmed the unsubscribes (before: 0-719 topics were still
        # subscribed right after flush()).
        for subscriber in state.subscribers.values():
            await subscriber.settled()

    async def close(self) -> None:
        """Unsubscribe, stop the readers and close the connections of this event loop."""
        state = self._states.pop(asyncio.get_running_loop(), None)
        self._hot = None
        if state is not None:
            if state.sweeper is not None:
                state.sweeper.cancel()
            for subscriber in state.subscribers.values():
                await subscriber.close()
        for shard in self.shards:
            await shard.close()
