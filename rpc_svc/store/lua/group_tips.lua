-- uses: remembered, timeline, members, groups
-- KEYS: quadruples of a group's stream, short hash, members and changes. ARGV: a user. Per
-- group, its newest entry's ID and value, the user's own count there and the entry's change
-- ('' for none; '', '', '', '' when the group has no message or the user is not a member). A
-- cluster's inbox page calls it once per group (a script's keys must share a slot). Bound:
-- O(1) per group given (a page's rows).
local out = {}
for i = 1, #KEYS, 4 do
  local id, value = tl_top(KEYS[i], KEYS[i + 1], 'g')
  local mine = redis.call('HGET', KEYS[i + 2], ARGV[1])
  if id and mine then
    local st = us(id)
    out[#out + 1] = id
    out[#out + 1] = value
    out[#out + 1] = string.match(mine, '^(%d+)')
    out[#out + 1] = redis.call('ZRANGEBYSCORE', KEYS[i + 3], st, st, 'LIMIT', 0, 1)[1] or ''
  else
    for _ = 1, 4 do out[#out + 1] = '' end
  end
end
return out
