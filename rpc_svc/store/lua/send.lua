-- uses: remembered, timeline, feed
-- KEYS: stream, short hash, idempotency set, then each member's inbox and sync feed (none on
-- a cluster, where they live in other slots and a second step per member follows). ARGV:
-- role digit, text, idempotency member ('' for none), its lifetime (µs), the chat's wake
-- channel, the chat, how many messages a short chat's hash holds before it becomes a stream
-- (0: streams only), then each member's sync channel. The send time; on a cluster {send
-- time, the chat's message before it (0: none; -1 for a repeated key: unknown)}.
-- One round trip per send. Redis's own clock gives the time, bumped past the chat's last
-- message; a key seen within its lifetime returns the first answer. The entry's field t
-- is "<role><sent by 0>:<sent by 1>:<text>": how many messages each member had sent up to
-- it, so an unread count is a difference of two entries. A stored message's send time is
-- announced on the
-- chat's wake channel (SPUBLISH: a long poll whose cursor is past it is not woken), and
-- the chat moves to `st` in each inbox (ZADD GT: never back) and the message goes in each
-- member's sync feed (note_pair). Bound: O(1), plus a short hash's move into its stream (at
-- most IM_SHORT_CHAT_MESSAGES records, once) and a feed's trim (amortized O(1)).
local now = now_us()
local idem, ttl = ARGV[3], tonumber(ARGV[4])
local known = seen(KEYS[3], idem, now, ttl)
if known then
  if #KEYS == 3 then return {known, -1} end
  return known
end
local st, n0, n1, last = now, 0, 0, 0
local id, top, _, long, n = tl_top(KEYS[1], KEYS[2], 't')
if id then
  last = us(id)
  if st <= last then st = last + 1 end
  local a, b = string.match(top, '^%d(%d+):(%d+):')
  n0, n1 = tonumber(a), tonumber(b)
end
if ARGV[1] == '1' then n1 = n1 + 1 else n0 = n0 + 1 end
local value = string.format('%s%d:%d:', ARGV[1], n0, n1) .. ARGV[2]
tl_append(KEYS[1], KEYS[2], long, tonumber(ARGV[7]), n, id_of(st), 't', value)
redis.call('SPUBLISH', ARGV[5], string.format('%d', st))
remember(KEYS[3], idem, now, ttl, st)
if #KEYS == 3 then return {st, last} end
local a, b = string.match(ARGV[6], '^([^:]+):(.+)$')
for i = 4, #KEYS, 2 do
  local first = i == 4
  note_pair(KEYS[i], KEYS[i + 1], ARGV[8 + (i - 4) / 2], ARGV[6], first and b or a, first, st, last)
end
return st
