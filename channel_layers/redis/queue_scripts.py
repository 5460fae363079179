"""The Lua scripts of the Redis work queues: each operation is one EVALSHA, so it is atomic and
costs one round trip (enqueue, take and ack: three per job).

Layout of queue ``Q`` (``B`` = ``<prefix>:tq:{Q}``; the hash tag keeps a queue in one slot):

- ``B:j:<id>``: a hash per job: name, payload, prio, max, att (takes), lost and maxlost (lapsed
  leases), state, token, enq, run, err, prog, res, fin, sta (first take), try (last take) (times
  in ms), wk (the takers' worker ids, one per take, newline-separated);
- ``B:ready`` (score: (100 - priority) * 1e13 + a counter ``B:seq``: priority, then age),
  ``B:sched`` (score: run time), ``B:lease`` (score: lease deadline), ``B:dead`` (score: the
  counter when it failed), ``B:done`` (finished jobs, score: when their record expires);
- ``B:counts``: a hash ``<name>\\n<state>`` -> number of jobs, kept by every transition;
- ``B:i:<key>``: an idempotency key naming its job, with a TTL;
- ``B:wake``: a list a waiting taker blocks on; each enqueue pushes one token;
- ``B:n:<id>``: a list that gets a token when the job finishes (result waiters block on it).

Time is the server's (``TIME``), so machines with skewed clocks agree on leases and schedules.
Every script first moves due scheduled jobs to ready, lapsed leases back to ready (or to the
dead letters after their last attempt) and drops expired results (``advance``).
"""

from __future__ import annotations

_PRELUDE = """
local B = KEYS[1]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function jk(id) return B .. ':j:' .. id end
local function count(name, state, n)
  local left = redis.call('HINCRBY', B .. ':counts', name .. '\\n' .. state, n)
  if left <= 0 then redis.call('HDEL', B .. ':counts', name .. '\\n' .. state) end
end
local function move(id, name, old, new)
  redis.call('HSET', jk(id), 'state', new)
  if old then count(name, old, -1) end
  count(name, new, 1)
end
local function make_ready(id, name, old, prio)
  move(id, name, old, 'pending')
  redis.call('HSET', jk(id), 'token', '')
  -- A counter, not the time: jobs made ready in the same millisecond keep their order.
  local order = redis.call('INCR', B .. ':seq')
  redis.call('ZADD', B .. ':ready', (100 - prio) * 1e13 + order, id)
  redis.call('RPUSH', B .. ':wake', 1)
end
local function notify(id, ttl)
  redis.call('RPUSH', B .. ':n:' .. id, 1)
  redis.call('PEXPIRE', B .. ':n:' .. id, ttl)
end
local function bury(id, name, old, err)
  move(id, name, old, 'failed')
  redis.call('HSET', jk(id), 'err', err, 'fin', now, 'token', '')
  redis.call('ZADD', B .. ':dead', redis.call('INCR', B .. ':seq'), id)
  notify(id, 86400000)
end
local function finish(id, name, old, state, ttl)
  move(id, name, old, state)
  redis.call('HSET', jk(id), 'fin', now, 'token', '')
  redis.call('ZADD', B .. ':done', now + ttl, id)
  notify(id, ttl)
end
local function advance()
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', B .. ':sched', '-inf', now, 'LIMIT', 0, 500)) do
    redis.call('ZREM', B .. ':sched', id)
    local job = redis.call('HMGET', jk(id), 'name', 'prio')
    make_ready(id, job[1], 'scheduled', tonumber(job[2]))
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', B .. ':lease', '-inf', now, 'LIMIT', 0, 500)) do
    redis.call('ZREM', B .. ':lease', id)
    local job = redis.call('HMGET', jk(id), 'name', 'prio', 'maxlost')
    local lost = redis.call('HINCRBY', jk(id), 'lost', 1)
    if lost >= tonumber(job[3]) then
      bury(id, job[1], 'running', 'lease lost ' .. lost .. ' times (worker died?)')
    else
      redis.call('HSET', jk(id), 'err', 'lease lost (worker died or stalled?)')
      make_ready(id, job[1], 'running', tonumber(job[2]))
    end
  end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', B .. ':done', '-inf', now, 'LIMIT', 0, 500)) do
    redis.call('ZREM', B .. ':done', id)
    local job = redis.call('HMGET', jk(id), 'name', 'state')
    if job[1] then count(job[1], job[2], -1) end
    redis.call('DEL', jk(id))
  end
end
-- The job's name when ``token`` holds its lease, else nil.
local function held(id, token)
  local job = redis.call('HMGET', jk(id), 'name', 'state', 'token')
  if job[1] and job[2] == 'running' and token ~= '' and job[3] == token then return job[1] end
  return nil
end
"""

