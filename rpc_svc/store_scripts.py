"""The store's Lua scripts: each runs atomically on the Redis (or cluster node) of its keys.

Numbers travel as decimal strings (``%.0f``): microsecond times pass 2^31 and Redis
would print a Lua number in exponent form.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Script:
    """A Lua script and the SHA1 that EVALSHA names it by."""

    text: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.text.encode()).hexdigest())


# Lua helpers of the scripts: Redis's clock in µs, a stream ID as µs and back; the
# idempotency set (`seen`: the send time a key got within its lifetime, nil for none or no
# key; `remember`: record one, and drop up to 8 expired ones, so that a send never does work
# proportional to the keys of a day before, and the set still shrinks faster than it grows);
# and a chat's (or group's) timeline: while
# the chat is short, a hash of its records, field i (1, 2, ...: the i-th message) holding
# "<id> <value>", a stream once it is long (see store.md). A string of records
# "<id> <bytes> <value>", newest first (`bytes`: the value's length in bytes of UTF-8), is
# what versions before the hash wrote: it is read as the hash is and becomes one at the
# chat's next send. `tl_top` answers the newest entry (id, value, field; a record's field is
# the one given), whether the timeline is a stream and what its short form holds (a count,
# or such a string); `tl_append` adds an entry after that, moving a short form of
# `short_max` records into the stream; `tl_range` reads as XRANGE (XREVRANGE when
# `reverse`, bounds then high first) does, from either form.
SEND_HELPERS = """
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function us(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)) * 1000 + tonumber(string.sub(id, dash + 1))
end
local function id_of(t) return string.format('%.0f-%.0f', math.floor(t / 1000), t % 1000) end
local function seen(key, idem, now, ttl)
  if idem == '' then return nil end
  local prev = redis.call('ZSCORE', key, idem)
  if prev and tonumber(prev) > now - ttl then return tonumber(prev) end
  return nil
end
local function remember(key, idem, now, ttl, st)
  if idem == '' then return end
  local old = redis.call('ZRANGEBYSCORE', key, '-inf', now - ttl, 'LIMIT', 0, 8)
  if old[1] then redis.call('ZREM', key, unpack(old)) end
  redis.call('ZADD', key, st, idem)
  redis.call('PEXPIRE', key, math.floor(ttl / 1000))
end
local function record(v, at)  -- the record at byte `at` of a string: id, value, next
  local sp = string.find(v, ' ', at, true)
  local sp2 = string.find(v, ' ', sp + 1, true)
  local stop = sp2 + tonumber(string.sub(v, sp + 1, sp2 - 1))
  return string.sub(v, at, sp - 1), string.sub(v, sp2 + 1, stop), stop + 1
end
local function records(v)  -- a string's records, oldest first: {id, value} each
  local out, at = {}, 1
  while at <= #v do
    local id, value, next_at = record(v, at)
    table.insert(out, 1, {id, value})
    at = next_at
  end
  return out
end
local function split(r)  -- a hash record "<id> <value>": id, value
  local sp = string.find(r, ' ', 1, true)
  return string.sub(r, 1, sp - 1), string.sub(r, sp + 1)
end
local function short_all(s, n)  -- the `n` records of hash `s`, oldest first ({id, value}
  local fields, out = {}, {}      -- each), and their fields
  if n == 0 then return out, fields end
  for i = 1, n do fields[i] = i end
  for i, r in ipairs(redis.call('HMGET', s, unpack(fields))) do out[i] = {split(r)} end
  return out, fields
end
local function short_form(s)  -- a short chat's hash's record count (0: none), or 0 and
  local n = redis.pcall('HLEN', s)  -- the string an earlier version wrote there
  if type(n) == 'number' then return n end
  return 0, redis.call('GET', s)
end
local function tl_top(m, s, field)
  local n, v = short_form(s)  -- a chat is never both: most are short
  if v then
    local id, value = record(v, 1)
    return id, value, field, false, v
  end
  if n > 0 then
    local id, value = split(redis.call('HGET', s, n))
    return id, value, field, false, n
  end
  local top = redis.call('XREVRANGE', m, '+', '-', 'COUNT', 1)
  if top[1] then return top[1][1], top[1][2][2], top[1][2][1], true end
  return nil, nil, nil, redis.call('EXISTS', m) == 1, 0
end
local function tl_append(m, s, long, short_max, short, id, field, value)
  if long then
    redis.call('XADD', m, id, field, value)
    return
  end
  local all, n = nil, short
  if type(short) == 'string' then  -- a string from an earlier version: its records
    all = records(short)
    n = #all
    redis.call('GETDEL', s)
  end
  -- at short_max the records move into the stream; with short forms off (0) at once, so
  -- that one written before they were turned off moves too
  if n + 1 < short_max then
    if all and n > 0 then
      local pairs_ = {}
      for i, r in ipairs(all) do
        pairs_[2 * i - 1] = i
        pairs_[2 * i] = r[1] .. ' ' .. r[2]
      end
      redis.call('HSET', s, unpack(pairs_))
    end
    redis.call('HSET', s, n + 1, id .. ' ' .. value)
    return
  end
  if not all then
    local fields
    all, fields = short_all(s, n)
    if n > 0 then redis.call('HDEL', s, unpack(fields)) end  -- (a hash emptied is deleted)
  end
  for _, r in ipairs(all) do redis.call('XADD', m, r[1], field, r[2]) end
  redis.call('XADD', m, id, field, value)
