-- uses: remembered, timeline, changes
-- One step of erasing recalled texts from a chat's stream (a stream entry cannot be changed,
-- and an entry deleted keeps its bytes until its whole node goes): the stream is copied,
-- `count` entries a step, into a new stream whose recalled entries hold no text, and the
-- last step puts the copy in its place (RENAME: readers see the one stream or the other,
-- both whole; sends meanwhile go to the old one and are copied by the last step). KEYS:
-- stream, the copy, the erasures under way, the lock. ARGV: the lock's token, the last
-- entry copied ('' for none: the first step, which takes the lock), count, the lock's
-- lifetime (ms), then the send times being erased (those named when the erasure started:
-- one recalled later is erased by the next). Answer: the last entry copied, 'done' once the
-- copy is in place, or 'busy' (another erasure holds the lock). Bound: `count` entries.
local from = ARGV[2]
if from == '' then
  if not redis.call('SET', KEYS[4], ARGV[1], 'NX', 'PX', ARGV[4]) then return 'busy' end
  if redis.call('EXISTS', KEYS[2]) == 1 then  -- a copy left by an erasure cut short
    redis.call('XTRIM', KEYS[2], 'MAXLEN', 0)
    redis.call('XSETID', KEYS[2], '0-1')
  end
elseif redis.call('GET', KEYS[4]) ~= ARGV[1] then
  return 'busy'
else
  redis.call('PEXPIRE', KEYS[4], ARGV[4])
end
local erase = {}
for i = 5, #ARGV do erase[ARGV[i]] = true end
local start = from == '' and '-' or '(' .. from
local rows = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', tonumber(ARGV[3]))
local last = from
for _, row in ipairs(rows) do
  local value = row[2][2]
  if erase[string.format('%d', us(row[1]))] then value = blank(value) end
  redis.call('XADD', KEYS[2], row[1], row[2][1], value)
  last = row[1]
end
if #rows == tonumber(ARGV[3]) then return last end
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[1]) end
if #ARGV > 4 then redis.call('SREM', KEYS[3], unpack(ARGV, 5)) end
redis.call('GETDEL', KEYS[4])
return 'done'
