"""The Lua scripts of RedisChannelLayer: one EVALSHA per send, per drain and per shard of a
group_send, so each costs one round trip however much it does.

Storage layout (``P`` is the layer's ``prefix``; ``{...}`` is a Redis Cluster hash tag, so every
key a script touches sits in one slot):

- ``P:{name}``: a list of queued entries for the plain channel ``name``;
- ``P:{base!}``: ONE list for all process-local channels ``base!suffix`` of a process, read by one
  blocking-pop loop in that process, which hands entries to local queues by channel name;
- ``P:{base!}:n``: a hash counting the entries queued per process-local channel (capacity), kept
  only while the list is as long as a capacity (shorter, nobody can be full: see ``counted``);
- ``P:{base!}:alive``: the process's heartbeat (a TTL key); without it its memberships are dead;
- ``P:g:{group}``: a sorted set of the group's member channels, scored by join time (seconds).

An entry is ``<deadline ms>|<channels>|<payload>``: the deadline enforces ``expiry`` per message,
and the channel names tell the process's pop loop which local queues it belongs to. A send names
one channel; a group_send puts ONE entry on each process list naming every member of that process,
comma-separated (channel names cannot hold a comma): Redis stores, and the process pops and
decodes, the payload once per process rather than once per member.
"""

from __future__ import annotations

# --- the key layout, written once: Python calls these, and the Lua below is generated from
# the same pieces (scripts that compute keys themselves get _KEYS_LUA).

#: A list key is ``prefix + LIST_OPEN + name + LIST_CLOSE`` (the braces: a Cluster hash tag).
LIST_OPEN, LIST_CLOSE = ":{", "}"
GROUP_OPEN = ":g:{"
#: A process list's companions: its per-channel counts (a hash) and its heartbeat key.
COUNTS_SUFFIX, ALIVE_SUFFIX = ":n", ":alive"


def list_key(prefix: str, name: str) -> str:
    """The list of the plain channel ``name``, or of process-local base ``name`` (``base!``)."""
    return f"{prefix}{LIST_OPEN}{name}{LIST_CLOSE}"


def group_key(prefix: str, group: str) -> str:
    """The sorted set of ``group``'s members."""
    return f"{prefix}{GROUP_OPEN}{group}{LIST_CLOSE}"


def counts_key(list_key: str) -> str:
    """The hash counting the entries queued per channel on process list ``list_key``."""
    return list_key + COUNTS_SUFFIX


def alive_key(list_key: str) -> str:
    """The heartbeat of the process that reads process list ``list_key``."""
    return list_key + ALIVE_SUFFIX


_KEYS_LUA = f"""
local function list_key(prefix, name) return prefix .. '{LIST_OPEN}' .. name .. '{LIST_CLOSE}' end
local function counts_key(list) return list .. '{COUNTS_SUFFIX}' end
local function alive_key(list) return list .. '{ALIVE_SUFFIX}' end
"""

# Run a command over a long list of values in chunks of 1000 (Lua's unpack() is limited to a
# few thousand values; an even chunk keeps field/value pairs together) and join the replies.
# One HMGET or HSET for a thousand fields costs about what three single-field calls cost.
_BULK = """
local function bulk(command, key, values)
  local out = {}
  for first = 1, #values, 1000 do
    local part = redis.call(command, key, unpack(values, first, math.min(first + 999, #values)))
    if type(part) == 'table' then
      for i = 1, #part do out[#out + 1] = part[i] end
    end
  end
  return out
end
"""

# Count down the queued entries of the channels that popped entries name (comma-separated): the
# counts are summed per channel first, then read, written and dropped (at zero, so that no field
# outlives its channel) with one HMGET, HSET and HDEL for the whole batch.
_DECREMENT = (
    _BULK
    + """
local function tally(totals, channels)
  for channel in string.gmatch(channels, '[^,]+') do
    totals[channel] = (totals[channel] or 0) + 1
  end
end

local function decrement(counts, totals)
  if redis.call('EXISTS', counts) == 0 then return end  -- the counts are implicit (see below)
  local channels = {}
  for channel in pairs(totals) do channels[#channels + 1] = channel end
  if #channels == 0 then return end
  local values = bulk('HMGET', counts, channels)
  local updates, gone = {}, {}
  for j, channel in ipairs(channels) do
    local left = (values[j] and tonumber(values[j]) or 0) - totals[channel]
    if left > 0 then
      updates[#updates + 1] = channel
      updates[#updates + 1] = left
    else
      gone[#gone + 1] = channel
    end
  end
  if #updates > 0 then bulk('HSET', counts, updates) end
  if #gone > 0 then bulk('HDEL', counts, gone) end
end

-- A process list's counts hash is exact when it exists, and implicit when it does not: no
-- channel can have more entries queued than the list holds, so while the list is shorter than
-- a capacity in question nothing needs counting (a 1000-member group message would otherwise
-- write 1000 counts on its way in and 1000 on its way out). The first time the list reaches a
-- capacity, its entries are counted once here; from then on every push and pop keeps the hash
-- exact, until the list runs empty and DRAIN drops it.
local function counted(list, counts, capacity)
  if redis.call('EXISTS', counts) == 1 then return true end
  if redis.call('LLEN', list) < capacity then return false end
  local totals, channels = {}, {}
  for _, item in ipairs(redis.call('LRANGE', list, 0, -1)) do
    tally(totals, string.match(item, '^%d+|([^|]*)|'))
  end
  for channel, n in pairs(totals) do
    channels[#channels + 1] = channel
    channels[#channels + 1] = n
  end
  if #channels == 0 then return false end
  bulk('HSET', counts, channels)
  return true
end
"""
)

