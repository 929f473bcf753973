-- uses: remembered, feed
-- A send's second step on a cluster, for one member (its keys are in its own slot). KEYS:
-- the member's inbox, read positions, sync feed, the recalls its feed has got. ARGV: the
-- chat, '1' for a 1:1 chat where the member is the first member, '2' where it is the
-- second, 'g' for a group; the chat's name from the member's side (the peer, or the group),
-- the message's send time, the send time of the chat's message before it (0: none, -1: not
-- known), the member's sync channel; for an edit or recall its record's kind ('' for a send),
-- the send time of the message changed (the send time before: the chat's newest message
-- then, which the feed gets first), and how long a recall is remembered (µs).
-- The chat moves to the send time in the member's inbox (never back) and the message goes
-- in its sync feed (note_pair, feed_move: idempotent, so a retried send's step adds
-- nothing twice). A recall's record goes in once: the recall is remembered (seen /
-- remember, for the idempotency keys' lifetime), so a retried recall's step adds nothing
-- twice. Bound: O(1), plus a feed's trim (amortized O(1)); a recall: O(log) of the recalls
-- remembered, and at most 8 expired ones dropped.
local st, prev, change = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[7]
if ARGV[2] == 'g' then
  redis.call('ZADD', KEYS[1], 'GT', st, ARGV[1])
  if change ~= '' and redis.call('HEXISTS', KEYS[2], '+' .. ARGV[1]) == 0 then return 1 end
  feed_move(KEYS[2], KEYS[3], ARGV[6], ARGV[1], st, prev)
else
  note_pair(KEYS[1], KEYS[3], ARGV[6], ARGV[1], ARGV[3], ARGV[2] == '1', st, prev)
end
if change == '' then return 1 end
local changed = tonumber(ARGV[8])
if change == 'x' or change == 'y' or change == 'X' then
  if redis.call('EXISTS', KEYS[3]) == 0 then return 1 end
  local now, ttl, mark = now_us(), tonumber(ARGV[9]), ARGV[8] .. ' ' .. ARGV[1]
  if seen(KEYS[4], mark, now, ttl) then return 1 end
  remember(KEYS[4], mark, now, ttl, now)
end
feed_push(KEYS[3], ARGV[6], rec(change, changed, ARGV[3]))
return 1
