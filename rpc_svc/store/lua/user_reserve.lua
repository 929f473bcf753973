-- uses: members
-- KEYS: a user's groups. ARGV: a group, the most groups a user may be in. 1 when the group
-- is (now) among the user's groups (a place reserved before the group's own step, on a
-- cluster), -6 when the user is in as many as it may be. Bound: O(1).
if not may_join(KEYS[1], ARGV[1], tonumber(ARGV[2])) then return -6 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1
