-- uses: remembered, timeline, members, groups, feed
-- KEYS: stream, idempotency set, owner, members, the "big" flag, short hash, the sender's
-- own index; on one Redis also the big groups' activity (sequence, groups, times). ARGV:
-- sender, text, idempotency member ('' for none), its lifetime (µs), the wake channel, the
-- group, '1' on one Redis (the members' inboxes and the activity are written here) or '0' (a
-- cluster: the service writes them next), the most entries of a short hash, '1' with an
-- acting user. {send time}, {send time, 'b'} (a big group, on a cluster), {send time, 's',
-- the group's message before it (0: none, -1: unknown, for a repeated key), members...} (a
-- small group, on a cluster; also for a repeated key, so a retry does the second step
-- again), or {-1}, {-2}. As SEND: Redis's clock bumped past the last message, a
-- key seen within its lifetime answers the first send time, the message's send time
-- announced on the wake channel. The sender's own index gets the send time (8 bytes), so a
-- read position's own count is a binary search (GROUP_MARK). A group without the big flag is
-- small: its members' inboxes get the group at the send time, and the message goes in each
-- member's sync feed (write diffusion, at most IM_GROUP_FANOUT_MAX_MEMBERS members); a big
-- one writes nothing per member (read diffusion: a sync finds its messages).
-- Bound: O(1) for a big group, O(members) for a small one, plus a short hash's move into its
-- stream (at most IM_SHORT_CHAT_MESSAGES records, once).
local mine = redis.call('HGET', KEYS[4], ARGV[1])
local no = refused(mine, KEYS[3], ARGV[9] ~= '1')
if no then return {no} end
local here = ARGV[7] == '1'
local now = now_us()
local idem, ttl = ARGV[3], tonumber(ARGV[4])
local st = seen(KEYS[2], idem, now, ttl)
local last = -1
if st then
  if here then return {st} end
else
  st, last = now, 0
  local n = 0
  local id, top, _, long, count = tl_top(KEYS[1], KEYS[6], 'g')
  if id then
    last = us(id)
    if st <= last then st = last + 1 end
    n = count_of(top)
  end
  local value = string.format('%d:', n + 1) .. ARGV[1] .. ':' .. ARGV[2]
  tl_append(KEYS[1], KEYS[6], long, tonumber(ARGV[8]), count, id_of(st), 'g', value)
  local own = tonumber(string.match(mine, '^(%d+)')) + 1
  redis.call('HSET', KEYS[4], ARGV[1], string.format('%d:%d', own, st))
  redis.call('APPEND', KEYS[7], struct.pack('>d', st))
  redis.call('SPUBLISH', ARGV[5], string.format('%d', st))
  remember(KEYS[2], idem, now, ttl, st)
end
if redis.call('EXISTS', KEYS[5]) == 1 then
  if not here then return {st, 'b'} end
  note_big(KEYS[8], KEYS[9], KEYS[10], ARGV[6], st)
  return {st}
end
local names = redis.call('HKEYS', KEYS[4])
if here then
  for _, m in ipairs(names) do
    redis.call('ZADD', key(m, 'inbox'), 'GT', st, ARGV[6])
    feed_move(key(m, 'read'), key(m, 'feed'), key(m, 'sw'), ARGV[6], st, last)
  end
  return {st}
end
local out = {st, 's', last}
for _, m in ipairs(names) do out[#out + 1] = m end
return out
