-- uses: timeline, members, groups
-- KEYS: triples of a group's stream, short hash and members. ARGV: a user. Per group, its
-- newest entry's ID and value and the user's own count there ('', '', '' when the group has
-- no message or the user is not a member). A cluster's inbox page calls it once per group
-- (a script's keys must share a slot). Bound: O(1) per group given (a page's rows).
local out = {}
for i = 1, #KEYS, 3 do
  local id, value = tl_top(KEYS[i], KEYS[i + 1], 'g')
  local mine = redis.call('HGET', KEYS[i + 2], ARGV[1])
  if id and mine then
    out[#out + 1] = id
    out[#out + 1] = value
    out[#out + 1] = string.match(mine, '^(%d+)')
  else
    out[#out + 1] = ''
    out[#out + 1] = ''
    out[#out + 1] = ''
  end
end
return out
