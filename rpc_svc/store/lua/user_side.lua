-- uses: members
-- KEYS: a user's groups, inbox, read positions. ARGV: a group, '1' when the user is its
-- member, the send time of its newest message (0: none). The user's side as the group says
-- it is: a member has the group in its groups and, with a message, in its inbox (never moved
-- back); anyone else has none of it, nor a read position there. Bound: O(1).
if ARGV[2] == '1' then
  redis.call('SADD', KEYS[1], ARGV[1])
  if ARGV[3] ~= '0' then redis.call('ZADD', KEYS[2], 'GT', ARGV[3], ARGV[1]) end
else
  left(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
end
return 1
