"""The Lua scripts of group chats: each runs on the Redis (cluster node) of one group's keys
(the stream, its idempotency sets, owner and members share the group's hash tag).

A refusal is a negative number (the codes of rpc_svc.groups), where a result would be a send
time or a list. Entries have one field g: "<messages so far>:<sender>:<text>", so a count of
messages after a read position is a difference of two entries (O(log N)). A small group's
send moves it in its members' inboxes; a big group's writes nothing per member.
"""

from __future__ import annotations

from rpc_svc.store_scripts import SEND_HELPERS, Script

# Lua helpers: those of the send scripts, the message count of a group entry, and the key
# of a name's `suffix` as store_keys makes it (for keys a script was not given: one Redis).
_HELPERS = (
    SEND_HELPERS
    + """
local function count_of(value) return tonumber(string.match(value, '^(%d+):')) end
local function key(name, suffix)
  if string.find(name, '[%%{}]') then
    name = string.gsub(string.gsub(string.gsub(name, '%%', '%%25'), '{', '%%7B'), '}', '%%7D')
  end
  return 'im:{' .. name .. '}:' .. suffix
end
"""
)

# KEYS: owner, members. ARGV: owner. 1 when made, 0 when the group exists already.
GROUP_CREATE = Script(
    """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], '0:0')
return 1
"""
)

# KEYS: owner, members. ARGV: acting user ('' for none). {code, owner, members...}: code 1,
# or -1 (no such group), -2 (the acting user is not a member).
GROUP_INFO = Script(
    """
if ARGV[1] ~= '' and redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return {-2} end
local owner = redis.call('GET', KEYS[1])
if not owner then return {-1} end
local out = {1, owner}
for _, m in ipairs(redis.call('HKEYS', KEYS[2])) do out[#out + 1] = m end
return out
"""
)

# KEYS: owner, members, stream, the big flag, short hash. ARGV: user, member, most members,
# most members of a small group. {code, owner, newest entry id ('' for none), its message count,
# big (1: the group is big), became big (1: this add made it), members...}: code 1 (added),
# 0 (a member already), -1, -2 (user not a member), -3 (full).
GROUP_ADD = Script(
    _HELPERS
    + """
local owner = redis.call('GET', KEYS[1])
if not owner then return {-1} end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return {-2} end
local code = 0
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then
  if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[3]) then return {-3} end
  redis.call('HSET', KEYS[2], ARGV[2], '0:0')
  code = 1
end
local big, became = redis.call('EXISTS', KEYS[4]), 0
if big == 0 and redis.call('HLEN', KEYS[2]) > tonumber(ARGV[4]) then
  redis.call('SET', KEYS[4], '1')
  big, became = 1, 1
end
local id, value = tl_top(KEYS[3], KEYS[5], 'g')
local out = {code, owner, '', '0', big, became}
if id then out[3], out[4] = id, string.format('%.0f', count_of(value)) end
for _, m in ipairs(redis.call('HKEYS', KEYS[2])) do out[#out + 1] = m end
return out
"""
)

# KEYS: owner, members. ARGV: user, member. {code, owner, members...}: code 1 (removed),
# 0 (not a member: nothing changed), -1, -2, -4 (not the owner), -5 (the owner leaving).
GROUP_REMOVE = Script(
    """
local owner = redis.call('GET', KEYS[1])
if not owner then return {-1} end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return {-2} end
if ARGV[2] == ARGV[1] and ARGV[1] == owner then return {-5} end
if ARGV[2] ~= ARGV[1] and ARGV[1] ~= owner then return {-4} end
local out = {redis.call('HDEL', KEYS[2], ARGV[2]), owner}
for _, m in ipairs(redis.call('HKEYS', KEYS[2])) do out[#out + 1] = m end
return out
"""
)

# KEYS: stream, idempotency set, owner, members, the "big" flag, short hash. ARGV: sender,
# text, idempotency member ('' for none), its lifetime (µs), the wake channel, the group, '1'
# to move the group in its members' inboxes here (one Redis), '0' to answer them instead (a
# cluster: their inboxes are in other slots), the most entries of a short hash. {send time}
# or {send time, members...} (a small group, on a cluster), or {-1}, {-2}. As SEND: Redis's
# clock bumped past the last message, a key seen within its lifetime answers the first send
# time, the message announced on the wake channel. A group without the big flag is small:
# its members' inboxes get the group at the send time (write diffusion, at most
# IM_GROUP_FANOUT_MAX_MEMBERS writes); a big one writes nothing per member (read diffusion).
GROUP_SEND = Script(
    _HELPERS
    + """
if redis.call('EXISTS', KEYS[3]) == 0 then return {-1} end
local mine = redis.call('HGET', KEYS[4], ARGV[1])
if not mine then return {-2} end
local now = now_us()
local idem, ttl = ARGV[3], tonumber(ARGV[4])
local prev = seen(KEYS[2], idem, now, ttl)
if prev then return {prev} end
local st, n = now, 0
local id, top, _, long, short = tl_top(KEYS[1], KEYS[6], 'g')
if id then
  local last = us(id)
  if st <= last then st = last + 1 end
  n = count_of(top)
end
local value = string.format('%.0f:', n + 1) .. ARGV[1] .. ':' .. ARGV[2]
tl_append(KEYS[1], KEYS[6], long, tonumber(ARGV[8]), short, id_of(st), 'g', value)
local own = tonumber(string.match(mine, '^(%d+)')) + 1
redis.call('HSET', KEYS[4], ARGV[1], string.format('%.0f:%.0f', own, st))
redis.call('SPUBLISH', ARGV[5], KEYS[1])
remember(KEYS[2], idem, now, ttl, st)
if redis.call('EXISTS', KEYS[5]) == 1 then return {st} end
local names = redis.call('HKEYS', KEYS[4])
if ARGV[7] == '1' then
  for _, m in ipairs(names) do redis.call('ZADD', key(m, 'inbox'), 'GT', st, ARGV[6]) end
  return {st}
end
local out = {st}
for _, m in ipairs(names) do out[#out + 1] = m end
return out
"""
)

