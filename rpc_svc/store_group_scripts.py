"""The Lua scripts of group chats: each runs on the Redis (cluster node) of one group's keys
(the stream, its idempotency sets, owner, members and each member's index of its own send
times share the group's hash tag); on one Redis they also write the member's side.

A refusal is a negative number (the codes of rpc_svc.groups), where a result would be a send
time or a list. Entries have one field g: "<messages so far>:<sender>:<text>", so a count of
messages after a read position is a difference of two entries (O(log N)). A small group's
send moves it in its members' inboxes; a big group's writes nothing per member: it notes
the group's activity once (store_member_scripts), and each member's inbox read picks it up.

Every script states its bound: the entries and keys it touches for its worst input. None
grows with a group's history; what grows with a group's members is bounded by
IM_GROUP_MAX_MEMBERS (and IM_GROUP_FANOUT_MAX_MEMBERS for a send).

With an acting user (authentication on) a script checks membership first, so a caller who
is not a member learns the same -2 of a group that exists and of one that does not.
"""

from __future__ import annotations

from rpc_svc.store_member_scripts import MEMBER_HELPERS
from rpc_svc.store_scripts import SEND_HELPERS, Script

# Lua helpers: those of the send scripts and of the member's side, the message count of a
# group entry, and `refused`: the refusal of a caller `mine` (its members-hash value, false
# when not a member) names: -2, or -1 for a group that does not exist when no acting user
# is set (`open`: authentication off).
_HELPERS = (
    SEND_HELPERS
    + MEMBER_HELPERS
    + """
local function count_of(value) return tonumber(string.match(value, '^(%d+):')) end
local function refused(mine, owner_key, open)
  if mine then return nil end
  if open and redis.call('EXISTS', owner_key) == 0 then return -1 end
  return -2
end
"""
)

# KEYS: owner, members; on one Redis also the owner's groups. ARGV: owner, the group, most
# groups a user may be in, '1' when the owner may join (a cluster: the service reserved its
# place on the owner's side first). 1 when made, 0 when the group exists already, -6 when the
# owner is in as many groups as it may be. Bound: O(1).
GROUP_CREATE = Script(
    _HELPERS
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if KEYS[3] then
  if not may_join(KEYS[3], ARGV[2], tonumber(ARGV[3])) then return -6 end
elseif ARGV[4] ~= '1' then
  return -6
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], '0:0')
if KEYS[3] then redis.call('SADD', KEYS[3], ARGV[2]) end
return 1
"""
)

# KEYS: owner, members. ARGV: acting user ('' for none). {code, owner, members...}: code 1,
# or -1 (no such group), -2 (the acting user is not a member). Bound: O(members).
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

# KEYS: owner, members, stream, the big flag, short hash; on one Redis also the member's
# groups, inbox and read positions. ARGV: user, member, most
# members, most members of a small group, '1' with an acting user, the group, most groups a
# user may be in, '1' when the member may join (a cluster: the service reserved its place
# on the member's side first). {code, owner, newest entry id ('' for none), its message
# count, members...}: code 1 (added), 0 (a member already), -1, -2 (user not a member), -3
# (full), -6 (the member is in as many groups as it may be). A member's own count starts at
# 0 at each join (its own index keeps the send times of an earlier membership, all before
# its new read position, so they never count). On one Redis the member's side is written
# here: the group in its groups and (with a message) its inbox at the newest message, its
# read position there. Bound: O(members) (the reply).
GROUP_ADD = Script(
    _HELPERS
    + """
local mine = redis.call('HGET', KEYS[2], ARGV[1])
local no = refused(mine, KEYS[1], ARGV[5] ~= '1')
if no then return {no} end
local owner = redis.call('GET', KEYS[1])
local id, value = tl_top(KEYS[3], KEYS[5], 'g')
local count = id and count_of(value) or 0
local code = 0
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then
  if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[3]) then return {-3} end
  if KEYS[6] then
    if not may_join(KEYS[6], ARGV[6], tonumber(ARGV[7])) then return {-6} end
  elseif ARGV[8] ~= '1' then
    return {-6}
  end
  redis.call('HSET', KEYS[2], ARGV[2], '0:0')
  code = 1
  if KEYS[6] then joined(KEYS[6], KEYS[7], KEYS[8], ARGV[6], id and us(id) or 0, count) end
