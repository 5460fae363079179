"""The registry on RedisChannelLayer: claims, releases and purges, one EVALSHA each.

Layout (``P`` is the layer's prefix, ``S`` a space; ``{S}`` is a hash tag, so a space's keys
share a slot):

- ``P:r:{S}``: a hash, key -> ``exclusive<US>policy<US>value`` (the key's terms);
- ``P:r:{S}:m``: a hash, member -> ``key<US>node<US>seq``;
- ``P:r:{S}:k:<key>``: a hash, member -> node (a key's members, for the claim's check);
- ``P:r:{S}:q``: the claim counter.

A node is a process-local channel name, and its members live while its process's heartbeat key
does: on the durable layer ``P:{base!}:alive``, which the layer refreshes (see ``durable.py``);
on the pub/sub layer ``P:{node}:alive``, which the registry refreshes itself every third of
``heartbeat_ttl`` for the nodes of its process. A script that meets a member whose node has no
heartbeat drops it. The scripts read those heartbeat keys without
declaring them, so the registry needs the layer on one plain Redis server (no Cluster, one
shard): it says so when built on another.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from channel_layers.base import LayerUnavailable
from channel_layers.redis.connection import evalsha
from channel_layers.redis.scripts import ALIVE_SUFFIX, LIST_CLOSE, LIST_OPEN
from channel_layers.registry import SEPARATOR, Claim, Entry, Registry, require_plain

if TYPE_CHECKING:
    from channel_layers.redis.durable import RedisChannelLayer
    from channel_layers.redis.pubsub import RedisPubSubChannelLayer

logger = logging.getLogger(__name__)

_COMMON = f"""
local US = '{SEPARATOR}'
local function split(record)
  local out, start = {{}}, 1
  while true do
    local at = string.find(record, US, start, true)
    if not at then table.insert(out, string.sub(record, start)); return out end
    table.insert(out, string.sub(record, start, at - 1))
    start = at + 1
  end
end
-- The first character of the prefix argument says whose heartbeat a node has: 'b' its
-- process-local base's (the durable layer's own), 'w' its whole name's (the registry's).
local function is_alive(prefix, node, cache)
  local known = cache[node]
  if known == nil then
    local base = node
    if string.sub(prefix, 1, 1) == 'b' then base = string.match(node, '^[^!]*!') or node end
    prefix = string.sub(prefix, 2)
    local alive = prefix .. '{LIST_OPEN}' .. base .. '{LIST_CLOSE}{ALIVE_SUFFIX}'
    known = redis.call('EXISTS', alive) == 1
    cache[node] = known
  end
  return known
end
-- KEYS[1] terms, KEYS[2] members; kprefix .. key is a key's member hash
local function drop(kprefix, member)
  local record = redis.call('HGET', KEYS[2], member)
  if not record then return false end
  local key = split(record)[1]
  redis.call('HDEL', KEYS[2], member)
  redis.call('HDEL', kprefix .. key, member)
  if redis.call('HLEN', kprefix .. key) == 0 then redis.call('HDEL', KEYS[1], key) end
  return true
end
"""

# KEYS: terms, members, counter. ARGV: prefix, kprefix, key, member, node, exclusive, policy,
# value, purge ('1': drop the key's members of dead nodes first). Returns {granted, exclusive,
# policy, value}.
CLAIM = (
    _COMMON
    + """
local prefix, kprefix, key, member, node = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if ARGV[9] == '1' then
  local holders = redis.call('HGETALL', kprefix .. key)
  local cache = {}
  for i = 1, #holders, 2 do
    if not is_alive(prefix, holders[i + 1], cache) then drop(kprefix, holders[i]) end
  end
end
local terms = redis.call('HGET', KEYS[1], key)
if terms then
  local t = split(terms)
  if t[1] == '1' or ARGV[6] == '1' or t[2] ~= ARGV[7]
      or redis.call('HEXISTS', KEYS[2], member) == 1 then
    return {0, t[1], t[2], t[3]}
  end
elseif redis.call('HEXISTS', KEYS[2], member) == 1 then
  return {0, ARGV[6], ARGV[7], ARGV[8]}
else
  terms = ARGV[6] .. US .. ARGV[7] .. US .. ARGV[8]
  redis.call('HSET', KEYS[1], key, terms)
