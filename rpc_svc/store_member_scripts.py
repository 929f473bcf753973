"""The Lua scripts of a member's side of its groups, and of big groups' activity.

A user's side lives in its own slot: the set of its groups (`im:{<user>}:groups`), its
inbox and its read positions. On one Redis the group scripts write it in the same step as
the group (these helpers); on a cluster the service writes it in a step of its own
(USER_SIDE) after the group's, then reads the group again (GROUP_STATE) until what it wrote
agrees with what the group says (see docs/store.md, "Membership").

A big group's send writes nothing per member: it notes the group's activity in one place
(`im:{:big}:*`, a slot no chat or user name can hash to): a sequence number, the group's
last sequence number, its last send time. An inbox read catches up with what changed since
the sequence number it saw last (kept in the user's read positions, field ":big"), looking
at whichever is fewer: the big groups active since, or the user's groups.
"""

from __future__ import annotations

from rpc_svc.store_scripts import SEND_HELPERS, Script

# Lua helpers. key: a key named in a script that was not given it (one Redis only). may_join:
# whether a user (its groups set) may be in `group`: it is already, or
# is in fewer than `most`. mark_forward: a read position moved forward only (MARK_READ's
# rule). joined / left: a member's side on joining (the group in its groups, and with a
# message its inbox at the newest and its read position there) and on leaving (all of it
# gone). note_big: a big group's message. catch_up: a user's big groups with messages since
# its last inbox read moved to their last message in its inbox.
MEMBER_HELPERS = """
local function key(name, suffix)  -- the key of a name's `suffix`, as store_keys makes it
  if string.find(name, '[%%{}]') then
    name = string.gsub(string.gsub(string.gsub(name, '%%', '%%25'), '{', '%%7B'), '}', '%%7D')
  end
  return 'im:{' .. name .. '}:' .. suffix
end
local function may_join(groups, group, most)
  return redis.call('SISMEMBER', groups, group) == 1 or redis.call('SCARD', groups) < most
end
local function mark_forward(reads, chat, value)
  local cur = redis.call('HGET', reads, chat)
  local new = tonumber(string.match(value, '^%d+'))
  if cur and tonumber(string.match(cur, '^%d+')) >= new then return cur end
  if new == 0 then return cur or value end
  redis.call('HSET', reads, chat, value)
  return value
end
local function joined(groups, inbox, reads, group, newest, count)
  redis.call('SADD', groups, group)
  if newest > 0 then
    redis.call('ZADD', inbox, 'GT', newest, group)
    mark_forward(reads, group, string.format('%.0f:%.0f:0', newest, count))
  end
end
local function left(groups, inbox, reads, group)
  redis.call('SREM', groups, group)
  redis.call('ZREM', inbox, group)
  redis.call('HDEL', reads, group)
end
local function note_big(seq, act, at, group, st)
  redis.call('ZADD', act, redis.call('INCR', seq), group)
  local cur = redis.call('HGET', at, group)
  if not cur or tonumber(cur) < st then
    redis.call('HSET', at, group, string.format('%.0f', st))
  end
end
local function catch_up(inbox, reads, groups, seq, act, at)
  local mine = redis.call('SCARD', groups)
  if mine == 0 then return end  -- (a user in no group keeps no mark)
  local seen = tonumber(redis.call('HGET', reads, ':big') or '0')
  local top = tonumber(redis.call('GET', seq) or '0')
  if top <= seen then return end
  local since = '(' .. string.format('%.0f', seen)
  local function move(g)
    local t = redis.call('HGET', at, g)
    if t then redis.call('ZADD', inbox, 'GT', t, g) end
  end
  if redis.call('ZCOUNT', act, since, top) <= mine then
    for _, g in ipairs(redis.call('ZRANGEBYSCORE', act, since, top)) do
      if redis.call('SISMEMBER', groups, g) == 1 then move(g) end
    end
  else
    for _, g in ipairs(redis.call('SMEMBERS', groups)) do
      local s = redis.call('ZSCORE', act, g)
      if s and tonumber(s) > seen then move(g) end
    end
  end
  redis.call('HSET', reads, ':big', string.format('%.0f', top))
end
"""

