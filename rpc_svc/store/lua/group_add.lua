-- uses: remembered, timeline, members, groups, feed
-- KEYS: owner, members, stream, the big flag, short hash, change log; on one Redis also the
-- member's groups, inbox, read positions and sync feed. ARGV: user, member, most members, most
-- members of a small group, '1' with an acting user, the group, most groups a user may be
-- in, '1' when the member may join (a cluster: the service reserved its place on the
-- member's side first), the member's sync channel. {code, owner, newest entry id ('' for
-- none), its message count, the change log's length, 1 when the group turned big here (else
-- 0), members...}: code 1 (added), 0 (a member already), -1, -2 (user not a member), -3
-- (full), -6 (the member is in as many groups as it may be). A member's own count starts at
-- 0 at each join (its own index keeps the send times of an earlier membership, all before
-- its new read position, so they never count). On one Redis the member's side is written
-- here: the group in its groups and (with a message) its inbox at the newest message, its
-- read position there, and a joined event in its sync feed; and a group that turns big wakes
-- each member's waiting syncs (TURNED_BIG on their sync channels: they read again and watch
-- the group's own channels from then on; a cluster's backend does it after the script).
-- Bound: O(members) (the reply, and the wake-ups once).
local mine = redis.call('HGET', KEYS[2], ARGV[1])
local no = refused(mine, KEYS[1], ARGV[5] ~= '1')
if no then return {no} end
local owner = redis.call('GET', KEYS[1])
local id, value = tl_top(KEYS[3], KEYS[5], 'g')
local count = id and count_of(value) or 0
local changes = redis.call('LLEN', KEYS[6])
local code = 0
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then
  if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[3]) then return {-3} end
  if KEYS[7] then
    if not may_join(KEYS[7], ARGV[6], tonumber(ARGV[7])) then return {-6} end
  elseif ARGV[8] ~= '1' then
    return {-6}
  end
  redis.call('HSET', KEYS[2], ARGV[2], '0:0')
  code = 1
  if KEYS[7] then
    local newest = id and us(id) or 0
    joined(KEYS[7], KEYS[8], KEYS[9], ARGV[6], newest, count)
    feed_joined(KEYS[9], KEYS[10], ARGV[9], ARGV[6], newest, newest, changes)
  end
end
local members = redis.call('HKEYS', KEYS[2])
local turned = 0
if redis.call('EXISTS', KEYS[4]) == 0 and #members > tonumber(ARGV[4]) then
  redis.call('SET', KEYS[4], '1')  -- big for good: sends write nothing per member from now
  turned = 1
  if KEYS[7] then
    for _, m in ipairs(members) do redis.call('SPUBLISH', key(m, 'sw'), TURNED_BIG) end
  end
end
local out = {code, owner, id or '', string.format('%d', count), changes, turned}
for _, m in ipairs(members) do out[#out + 1] = m end
return out
