-- KEYS: the big groups' sequence, groups, times, change counts. ARGV: the sequence number a
-- user saw last, the most groups worth listing (the user's), then groups (none: any). {the
-- sequence number now, then group, its last send time, its change log's length, ...}: with groups given, each of them that is big and
-- has a message (a move to its last send time is a move only where it changed); else the big
-- groups with a message since, or {the sequence number, '*'} when more than the most changed
-- (the caller then gives the user's groups). Bound: O(min(groups active since, the most)) or
-- O(groups given).
local seen, most = tonumber(ARGV[1]), tonumber(ARGV[2])
local top = tonumber(redis.call('GET', KEYS[1]) or '0')
local out = {string.format('%d', top)}
if top <= seen then return out end
local changed
if #ARGV > 2 then
  changed = {unpack(ARGV, 3)}
else
  local since = '(' .. string.format('%d', seen)
  if redis.call('ZCOUNT', KEYS[2], since, top) > most then return {out[1], '*'} end
  changed = redis.call('ZRANGEBYSCORE', KEYS[2], since, top)
end
if #changed == 0 then return out end
local counts = redis.call('HMGET', KEYS[4], unpack(changed))
for i, t in ipairs(redis.call('HMGET', KEYS[3], unpack(changed))) do
  if t or counts[i] then
    out[#out + 1] = changed[i]
    out[#out + 1] = t or '0'
    out[#out + 1] = counts[i] or '0'
  end
end
return out
