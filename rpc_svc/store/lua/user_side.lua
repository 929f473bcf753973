-- uses: members, feed
-- KEYS: a user's groups, inbox, read positions, sync feed. ARGV: a group, '1' when the user
-- is its member, the send time of its newest message (0: none), the send time of its newest
-- message when the user joined or left (0: not known, as for a side healed later), the
-- user's sync channel, the length of the group's change log, and (one who left, with changes
-- its feed has not had) "<first record's number - 1>;<newest>,<newest>,..." : the newest send
-- time each of the change log's records names, from the feed's change position on. The
-- user's side as the group says it is: a member has the group in
-- its groups and, with a message, in its inbox (never moved back), and its sync feed a
-- joined event and then the group's messages up to the newest (those sent before this side
-- was written, which no send's second step could give it); anyone else has none of it, nor
-- a read position there, and its sync feed the group's messages up to its leaving and a left
-- event. Bound: O(1).
local newest, at, changes = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[6])
if ARGV[2] == '1' then
  redis.call('SADD', KEYS[1], ARGV[1])
  if newest > 0 then redis.call('ZADD', KEYS[2], 'GT', newest, ARGV[1]) end
  feed_joined(KEYS[3], KEYS[4], ARGV[5], ARGV[1], at > 0 and at or newest, newest, changes)
else
  left(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
  feed_left(KEYS[3], KEYS[4], ARGV[5], ARGV[1], at, changes, log_newest(ARGV[7] or ''))
end
return 1
