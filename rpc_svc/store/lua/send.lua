-- uses: timeline
-- KEYS: stream, short hash, idempotency set, then the members' inboxes (none on a cluster,
-- where they live in other slots and a ZADD GT per member follows). ARGV: role digit, text,
-- idempotency member ('' for none), its lifetime (µs), the chat's wake channel, the chat,
-- how many messages a short chat's hash holds before it becomes a stream (0: streams only).
-- One round trip per send. Redis's own clock gives the time, bumped past the chat's last
-- message; a key seen within its lifetime returns the first answer. The entry's field t
-- is "<role><sent by 0>:<sent by 1>:<text>": how many messages each member had sent up to
-- it, so an unread count is a difference of two entries. A stored message's send time is
-- announced on the
-- chat's wake channel (SPUBLISH: a long poll whose cursor is past it is not woken), and
-- the chat moves to `st` in each inbox (ZADD GT: never back). Bound: O(1), plus a short
-- hash's move into its stream (at most IM_SHORT_CHAT_MESSAGES records, once).
local now = now_us()
local idem, ttl = ARGV[3], tonumber(ARGV[4])
local prev = seen(KEYS[3], idem, now, ttl)
if prev then return prev end
local st, n0, n1 = now, 0, 0
local id, top, _, long, n = tl_top(KEYS[1], KEYS[2], 't')
if id then
  local last = us(id)
  if st <= last then st = last + 1 end
  local a, b = string.match(top, '^%d(%d+):(%d+):')
  n0, n1 = tonumber(a), tonumber(b)
end
if ARGV[1] == '1' then n1 = n1 + 1 else n0 = n0 + 1 end
local value = string.format('%s%.0f:%.0f:', ARGV[1], n0, n1) .. ARGV[2]
tl_append(KEYS[1], KEYS[2], long, tonumber(ARGV[7]), n, id_of(st), 't', value)
redis.call('SPUBLISH', ARGV[5], string.format('%.0f', st))
remember(KEYS[3], idem, now, ttl, st)
for i = 4, #KEYS do redis.call('ZADD', KEYS[i], 'GT', st, ARGV[6]) end
return st