end
if redis.call('EXISTS', KEYS[4]) == 0 and redis.call('HLEN', KEYS[2]) > tonumber(ARGV[4]) then
  redis.call('SET', KEYS[4], '1')  -- big for good: sends write nothing per member from now
end
local out = {code, owner, id or '', string.format('%.0f', count)}
for _, m in ipairs(redis.call('HKEYS', KEYS[2])) do out[#out + 1] = m end
return out
"""
)

# KEYS: owner, members; on one Redis also the member's groups, inbox and read positions
# (its own index is kept: its messages stay). ARGV: user, member, '1' with an acting user,
# the group.
# {code, owner, members...}: code 1 (removed), 0 (not a member: nothing changed), -1, -2,
# -4 (not the owner), -5 (the owner leaving). On one Redis the member's side goes in the
# same step. Bound: O(members) (the reply).
GROUP_REMOVE = Script(
    _HELPERS
    + """
local mine = redis.call('HGET', KEYS[2], ARGV[1])
local no = refused(mine, KEYS[1], ARGV[3] ~= '1')
if no then return {no} end
local owner = redis.call('GET', KEYS[1])
if ARGV[2] == ARGV[1] and ARGV[1] == owner then return {-5} end
if ARGV[2] ~= ARGV[1] and ARGV[1] ~= owner then return {-4} end
local out = {redis.call('HDEL', KEYS[2], ARGV[2]), owner}
if KEYS[3] then left(KEYS[3], KEYS[4], KEYS[5], ARGV[4]) end
for _, m in ipairs(redis.call('HKEYS', KEYS[2])) do out[#out + 1] = m end
return out
"""
)

# KEYS: stream, idempotency set, owner, members, the "big" flag, short hash, the sender's
# own index; on one Redis also the big groups' activity (sequence, groups, times). ARGV:
# sender, text, idempotency member ('' for none), its lifetime (µs), the wake channel, the
# group, '1' on one Redis (the members' inboxes and the activity are written here) or '0' (a
# cluster: the service writes them next), the most entries of a short hash, '1' with an
# acting user. {send time}, {send time, 'b'} (a big group, on a cluster), {send time, 's',
# members...} (a small group, on a cluster; also for a repeated key, so a retry does the
# second step again), or {-1}, {-2}. As SEND: Redis's clock bumped past the last message, a
# key seen within its lifetime answers the first send time, the message's send time
# announced on the wake channel. The sender's own index gets the send time (8 bytes), so a
# read position's own count is a binary search (GROUP_MARK). A group without the big flag is
# small: its members' inboxes get the group at the send time (write diffusion, at most
# IM_GROUP_FANOUT_MAX_MEMBERS writes); a big one writes nothing per member (read diffusion).
# Bound: O(1) for a big group, O(members) for a small one, plus a short hash's move into its
# stream (at most IM_SHORT_CHAT_MESSAGES records, once).
GROUP_SEND = Script(
    _HELPERS
    + """
local mine = redis.call('HGET', KEYS[4], ARGV[1])
local no = refused(mine, KEYS[3], ARGV[9] ~= '1')
if no then return {no} end
local here = ARGV[7] == '1'
local now = now_us()
local idem, ttl = ARGV[3], tonumber(ARGV[4])
local st = seen(KEYS[2], idem, now, ttl)
if st then
  if here then return {st} end
else
  st = now
  local n = 0
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
  redis.call('APPEND', KEYS[7], struct.pack('>d', st))
  redis.call('SPUBLISH', ARGV[5], string.format('%.0f', st))
  remember(KEYS[2], idem, now, ttl, st)
end
if redis.call('EXISTS', KEYS[5]) == 1 then
  if not here then return {st, 'b'} end
  note_big(KEYS[8], KEYS[9], KEYS[10], ARGV[6], st)
  return {st}
end
local names = redis.call('HKEYS', KEYS[4])
if here then
  for _, m in ipairs(names) do redis.call('ZADD', key(m, 'inbox'), 'GT', st, ARGV[6]) end
  return {st}
end
local out = {st, 's'}
for _, m in ipairs(names) do out[#out + 1] = m end
return out
"""
)

# KEYS: stream, owner, members, short hash. ARGV: acting user ('' for none), start, end, count,
# '1' for newest first. The entries, or -2 (the acting user is not a member, whether or
# not the group exists), -1 (no acting user and no such group). Bound: `count` entries (the
# page's limit + 1) of a stream, or a short hash's records (at most IM_SHORT_CHAT_MESSAGES).
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

# KEYS: stream, owner, members, short hash, the user's own index. ARGV: user, a send time
# (0: none), '1' with an acting user. Where the user's read position would be: {1, read
# until, messages up to it, the user's own messages up to it}, or {-1}, {-2}. The own count
# at a position before the user's last message is its count less its send times after the
# position, found by a binary search of its own index (8-byte send times, oldest first).
# Bound: one entry found in O(log N) (or a short hash's records), and O(log own messages)
# GETRANGEs, whatever the position asked for.
GROUP_MARK = Script(
    _HELPERS
    + """
local mine = redis.call('HGET', KEYS[3], ARGV[1])
local no = refused(mine, KEYS[2], ARGV[3] ~= '1')
if no then return {no} end
local at = tonumber(ARGV[2])
if at == 0 then return {1, '0', '0', '0'} end
local top = tl_range(KEYS[1], KEYS[4], 'g', id_of(at), '-', 1, true)
if not top[1] then return {1, '0', '0', '0'} end
local until_ = us(top[1][1])
local own, last = string.match(mine, '^(%d+):(%d+)$')
own, last = tonumber(own), tonumber(last)
if last > until_ then
  local n = redis.call('STRLEN', KEYS[5]) / 8
  local lo, hi = 0, n  -- the first of the user's send times after until_
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local t = struct.unpack('>d', redis.call('GETRANGE', KEYS[5], mid * 8, mid * 8 + 7))
    if t > until_ then hi = mid else lo = mid + 1 end
  end
  own = math.max(0, own - (n - lo))
end
return {1, string.format('%.0f', until_), string.format('%.0f', count_of(top[1][2][2])),
  string.format('%.0f', own)}
"""
)

# KEYS: triples of a group's stream, short hash and members. ARGV: a user. Per group, its
# newest entry's ID and value and the user's own count there ('', '', '' when the group has
# no message or the user is not a member). A cluster's inbox page calls it once per group
# (a script's keys must share a slot). Bound: O(1) per group given (a page's rows).
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
# read positions, groups; the big groups' activity: sequence, groups, times. ARGV: the
# user, the highest position ('+inf' or a time), how many inbox rows, how many of them to
# read the newest entry of. First the user's big groups with messages since its last inbox
# read move to their last message in its inbox (catch_up); then the page in one call:
# chat, position, read position, then for the first rows the newest entry's id, field, value
# and (a group) the user's members-hash value ('' for a group it is not a member of: such a
# row, left by an earlier version, is dropped from the inbox here and answers as a chat
# without messages). Bound: the page's rows, plus catch_up's min(big groups active since the
# user's last read, the user's groups).
INBOX_PAGE = Script(
    _HELPERS
    + """
catch_up(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
local rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], '-inf', 'WITHSCORES',
  'LIMIT', 0, tonumber(ARGV[3]))
local head, out, k = tonumber(ARGV[4]), {}, 0
for i = 1, #rows, 2 do
  local chat = rows[i]
  local id, name, value, mine = '', '', '', ''
  if k < head * 7 then
    local group = string.byte(chat, 1) == 35 and not string.find(chat, ':', 1, true)  -- '#'
    if group then
      mine = redis.call('HGET', key(chat, 'mem'), ARGV[1]) or ''
      if mine == '' then left(KEYS[3], KEYS[1], KEYS[2], chat) end
    end
    if mine ~= '' or not group then
      local eid, v, f = tl_top(key(chat, 'm'), key(chat, 's'), group and 'g' or 't')
      if eid then id, name, value = eid, f, v end
    end
  end
  out[k + 1], out[k + 2], out[k + 3] = chat, rows[i + 1], redis.call('HGET', KEYS[2], chat) or ''
  out[k + 4], out[k + 5], out[k + 6], out[k + 7] = id, name, value, mine
  k = k + 7
end
return out
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
