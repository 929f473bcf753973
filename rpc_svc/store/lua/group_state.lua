-- uses: remembered, timeline
-- KEYS: a group's members, stream, short hash, change log. ARGV: a user. {1 when the user is
-- a member (else 0), the send time of the group's newest message (0: none), the change log's
-- length}. Bound: O(1).
local id = tl_top(KEYS[2], KEYS[3], 'g')
return {redis.call('HEXISTS', KEYS[1], ARGV[1]), id and string.format('%d', us(id)) or '0',
  redis.call('LLEN', KEYS[4])}
