-- uses: members, feed
-- One Redis only (it names keys it was not given). KEYS: a user's groups, inbox, read
-- positions, sync feed. ARGV: the user, its sync channel. The groups it is a member of (its side of any other, left by an
-- earlier version, dropped here). Bound: O(the user's groups), at most IM_USER_MAX_GROUPS.
local out = {}
for _, g in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('HEXISTS', key(g, 'mem'), ARGV[1]) == 1 then
    out[#out + 1] = g
  else
    left(KEYS[1], KEYS[2], KEYS[3], g)
    feed_left(KEYS[3], KEYS[4], ARGV[2], g, 0, 0)
  end
end
return out
