-- uses: remembered, timeline, members, groups, feed
-- KEYS: owner, members, stream, short hash, change log; on one Redis also the member's
-- groups, inbox, read positions and sync feed (its own index is kept: its messages stay).
-- ARGV: user, member, '1' with an acting user, the group, the member's sync channel.
-- {code, owner, the send time of the group's newest message (0: none), its change log's
-- length, members...}: code 1
-- (removed), 0 (not a member: nothing changed), -1, -2, -4 (not the owner), -5 (the owner
-- leaving). On one Redis the member's side goes in the same step: its sync feed gets the
-- group's messages up to the newest, then a left event. Bound: O(members) (the reply).
local mine = redis.call('HGET', KEYS[2], ARGV[1])
local no = refused(mine, KEYS[1], ARGV[3] ~= '1')
if no then return {no} end
local owner = redis.call('GET', KEYS[1])
if ARGV[2] == ARGV[1] and ARGV[1] == owner then return {-5} end
if ARGV[2] ~= ARGV[1] and ARGV[1] ~= owner then return {-4} end
local id = tl_top(KEYS[3], KEYS[4], 'g')
local newest = id and us(id) or 0
local changes = redis.call('LLEN', KEYS[5])
local out = {redis.call('HDEL', KEYS[2], ARGV[2]), owner, string.format('%d', newest),
  changes}
if KEYS[6] then
  left(KEYS[6], KEYS[7], KEYS[8], ARGV[4])
  if out[1] == 1 then feed_left(KEYS[8], KEYS[9], ARGV[5], ARGV[4], newest, changes, KEYS[5]) end
end
for _, m in ipairs(redis.call('HKEYS', KEYS[2])) do out[#out + 1] = m end
return out
