-- KEYS: a user's read positions. ARGV: chat, "<read_until>:<n0>:<n1>". Only forward;
-- answers the position kept. A position of 0 (nothing read: no message at or before the
-- time named) writes nothing: reads of empty chats leave no keys behind. Bound: O(1).
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local new = tonumber(string.match(ARGV[2], '^%d+'))
if cur and tonumber(string.match(cur, '^%d+')) >= new then
  return cur
end
if new == 0 then
  return cur or ARGV[2]
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[2]