end
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], member, key .. US .. node .. US .. seq)
redis.call('HSET', kprefix .. key, member, node)
local t = split(terms)
return {1, t[1], t[2], t[3]}
"""
)

# KEYS: terms, members. ARGV: kprefix, member. Returns 1 when it was there.
RELEASE = _COMMON + "return drop(ARGV[1], ARGV[2]) and 1 or 0\n"

# KEYS: terms, members. ARGV: kprefix, member. Returns 0 when it was not there, 2 when its key
# went with it (no member left, dead or alive), else 1.
RELEASE_LAST = (
    _COMMON
    + """
local record = redis.call('HGET', KEYS[2], ARGV[2])
if not record then return 0 end
local key = split(record)[1]
drop(ARGV[1], ARGV[2])
if redis.call('HEXISTS', KEYS[1], key) == 1 then return 1 end
return 2
"""
)

# KEYS: terms, members. ARGV: prefix, kprefix, a node leaving now ('' for none). Drops the
# members of dead (and the leaving) nodes; returns {dropped, members flat, terms flat, the
# dropped flat: member, its record, its key's terms}.
ENTRIES = (
    _COMMON
    + """
local prefix, kprefix, leaving = ARGV[1], ARGV[2], ARGV[3]
local all = redis.call('HGETALL', KEYS[2])
local cache = {}
if leaving ~= '' then cache[leaving] = false end
local dropped, gone = 0, {}
for i = 1, #all, 2 do
  local fields = split(all[i + 1])
  if not is_alive(prefix, fields[2], cache) then
    local terms = redis.call('HGET', KEYS[1], fields[1]) or ''
    drop(kprefix, all[i]); dropped = dropped + 1
    table.insert(gone, all[i]); table.insert(gone, all[i + 1]); table.insert(gone, terms)
  end
end
return {dropped, redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[1]), gone}
"""
)

# ARGV: prefix, nodes... Returns 1 or 0 per node.
ALIVE = (
    _COMMON
    + """
local out, cache = {}, {}
for i = 2, #ARGV do out[i - 1] = is_alive(ARGV[1], ARGV[i], cache) and 1 or 0 end
return out
"""
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(member: Any, record: Any, terms: list[str] | None) -> Entry:
    """An entry from a member, its record (key, node, seq) and its key's terms."""
    key, node, seq = _text(record).split(SEPARATOR)
    mode, policy, value = terms or ["0", "", ""]
    return Entry(key, _text(member), node, int(seq), mode == "1", policy, value)


def _seq(entry: Entry) -> int:
    return entry.seq