# KEYS: stream, owner, members, short hash. ARGV: acting user ('' for none), start, end, count,
# '1' for newest first. The entries, or -2 (the acting user is not a member, whether or
# not the group exists), -1 (no acting user and no such group).
GROUP_READ = Script(
    _HELPERS
    + """
if ARGV[1] ~= '' then
  if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return -2 end
elseif redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
return tl_range(KEYS[1], KEYS[4], 'g', ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5] == '1')
"""
)

# KEYS: stream, owner, members, short hash. ARGV: user, a send time (0: none). Where the
# user's read position would be: {1, read until, messages up to it, the user's own messages up
# to it}, or {-1}, {-2}. The own count at a position before the user's last message takes a
# scan of the entries between them (counting the user's): O(entries the user sent past
# unread).
GROUP_MARK = Script(
    _HELPERS
    + """
if redis.call('EXISTS', KEYS[2]) == 0 then return {-1} end
local mine = redis.call('HGET', KEYS[3], ARGV[1])
if not mine then return {-2} end
local at = tonumber(ARGV[2])
if at == 0 then return {1, '0', '0', '0'} end
local top = tl_range(KEYS[1], KEYS[4], 'g', id_of(at), '-', 1, true)
if not top[1] then return {1, '0', '0', '0'} end
local until_ = us(top[1][1])
local own, last = string.match(mine, '^(%d+):(%d+)$')
own, last = tonumber(own), tonumber(last)
if last > until_ then
  local start, prefix = '(' .. top[1][1], ':' .. ARGV[1] .. ':'
  repeat
    local rows = tl_range(KEYS[1], KEYS[4], 'g', start, id_of(last), 1000, false)
    for _, row in ipairs(rows) do
      local value = row[2][2]
      local colon = string.find(value, ':', 1, true)
      if string.sub(value, colon, colon + #prefix - 1) == prefix then own = own - 1 end
      start = '(' .. row[1]
    end
  until #rows < 1000
end
return {1, string.format('%.0f', until_), string.format('%.0f', count_of(top[1][2][2])),
  string.format('%.0f', own)}
"""
)

# KEYS: triples of a group's stream, short hash and members. ARGV: a user. Per group, its
# newest entry's ID and value and the user's own count there ('', '', '' when the group has
# no message or the user is not a member). One reply for many groups: on one Redis, every
# group of an inbox at once; on a cluster, where a script's keys must share a slot, one
# group per call.
GROUP_TIPS = Script(
    _HELPERS
    + """
local out = {}
for i = 1, #KEYS, 3 do
  local id, value = tl_top(KEYS[i], KEYS[i + 1], 'g')
  local mine = redis.call('HGET', KEYS[i + 2], ARGV[1])
  if id and mine then
    out[#out + 1] = id
    out[#out + 1] = value
    out[#out + 1] = string.match(mine, '^(%d+)')
  else
    out[#out + 1] = ''
    out[#out + 1] = ''
    out[#out + 1] = ''
  end
end
return out
"""
)

# One Redis only (it names keys it was not given: not for a cluster). KEYS: a user's inbox,
# read positions, big groups. ARGV: the user, the highest position ('+inf' or a time), how
# many inbox rows, how many of them to read the newest entry of. The whole inbox page in one
# call: {rows, bigs}; rows: chat, position, read position, then for the first rows the
# newest entry's id, field, value and (a group) the user's members-hash value ('' for none);
# bigs: chat, read position, newest entry's id, value, members-hash value.
INBOX_PAGE = Script(
    _HELPERS
    + """
local rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], '-inf', 'WITHSCORES',
  'LIMIT', 0, tonumber(ARGV[3]))
local head, out, k = tonumber(ARGV[4]), {}, 0
for i = 1, #rows, 2 do
  local chat = rows[i]
  local id, name, value, mine = '', '', '', ''
  if k < head * 7 then
    local group = string.byte(chat, 1) == 35 and not string.find(chat, ':', 1, true)  -- '#'
    local i, v, f = tl_top(key(chat, 'm'), key(chat, 's'), group and 'g' or 't')
    if i then id, name, value = i, f, v end
    if group then mine = redis.call('HGET', key(chat, 'mem'), ARGV[1]) or '' end
  end
  out[k + 1], out[k + 2], out[k + 3] = chat, rows[i + 1], redis.call('HGET', KEYS[2], chat) or ''
  out[k + 4], out[k + 5], out[k + 6], out[k + 7] = id, name, value, mine
  k = k + 7
end
local bigs, b = {}, 0
for _, chat in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local id, value = tl_top(key(chat, 'm'), key(chat, 's'), 'g')
  bigs[b + 1], bigs[b + 2], bigs[b + 3] = chat, redis.call('HGET', KEYS[2], chat) or '', id or ''
  bigs[b + 4], bigs[b + 5] = value or '', redis.call('HGET', key(chat, 'mem'), ARGV[1]) or ''
  b = b + 5
end
return {out, bigs}
"""
)

GROUP_SCRIPTS = (
    INBOX_PAGE,
    GROUP_TIPS,
    GROUP_CREATE,
    GROUP_INFO,
    GROUP_ADD,
    GROUP_REMOVE,
    GROUP_SEND,
    GROUP_READ,
    GROUP_MARK,
)
