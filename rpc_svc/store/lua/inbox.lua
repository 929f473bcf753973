-- A cluster's inbox page (one Redis runs INBOX_PAGE). KEYS: a user's inbox, read positions,
-- groups. ARGV: highest position ('+inf' or a time), how many of the chats there to skip
-- (those of that position already shown), how many; then, when the service caught up with
-- the big groups' activity, the sequence number it caught up to and pairs of a big group and
-- its last send time (each moved in the inbox when the group is among the user's groups).
-- Answers the sequence number the user's inbox has seen, how many groups the user is in,
-- then chat, position, read position ('' for none), ... most recent first. Bound: the page,
-- plus the pairs given (at most the user's groups).
if ARGV[4] then
  for i = 5, #ARGV, 2 do
    if redis.call('SISMEMBER', KEYS[3], ARGV[i]) == 1 then
      redis.call('ZADD', KEYS[1], 'GT', ARGV[i + 1], ARGV[i])
    end
  end
  local seen = tonumber(redis.call('HGET', KEYS[2], ':big') or '0')
  if tonumber(ARGV[4]) > seen and redis.call('SCARD', KEYS[3]) > 0 then
    redis.call('HSET', KEYS[2], ':big', ARGV[4])
  end
end
local rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], '-inf', 'WITHSCORES',
  'LIMIT', tonumber(ARGV[2]), tonumber(ARGV[3]))
local out = {redis.call('HGET', KEYS[2], ':big') or '0', redis.call('SCARD', KEYS[3])}
for i = 1, #rows, 2 do
  out[#out + 1] = rows[i]
  out[#out + 1] = rows[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[2], rows[i]) or ''
end
return out
