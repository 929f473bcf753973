-- uses: remembered, timeline, members, groups
-- KEYS: stream, owner, members, short hash, changes. ARGV: acting user ('' for none), start,
-- end, count, '1' for newest first. {the entries, the changes set's members for their send
-- times}, or -2 (the acting user is not a member, whether or not the group exists), -1 (no
-- acting user and no such group). Bound: `count` entries (the page's limit + 1) of a stream,
-- or a short hash's records (at most IM_SHORT_CHAT_MESSAGES), and as many changes.
if ARGV[1] ~= '' then
  if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 0 then return -2 end
elseif redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
local rows = tl_range(KEYS[1], KEYS[4], 'g', ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5] == '1')
if #rows == 0 then return {rows, {}} end
local lo, hi = us(rows[1][1]), us(rows[#rows][1])
if lo > hi then lo, hi = hi, lo end
return {rows, redis.call('ZRANGEBYSCORE', KEYS[5], lo, hi, 'LIMIT', 0, #rows)}
