-- uses: remembered, timeline, members, groups
-- One Redis only (it names keys it was not given: not for a cluster). KEYS: a user's inbox,
-- read positions, groups; the big groups' activity: sequence, groups, times. ARGV: the
-- user, the highest position ('+inf' or a time), how many inbox rows, how many of them to
-- read the newest entry of. First the user's big groups with messages since its last inbox
-- read move to their last message in its inbox (catch_up); then the page in one call:
-- chat, position, read position, then for the first rows the newest entry's id, value
-- and (a group) the user's members-hash value ('' for a group it is not a member of: one
-- Redis writes no such row, but one found is dropped here and answers as a chat without
-- messages). Bound: the page's rows, plus catch_up's min(big groups active since the
-- user's last read, the user's groups).
catch_up(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
local rows = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], '-inf', 'WITHSCORES',
  'LIMIT', 0, tonumber(ARGV[3]))
local head, out, k = tonumber(ARGV[4]), {}, 0
for i = 1, #rows, 2 do
  local chat = rows[i]
  local id, value, mine, change = '', '', '', ''
  if k < head * 7 then
    local group = string.byte(chat, 1) == 35 and not string.find(chat, ':', 1, true)  -- '#'
    if group then
      mine = redis.call('HGET', key(chat, 'mem'), ARGV[1]) or ''
      if mine == '' then left(KEYS[3], KEYS[1], KEYS[2], chat) end
    end
    if mine ~= '' or not group then
      local eid, v = tl_top(key(chat, 'm'), key(chat, 's'), '')
      if eid then
        id, value = eid, v
        local st = us(eid)
        change = redis.call('ZRANGEBYSCORE', key(chat, 'x'), st, st, 'LIMIT', 0, 1)[1] or ''
      end
    end
  end
  out[k + 1], out[k + 2], out[k + 3] = chat, rows[i + 1], redis.call('HGET', KEYS[2], chat) or ''
  out[k + 4], out[k + 5], out[k + 6], out[k + 7] = id, value, mine, change
  k = k + 7
end
return out