#: ARGV: id, name, payload, priority, run_at ms (0: now), max attempts, idempotency key
#: ('' for none), its ttl ms, max lost leases. Returns {id, created (0/1)}.
ENQUEUE = (
    _PRELUDE
    + """
local id, name, prio = ARGV[1], ARGV[2], tonumber(ARGV[4])
if ARGV[7] ~= '' then
  local key = B .. ':i:' .. ARGV[7]
  local seen = redis.call('GET', key)
  if seen then return {seen, 0} end
  redis.call('SET', key, id, 'PX', ARGV[8])
end
local run_at = tonumber(ARGV[5])
if run_at < now then run_at = now end
redis.call('HSET', jk(id), 'name', name, 'payload', ARGV[3], 'prio', prio, 'max', ARGV[6],
  'att', 0, 'lost', 0, 'maxlost', ARGV[9], 'enq', now, 'run', run_at, 'token', '')
if run_at > now then
  move(id, name, nil, 'scheduled')
  redis.call('ZADD', B .. ':sched', run_at, id)
  redis.call('RPUSH', B .. ':wake', 1)
else
  make_ready(id, name, nil, prio)
end
return {id, 1}
"""
)

#: ARGV: lease ms, token prefix, limit, worker id. Returns {id, name, payload, att, max, prio,
#: enq, ...} (7 fields per job, up to ``limit`` jobs; job i's token is ``<prefix>.<i>``) or
#: {'', ms until something may be due (-1: nothing scheduled or leased)}.
TAKE = (
    _PRELUDE
    + """
advance()
local popped = redis.call('ZPOPMIN', B .. ':ready', tonumber(ARGV[3]))
if #popped == 0 then
  redis.call('DEL', B .. ':wake')
  local wait = -1
  for _, index in ipairs({':sched', ':lease'}) do
    local first = redis.call('ZRANGE', B .. index, 0, 0, 'WITHSCORES')
    if #first > 0 then
      local until_due = tonumber(first[2]) - now
      if wait < 0 or until_due < wait then wait = until_due end
    end
  end
  return {'', wait}
end
local out = {}
for i = 1, #popped, 2 do
  local id = popped[i]
  local job = redis.call('HMGET', jk(id), 'name', 'payload', 'max', 'prio', 'enq')
  local attempts = redis.call('HINCRBY', jk(id), 'att', 1)
  move(id, job[1], 'pending', 'running')
  local workers = redis.call('HGET', jk(id), 'wk')
  redis.call('HSETNX', jk(id), 'sta', now)
  redis.call('HSET', jk(id), 'token', ARGV[2] .. '.' .. ((i + 1) / 2), 'try', now,
    'wk', workers and (workers .. '\\n' .. ARGV[4]) or ARGV[4])
  redis.call('ZADD', B .. ':lease', now + tonumber(ARGV[1]), id)
  for _, value in ipairs({id, job[1], job[2], attempts, job[3], job[4], job[5]}) do
    out[#out + 1] = value
  end
end
return out
"""
)

#: ARGV: id, token, lease ms, progress ('' for none). Returns 1, or 0 when the lease is lost.
RENEW = (
    _PRELUDE
    + """
advance()
if not held(ARGV[1], ARGV[2]) then return 0 end
redis.call('ZADD', B .. ':lease', now + tonumber(ARGV[3]), ARGV[1])
if ARGV[4] ~= '' then redis.call('HSET', jk(ARGV[1]), 'prog', ARGV[4]) end
return 1
"""
)

#: ARGV: id, token, result, result ttl ms. Returns 1, or 0 when the lease is lost.
ACK = (
    _PRELUDE
    + """
advance()
local name = held(ARGV[1], ARGV[2])
if not name then return 0 end
redis.call('ZREM', B .. ':lease', ARGV[1])
redis.call('HSET', jk(ARGV[1]), 'res', ARGV[3])
finish(ARGV[1], name, 'running', 'done', tonumber(ARGV[4]))
return 1
"""
)