#: KEYS: list[, counts]. ARGV: channel, entry, capacity, ttl ms, now ms.
#: Returns 1 when queued, 0 when the channel is at capacity.
SEND = (
    _DECREMENT
    + """
local list, counts = KEYS[1], KEYS[2]
local channel, capacity, now = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[5])
-- Expired entries at the head must not hold capacity; a few per send keeps this O(1).
for _ = 1, 20 do
  local head = redis.call('LINDEX', list, 0)
  if not head then break end
  local deadline, owner = string.match(head, '^(%d+)|([^|]*)|')
  if tonumber(deadline) > now then break end
  redis.call('LPOP', list)
  if counts then
    local totals = {}
    tally(totals, owner)
    decrement(counts, totals)
  end
end
local used, exact = 0, counts and counted(list, counts, capacity)
if exact then
  used = tonumber(redis.call('HGET', counts, channel) or '0')
elseif not counts then
  used = redis.call('LLEN', list)
end
if used >= capacity then return 0 end
redis.call('RPUSH', list, ARGV[2])
redis.call('PEXPIRE', list, ARGV[4])
if exact then
  redis.call('HINCRBY', counts, channel, 1)
  redis.call('PEXPIRE', counts, ARGV[4])
end
return 1
"""
)

#: KEYS: list[, counts]. ARGV: limit, then the channel fields of entries already popped by
#: BLPOP (to decrement).
#: Pops up to ``limit`` entries and returns them; an empty process list drops its counts.
DRAIN = (
    _DECREMENT
    + """
local list, counts = KEYS[1], KEYS[2]
local limit = tonumber(ARGV[1])
local items = {}
if limit > 0 then items = redis.call('LPOP', list, limit) or {} end
if counts and redis.call('EXISTS', counts) == 1 then  -- else the counts are implicit
  if redis.call('LLEN', list) == 0 then
    -- Nothing is queued, so every count is 0: dropping them all also heals any drift a
    -- failure left (a BLPOP whose reply was lost, a decrement that never arrived). A BLPOP
    -- reply still on its way (another event loop's) makes a count one too low for a while,
    -- which loosens capacity and never blocks a send.
    redis.call('DEL', counts)
  else
    local totals = {}
    for i = 2, #ARGV do tally(totals, ARGV[i]) end
    for _, item in ipairs(items) do tally(totals, string.match(item, '^%d+|([^|]*)|')) end
    decrement(counts, totals)
  end
end
return items
"""
)

#: KEYS: group. ARGV: channel, joined at (seconds), group TTL (ms).
GROUP_ADD = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
"""

#: KEYS: group. ARGV: cutoff (seconds; memberships older than this are expired).
#: Returns [member, score, member, score, ...].
GROUP_MEMBERS = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
"""

