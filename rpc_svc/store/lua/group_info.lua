-- KEYS: owner, members. ARGV: acting user ('' for none). {code, owner, members...}: code 1,
-- or -1 (no such group), -2 (the acting user is not a member). Bound: O(members).
if ARGV[1] ~= '' and redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return {-2} end
local owner = redis.call('GET', KEYS[1])
if not owner then return {-1} end
local out = {1, owner}
for _, m in ipairs(redis.call('HKEYS', KEYS[2])) do out[#out + 1] = m end
return out
