-- uses: timeline, members, groups
-- KEYS: owner, members; on one Redis also the member's groups, inbox and read positions
-- (its own index is kept: its messages stay). ARGV: user, member, '1' with an acting user,
-- the group.
-- {code, owner, members...}: code 1 (removed), 0 (not a member: nothing changed), -1, -2,
-- -4 (not the owner), -5 (the owner leaving). On one Redis the member's side goes in the
-- same step. Bound: O(members) (the reply).
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