# KEYS: a user's groups. ARGV: a group, the most groups a user may be in. 1 when the group
# is (now) among the user's groups (a place reserved before the group's own step, on a
# cluster), -6 when the user is in as many as it may be. Bound: O(1).
USER_RESERVE = Script(
    MEMBER_HELPERS
    + """
if not may_join(KEYS[1], ARGV[1], tonumber(ARGV[2])) then return -6 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
"""
)

# KEYS: a user's groups, inbox, read positions. ARGV: a group, '1' when the user is its
# member, the send time of its newest message (0: none). The user's side as the group says
# it is: a member has the group in its groups and, with a message, in its inbox (never moved
# back); anyone else has none of it, nor a read position there. Bound: O(1).
USER_SIDE = Script(
    MEMBER_HELPERS
    + """
if ARGV[2] == '1' then
  redis.call('SADD', KEYS[1], ARGV[1])
  if ARGV[3] ~= '0' then redis.call('ZADD', KEYS[2], 'GT', ARGV[3], ARGV[1]) end
else
  left(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
end
return 1
"""
)

# KEYS: a group's members, stream, short hash. ARGV: a user. {1 when the user is a member
# (else 0), the send time of the group's newest message (0: none)}. Bound: O(1).
GROUP_STATE = Script(
    SEND_HELPERS
    + """
local id = tl_top(KEYS[2], KEYS[3], 'g')
return {redis.call('HEXISTS', KEYS[1], ARGV[1]), id and string.format('%.0f', us(id)) or '0'}
"""
)

# One Redis only (it names keys it was not given). KEYS: a user's groups, inbox, read
# positions. ARGV: the user. The groups it is a member of (its side of any other, left by an
# earlier version, dropped here). Bound: O(the user's groups), at most IM_USER_MAX_GROUPS.
USER_GROUPS = Script(
    MEMBER_HELPERS
    + """
local out = {}
for _, g in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('HEXISTS', key(g, 'mem'), ARGV[1]) == 1 then
    out[#out + 1] = g
  else
    left(KEYS[1], KEYS[2], KEYS[3], g)
  end
end
return out
"""
)

# KEYS: the big groups' sequence, groups, times. ARGV: a big group, its message's send time.
# The second step of a big group's send on a cluster. Bound: O(log big groups).
BIG_NOTE = Script(
    MEMBER_HELPERS
    + """
note_big(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]))
return 1
"""
)

# KEYS: the big groups' sequence, groups, times. ARGV: the sequence number a user saw last,
# the most groups worth listing (the user's), then groups (none: any). {the sequence number
# now, then group, its last send time, ...}: with groups given, each of them that is big and
# has a message (a move to its last send time is a move only where it changed); else the big
# groups with a message since, or {the sequence number, '*'} when more than the most changed
# (the caller then gives the user's groups). Bound: O(min(groups active since, the most)) or
# O(groups given).
BIG_CHANGED = Script(
    """
local seen, most = tonumber(ARGV[1]), tonumber(ARGV[2])
local top = tonumber(redis.call('GET', KEYS[1]) or '0')
local out = {string.format('%.0f', top)}
if top <= seen then return out end
local changed
if #ARGV > 2 then
  changed = {unpack(ARGV, 3)}
else
  local since = '(' .. string.format('%.0f', seen)
  if redis.call('ZCOUNT', KEYS[2], since, top) > most then return {out[1], '*'} end
  changed = redis.call('ZRANGEBYSCORE', KEYS[2], since, top)
end
if #changed == 0 then return out end
for i, t in ipairs(redis.call('HMGET', KEYS[3], unpack(changed))) do
  if t then
    out[#out + 1] = changed[i]
    out[#out + 1] = t
  end
end
return out
"""
)

MEMBER_SCRIPTS = (USER_RESERVE, USER_SIDE, GROUP_STATE, USER_GROUPS, BIG_NOTE, BIG_CHANGED)
