-- uses: feed
-- KEYS: a user's read positions, sync feed; for a group on one Redis its change log. ARGV:
-- chat, "<read_until>:<n0>:<n1>", the record's kind ('c'/'d': a 1:1 chat where the user is
-- the first/second member, 's': a group; '': no event, as for the position a join sets) and
-- the chat's name from the user's side (the peer, or the group), the user's sync channel;
-- for a group its newest message's send time and its change log's length at the read, and
-- (a cluster) log_newest's text of the records the feed has not had. Only forward; answers
-- the position kept. A position that moves is a read event in the user's sync feed, after
-- the group's messages and changes accepted before it (a big group's: no send wrote them
-- there; feed_catch_up). A position of 0 (nothing read: no message at or before the time
-- named) writes nothing: reads of empty chats leave no keys behind. Bound: O(1).
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local new = tonumber(string.match(ARGV[2], '^%d+'))
if cur and tonumber(string.match(cur, '^%d+')) >= new then
  return cur
end
if new == 0 then
  return cur or ARGV[2]
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == 's' then  -- a big group's messages and changes before it first
  feed_catch_up(KEYS[1], KEYS[2], ARGV[5], ARGV[4], math.max(new, tonumber(ARGV[6])),
    tonumber(ARGV[7]), KEYS[3] or log_newest(ARGV[8]))
end
if ARGV[3] ~= '' then feed_push(KEYS[2], ARGV[5], rec(ARGV[3], new, ARGV[4])) end
return ARGV[2]