class RedisRegistry(Registry):
    """:class:`Registry` on the Redis server of a :class:`RedisChannelLayer`."""

    #: 'b': a node lives while its process-local base beats (the durable layer does that).
    liveness = "b"

    def __init__(self, layer: RedisChannelLayer | RedisPubSubChannelLayer) -> None:
        if len(layer.shards) != 1 or layer.shards[0].is_cluster:
            raise NotImplementedError(
                "the channel layer's registry (WAMP clusters) needs the Redis layer on one "
                "plain Redis server: give it one host, not several shards or a Cluster"
            )
        self.layer = layer
        self.prefix = layer.prefix
        self.shard = layer.shards[0]

    @property
    def _alive_arg(self) -> str:
        return self.liveness + self.prefix

    def _keys(self, space: str) -> tuple[str, str, str, str]:
        if any(char in space for char in "{}"):
            raise ValueError(f"registry space {space!r} must not contain braces")
        terms = f"{self.prefix}:r:{{{space}}}"
        return terms, terms + ":m", terms + ":q", terms + ":k:"

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return await self.shard.run(lambda client: evalsha(client, script, keys, args))

    async def claim(
        self,
        space: str,
        key: str,
        member: str,
        node: str,
        *,
        exclusive: bool,
        policy: str = "",
        value: str = "",
        purge: bool = True,
    ) -> Claim:
        """Add ``member`` to ``key`` in one script (see ``channel_layers.registry``)."""
        require_plain(space=space, key=key, member=member, node=node, policy=policy, value=value)
        terms, members, counter, kprefix = self._keys(space)
        flag = "1" if exclusive else "0"
        purging = "1" if purge else "0"
        args = [self._alive_arg, kprefix, key, member, node, flag, policy, value, purging]
        granted, mode, held_policy, held_value = await self._run(
            CLAIM, [terms, members, counter], args
        )
        return Claim(bool(granted), _text(mode) == "1", _text(held_policy), _text(held_value))

    async def release(self, space: str, member: str) -> bool:
        """Remove ``member`` in one script."""
        terms, members, _, kprefix = self._keys(space)
        return bool(await self._run(RELEASE, [terms, members], [kprefix, member]))

    async def release_last(self, space: str, member: str) -> bool | None:
        """Remove ``member`` and tell whether its key went with it, in one script."""
        terms, members, _, kprefix = self._keys(space)
        outcome = int(await self._run(RELEASE_LAST, [terms, members], [kprefix, member]))
        return None if outcome == 0 else outcome == 2

    async def entries(self, space: str) -> list[Entry]:
        """Every live member of ``space``; those of dead nodes are purged on the way."""
        return (await self._entries(space, ""))[0]

    async def sweep(self, space: str) -> tuple[list[Entry], list[Entry]]:
        """The live members, and the dead nodes' members this script purged (one EVALSHA)."""
        return await self._entries(space, "")

    async def _entries(self, space: str, leaving: str) -> tuple[list[Entry], list[Entry]]:
        terms, members, _, kprefix = self._keys(space)
        args = [self._alive_arg, kprefix, leaving]
        _, flat_members, flat_terms, flat_gone = await self._run(ENTRIES, [terms, members], args)
        held = {
            _text(flat_terms[i]): _text(flat_terms[i + 1]).split(SEPARATOR)
            for i in range(0, len(flat_terms), 2)
        }
        found = []
        for i in range(0, len(flat_members), 2):
            key = _text(flat_members[i + 1]).split(SEPARATOR, 1)[0]
            found.append(_entry(flat_members[i], flat_members[i + 1], held.get(key)))
        gone = []
        for i in range(0, len(flat_gone), 3):
            terms_text = _text(flat_gone[i + 2])
            key_terms = terms_text.split(SEPARATOR) if terms_text else None
            gone.append(_entry(flat_gone[i], flat_gone[i + 1], key_terms))
        return sorted(found, key=_seq), sorted(gone, key=_seq)

    async def alive(self, nodes: Iterable[str]) -> set[str]:
        """The nodes whose process still beats (one script for all of them)."""
        asked = list(nodes)
        if not asked:
            return set()
        flags = await self._run(ALIVE, [], [self._alive_arg, *asked])
        return {node for node, flag in zip(asked, flags, strict=True) if flag}

    async def leave(self, space: str, node: str) -> int:
        """Remove ``node``'s members (and any dead node's) in one script."""
        before, _ = await self._entries(space, "")
        await self._entries(space, node)
        return sum(1 for entry in before if entry.node == node)


class RedisPubSubRegistry(RedisRegistry):
    """:class:`Registry` beside a :class:`RedisPubSubChannelLayer`, which stores nothing and
    beats no heartbeat: the registry beats one per node of its process (``P:{node}:alive``)."""

    liveness = "w"
    #: Seconds a node's members outlive its process (its heartbeat's TTL).
    heartbeat_ttl = 30.0

    def __init__(self, layer: RedisPubSubChannelLayer) -> None:
        super().__init__(layer)
        self._beating: dict[str, asyncio.Task[None]] = {}

    async def claim(
        self,
        space: str,
        key: str,
        member: str,
        node: str,
        *,
        exclusive: bool,
        policy: str = "",
        value: str = "",
        purge: bool = True,
    ) -> Claim:
        """Start ``node``'s heartbeat (a node claims from its own process), then claim."""
        beating = self._beating.get(node)
        if beating is None or beating.done():
            await self._beat(node)
            self._beating[node] = asyncio.get_running_loop().create_task(self._heartbeat(node))
        return await super().claim(
            space, key, member, node, exclusive=exclusive, policy=policy, value=value, purge=purge
        )

    async def _beat(self, node: str) -> None:
        key = f"{self.prefix}{LIST_OPEN}{node}{LIST_CLOSE}{ALIVE_SUFFIX}"
        ttl = math.ceil(self.heartbeat_ttl * 1000)
        await self.shard.run(lambda client: client.set(key, b"1", px=ttl))

    async def _heartbeat(self, node: str) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_ttl / 3)
            try:
                await self._beat(node)
            except LayerUnavailable as exc:
                logger.warning("could not refresh the registry heartbeat of %r: %s", node, exc)
