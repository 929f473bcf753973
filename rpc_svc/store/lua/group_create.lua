-- uses: remembered, timeline, members, groups, feed
-- KEYS: owner, members; on one Redis also the owner's groups, read positions and sync feed.
-- ARGV: owner, the group, most groups a user may be in, '1' when the owner may join (a
-- cluster: the service reserved its place on the owner's side first), the owner's sync
-- channel. 1 when made (on one Redis with a joined event in the owner's sync feed), 0 when
-- the group exists already, -6 when the owner is in as many groups as it may be. Bound: O(1).
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if KEYS[3] then
  if not may_join(KEYS[3], ARGV[2], tonumber(ARGV[3])) then return -6 end
elseif ARGV[4] ~= '1' then
  return -6
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], '0:0')
if KEYS[3] then
  redis.call('SADD', KEYS[3], ARGV[2])
  feed_joined(KEYS[4], KEYS[5], ARGV[5], ARGV[2], 0, 0, 0)
end
return 1