#: ARGV: id, token, error, delay ms (-1: dead-letter). Returns 1, or 0 when the lease is lost.
NACK = (
    _PRELUDE
    + """
advance()
local id = ARGV[1]
local name = held(id, ARGV[2])
if not name then return 0 end
redis.call('ZREM', B .. ':lease', id)
local delay = tonumber(ARGV[4])
if delay < 0 then
  bury(id, name, 'running', ARGV[3])
  return 1
end
redis.call('HSET', jk(id), 'err', ARGV[3], 'token', '')
if delay == 0 then
  make_ready(id, name, 'running', tonumber(redis.call('HGET', jk(id), 'prio')))
else
  move(id, name, 'running', 'scheduled')
  redis.call('HSET', jk(id), 'run', now + delay)
  redis.call('ZADD', B .. ':sched', now + delay, id)
  redis.call('RPUSH', B .. ':wake', 1)
end
return 1
"""
)

#: ARGV: id, token. Returns 1, or 0 when the lease is lost.
RELEASE = (
    _PRELUDE
    + """
advance()
local name = held(ARGV[1], ARGV[2])
if not name then return 0 end
redis.call('ZREM', B .. ':lease', ARGV[1])
redis.call('HINCRBY', jk(ARGV[1]), 'att', -1)
make_ready(ARGV[1], name, 'running', tonumber(redis.call('HGET', jk(ARGV[1]), 'prio')))
return 1
"""
)

#: ARGV: id, result ttl ms. Returns 1 when cancelled.
CANCEL = (
    _PRELUDE
    + """
advance()
local id = ARGV[1]
local job = redis.call('HMGET', jk(id), 'name', 'state')
if not job[1] then return 0 end
if job[2] == 'pending' then redis.call('ZREM', B .. ':ready', id)
elseif job[2] == 'scheduled' then redis.call('ZREM', B .. ':sched', id)
else return 0 end
finish(id, job[1], job[2], 'cancelled', tonumber(ARGV[2]))
return 1
"""
)

#: ARGV: index (':lease' or ':dead', or '' with ids after), limit, ids...
#: Returns {id, {field, value, ...}, ...} for jobs that exist.
JOBS = (
    _PRELUDE
    + """
advance()
local ids = {}
if ARGV[1] ~= '' then
  ids = redis.call('ZRANGE', B .. ARGV[1], 0, tonumber(ARGV[2]) - 1)
else
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local out = {}
for _, id in ipairs(ids) do
  local fields = redis.call('HGETALL', jk(id))
  if #fields > 0 then
    out[#out + 1] = id
    out[#out + 1] = fields
  end
end
return out
"""
)

#: ARGV: 'retry' or 'purge', then ids (none: every dead-lettered job). Returns how many.
DEAD = (
    _PRELUDE
    + """
advance()
local ids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGE', B .. ':dead', 0, -1)
end
local changed = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', B .. ':dead', id) == 1 then
    changed = changed + 1
    local job = redis.call('HMGET', jk(id), 'name', 'prio')
    redis.call('DEL', B .. ':n:' .. id)
    if ARGV[1] == 'retry' then
      redis.call('HSET', jk(id), 'att', 0, 'lost', 0)
      redis.call('HDEL', jk(id), 'fin')
      make_ready(id, job[1], 'failed', tonumber(job[2]))
    else
      count(job[1], 'failed', -1)
      redis.call('DEL', jk(id))
    end
  end
end
return changed
"""
)

#: No ARGV. Returns the counts hash, flat.
COUNTS = (
    _PRELUDE
    + """
advance()
return redis.call('HGETALL', B .. ':counts')
"""
)

#: Deletes every job and index of the queue.
PURGE = (
    _PRELUDE
    + """
for _, index in ipairs({':ready', ':sched', ':lease', ':dead', ':done'}) do
  for _, id in ipairs(redis.call('ZRANGE', B .. index, 0, -1)) do
    redis.call('DEL', jk(id), B .. ':n:' .. id)
  end
  redis.call('DEL', B .. index)
end
redis.call('DEL', B .. ':counts', B .. ':wake', B .. ':seq')
return 1
"""
)

#: KEYS: the claim key. ARGV: owner, ttl ms. Returns 1 when ``owner`` holds it now.
CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

#: KEYS: the claim key. ARGV: owner. Returns 1 when it was ``owner``'s and is free now.
RELEASE_CLAIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

#: KEYS: a job's notify list. Puts back the token a result waiter popped, for other waiters.
NOTIFY_AGAIN = """
redis.call('RPUSH', KEYS[1], 1)
redis.call('PEXPIRE', KEYS[1], 60000)
return 1
"""