end
local function bound(b)  -- '-', '+', an ID, or '(' and an ID: exclusive (as a start only)
  if b == '-' then return -1 end
  if b == '+' then return math.huge end
  if string.sub(b, 1, 1) == '(' then return us(string.sub(b, 2)) + 1 end
  return us(b)
end
local function tl_range(m, s, field, from, to, count, reverse)
  local n, v = short_form(s)
  local all
  if v then
    all = records(v)
  elseif n > 0 then
    all = short_all(s, n)
  else
    if reverse then return redis.call('XREVRANGE', m, from, to, 'COUNT', count) end
    return redis.call('XRANGE', m, from, to, 'COUNT', count)
  end
  local rows = {}
  local lo, hi, first, last, step = bound(from), bound(to), 1, #all, 1
  if reverse then lo, hi, first, last, step = bound(to), bound(from), #all, 1, -1 end
  for i = first, last, step do
    if #rows >= count then break end
    local t = us(all[i][1])
    if t >= lo and t <= hi then rows[#rows + 1] = {all[i][1], {field, all[i][2]}} end
  end
  return rows
end
"""

# KEYS: stream, short hash, idempotency set, then the members' inboxes (none on a cluster,
# where they live in other slots and a ZADD GT per member follows). ARGV: role digit, text,
# idempotency member ('' for none), its lifetime (µs), the chat's wake channel, the chat,
# how many messages a short chat's hash holds before it becomes a stream (0: streams only).
# One round trip per send. Redis's own clock gives the time, bumped past the chat's last
# message; a key seen within its lifetime returns the first answer. The entry's field t
# is "<role><sent by 0>:<sent by 1>:<text>": how many messages each member had sent up to
# it, so an unread count is a difference of two entries (older entries have field m,
# "<role><text>", and count from 0). A stored message's send time is announced on the
# chat's wake channel (SPUBLISH: a long poll whose cursor is past it is not woken), and
# the chat moves to `st` in each inbox (ZADD GT: never back). Bound: O(1), plus a short
# hash's move into its stream (at most IM_SHORT_CHAT_MESSAGES records, once).
SEND = Script(
    SEND_HELPERS
    + """
local now = now_us()
local idem, ttl = ARGV[3], tonumber(ARGV[4])
local prev = seen(KEYS[3], idem, now, ttl)
if prev then return prev end
local st, n0, n1 = now, 0, 0
local id, f, name, long, short = tl_top(KEYS[1], KEYS[2], 't')
if id then
  local last = us(id)
  if st <= last then st = last + 1 end
  if name == 't' then
    local a, b = string.match(f, '^%d(%d+):(%d+):')
    n0, n1 = tonumber(a), tonumber(b)
  end
end
if ARGV[1] == '1' then n1 = n1 + 1 else n0 = n0 + 1 end
local value = string.format('%s%.0f:%.0f:', ARGV[1], n0, n1) .. ARGV[2]
tl_append(KEYS[1], KEYS[2], long, tonumber(ARGV[7]), short, id_of(st), 't', value)
redis.call('SPUBLISH', ARGV[5], string.format('%.0f', st))
remember(KEYS[3], idem, now, ttl, st)
for i = 4, #KEYS do redis.call('ZADD', KEYS[i], 'GT', st, ARGV[6]) end
return st
"""
)

# KEYS: a user's read positions. ARGV: chat, "<read_until>:<n0>:<n1>". Only forward;
# answers the position kept. A position of 0 (nothing read: no message at or before the
# time named) writes nothing: reads of empty chats leave no keys behind. Bound: O(1).
MARK_READ = Script(
    """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local new = tonumber(string.match(ARGV[2], '^%d+'))
if cur and tonumber(string.match(cur, '^%d+')) >= new then
  return cur
end
if new == 0 then
  return cur or ARGV[2]
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[2]
"""
)

# A cluster's inbox page (one Redis runs INBOX_PAGE). KEYS: a user's inbox, read positions,
# groups. ARGV: highest position ('+inf' or a time), how many of the chats there to skip
# (those of that position already shown), how many; then, when the service caught up with
# the big groups' activity, the sequence number it caught up to and pairs of a big group and
# its last send time (each moved in the inbox when the group is among the user's groups).
# Answers the sequence number the user's inbox has seen, how many groups the user is in,
# then chat, position, read position ('' for none), ... most recent first. Bound: the page,
# plus the pairs given (at most the user's groups).
INBOX = Script(
    """
if ARGV[4] then
  for i = 5, #ARGV, 2 do
    if redis.call('SISMEMBER', KEYS[3], ARGV[i]) == 1 then
      redis.call('ZADD', KEYS[1], 'GT', ARGV[i + 1], ARGV[i])
    end
  end
  local seen = tonumber(redis.call('HGET', KEYS[2], ':big') or '0')
  if tonumber(ARGV[4]) > seen and redis.call('SCARD', KEYS[3]) > 0 then
    redis.call('HSET', KEYS[2], ':big', ARGV[4])
  end
end
local rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], '-inf', 'WITHSCORES',
  'LIMIT', tonumber(ARGV[2]), tonumber(ARGV[3]))
local out = {redis.call('HGET', KEYS[2], ':big') or '0', redis.call('SCARD', KEYS[3])}
for i = 1, #rows, 2 do
  out[#out + 1] = rows[i]
  out[#out + 1] = rows[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], rows[i]) or ''
end
return out
"""
)

SCRIPTS = (SEND, MARK_READ, INBOX)