# Deliver one group message to the members of one target list (a process list, or one plain
# channel's list). ``m`` holds the message (payload, deadline, ttl, now, grace) and the running
# totals (delivered, dropped, dead). A process list whose heartbeat is gone, and whose newest member
# joined longer ago than the grace, belongs to a dead process: its members are not delivered to
# but collected in ``m.dead``, for removal from the group.
_DELIVER = (
    _DECREMENT
    + _KEYS_LUA
    + """
local function deliver(m, list, is_local, newest, members, capacities)
  local counts = counts_key(list)
  local dead = is_local and redis.call('EXISTS', alive_key(list)) == 0
  if dead and type(newest) == 'function' then newest = newest(members) end
  if dead and m.now - newest > m.grace then
    for _, channel in ipairs(members) do m.dead[#m.dead + 1] = channel end
    return
  end
  local entries = {}
  local smallest = math.huge
  for j = 1, #capacities do smallest = math.min(smallest, capacities[j]) end
  if is_local and not counted(list, counts, smallest) then
    entries = members  -- the list is shorter than every capacity: nobody is full
  elseif is_local then
    -- Every member's count in one HMGET, the new counts in one HSET (not a call per member).
    local used, updates = bulk('HMGET', counts, members), {}
    for j, channel in ipairs(members) do
      local n = used[j] and tonumber(used[j]) or 0
      if n >= capacities[j] then
        m.dropped = m.dropped + 1
      else
        entries[#entries + 1] = channel
        updates[#updates + 1] = channel
        updates[#updates + 1] = n + 1
      end
    end
    if #updates > 0 then bulk('HSET', counts, updates) end
  else
    for j, channel in ipairs(members) do
      if redis.call('LLEN', list) >= capacities[j] then
        m.dropped = m.dropped + 1
      else
        entries[#entries + 1] = channel
      end
    end
  end
  if #entries == 0 then return end
  if is_local then
    -- One entry for all members of one process: stored, popped and decoded once.
    redis.call('RPUSH', list, m.deadline .. '|' .. table.concat(entries, ',') .. '|' .. m.payload)
    redis.call('PEXPIRE', counts, m.ttl)
  else
    -- A plain channel's list (normally one member): one entry per member, 1000 per RPUSH.
    for j = 1, #entries do entries[j] = m.deadline .. '|' .. entries[j] .. '|' .. m.payload end
    for first = 1, #entries, 1000 do
      redis.call('RPUSH', list, unpack(entries, first, math.min(first + 999, #entries)))
    end
  end
  redis.call('PEXPIRE', list, m.ttl)
  m.delivered = m.delivered + #entries
end
"""
)

#: KEYS: (list, counts, alive) per target list. ARGV: payload, deadline ms, ttl ms, now ms,
#: heartbeat grace ms, default capacity, 1 if capacities follow each channel else 0, then one
#: segment per target list: its index in KEYS, 1 if a process list else 0, the newest join time
#: of its members (ms), the member count, then the members (each followed by its capacity when
#: capacities are given).
#: Returns {delivered, dropped, {dead members}} (see ``deliver``).
GROUP_DELIVER = (
    _DELIVER
    + """
local m = {payload = ARGV[1], deadline = ARGV[2], ttl = ARGV[3], now = tonumber(ARGV[4]),
           grace = tonumber(ARGV[5]), delivered = 0, dropped = 0, dead = {}}
local default_capacity = tonumber(ARGV[6])
local step = ARGV[7] == '1' and 2 or 1
local i = 8
while i <= #ARGV do
  local k, is_local = tonumber(ARGV[i]), ARGV[i + 1] == '1'
  local newest, count = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  i = i + 4
  local members, capacities = {}, {}
  for j = 0, count - 1 do
    members[j + 1] = ARGV[i + j * step]
    capacities[j + 1] = step == 2 and tonumber(ARGV[i + j * step + 1]) or default_capacity
  end
  i = i + count * step
  deliver(m, KEYS[k], is_local, newest, members, capacities)
end
return {m.delivered, m.dropped, m.dead}
"""
)

#: The whole group_send in one round trip, for a layer on ONE plain (non-Cluster) server without
#: per-channel capacities: it reads the members and computes their lists' keys itself (Redis
#: allows undeclared keys outside a Cluster). KEYS: group. ARGV: key prefix, payload, deadline
#: ms, ttl ms, now ms, heartbeat grace ms, capacity, membership cutoff (seconds).
#: Returns {delivered, dropped, {dead members} (already removed), member count}.
GROUP_SEND = (
    _DELIVER
    + """
local m = {payload = ARGV[2], deadline = ARGV[3], ttl = ARGV[4], now = tonumber(ARGV[5]),
           grace = tonumber(ARGV[6]), delivered = 0, dropped = 0, dead = {}}
local prefix, capacity = ARGV[1], tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[8])
-- Without scores (half the cost): join times matter only for a process whose heartbeat is gone.
local names = redis.call('ZRANGE', KEYS[1], 0, -1)
local function newest(members)
  local latest = 0
  for _, channel in ipairs(members) do
    latest = math.max(latest, tonumber(redis.call('ZSCORE', KEYS[1], channel)) * 1000)
  end
  return latest
end
local lists, order = {}, {}
for _, channel in ipairs(names) do
  local bang = string.find(channel, '!', 1, true)
  local base = bang and string.sub(channel, 1, bang) or channel
  local target = lists[base]
  if not target then
    target = {members = {}, capacities = {}, is_local = bang ~= nil}
    lists[base] = target
    order[#order + 1] = base
  end
  target.members[#target.members + 1] = channel
  target.capacities[#target.capacities + 1] = capacity
end
for _, base in ipairs(order) do
  local target = lists[base]
  local list = list_key(prefix, base)
  deliver(m, list, target.is_local, newest, target.members, target.capacities)
end
for first = 1, #m.dead, 1000 do
  redis.call('ZREM', KEYS[1], unpack(m.dead, first, math.min(first + 999, #m.dead)))
end
return {m.delivered, m.dropped, m.dead, #names}
"""
)
