-- uses: remembered, timeline, members, groups
-- KEYS: stream, owner, members, short hash, the user's own index, the change log. ARGV:
-- user, a send time (0: none), '1' with an acting user. Where the user's read position would
-- be: {1, read until, messages up to it, the user's own messages up to it, the group's newest
-- message's send time, its change log's length} (the last two: what a read event comes after
-- in the user's sync feed), or {-1}, {-2}. The own count
-- at a position before the user's last message is its count less its send times after the
-- position, found by a binary search of its own index (8-byte send times, oldest first).
-- Bound: one entry found in O(log N) (or a short hash's records), and O(log own messages)
-- GETRANGEs, whatever the position asked for.
local mine = redis.call('HGET', KEYS[3], ARGV[1])
local no = refused(mine, KEYS[2], ARGV[3] ~= '1')
if no then return {no} end
local at = tonumber(ARGV[2])
if at == 0 then return {1, '0', '0', '0', '0', 0} end
local top = tl_range(KEYS[1], KEYS[4], 'g', id_of(at), '-', 1, true)
if not top[1] then return {1, '0', '0', '0', '0', 0} end
local until_ = us(top[1][1])
local own, last = string.match(mine, '^(%d+):(%d+)$')
own, last = tonumber(own), tonumber(last)
if last > until_ then
  local n = redis.call('STRLEN', KEYS[5]) / 8
  local lo, hi = 0, n  -- the first of the user's send times after until_
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local t = struct.unpack('>d', redis.call('GETRANGE', KEYS[5], mid * 8, mid * 8 + 7))
    if t > until_ then hi = mid else lo = mid + 1 end
  end
  own = math.max(0, own - (n - lo))
end
local newest = tl_top(KEYS[1], KEYS[4], 'g')
return {1, string.format('%d', until_), string.format('%d', count_of(top[1][2][2])),
  string.format('%d', own), string.format('%d', us(newest)), redis.call('LLEN', KEYS[6])}
