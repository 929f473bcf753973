-- uses: remembered, timeline, changes
-- Erase recalled texts from a chat's stream by rewriting its tail in place (the common case:
-- a recall of a recent message). A stream entry cannot be changed, and an entry deleted
-- keeps its bytes until its whole node goes; a node holds at most `node` entries (the
-- server's stream-node-max-entries, deleted ones counted), so deleting every entry from the
-- `node` - 1 live entries before the oldest recalled one to the end frees every node that
-- holds a recalled text. XSETID then moves the stream's last id back to the newest entry
-- kept, and the deleted entries go back in the same ids, their recalled texts blank. One
-- script: a reader sees the stream before or after, never without the tail. KEYS: stream,
-- the erasures under way, ERASE_STEP's lock. ARGV: node, the most entries to rewrite, then
-- the send times being erased. Answer 'done' (their texts are gone; taken off the erasures
-- set), 'deep' (more entries than the most after the oldest: ERASE_STEP copies the whole
-- stream), or 'busy' (such a copy is under way: it would copy the texts back). Bound: the
-- most entries given, plus `node`.
if redis.call('EXISTS', KEYS[3]) == 1 then return 'busy' end
local node, most = tonumber(ARGV[1]), tonumber(ARGV[2])
local erase, oldest = {}, nil
for i = 3, #ARGV do
  erase[ARGV[i]] = true
  local t = tonumber(ARGV[i])
  if not oldest or t < oldest then oldest = t end
end
if not oldest then return 'done' end
local tail = redis.call('XRANGE', KEYS[1], id_of(oldest), '+', 'COUNT', most + 1)
if #tail > most then return 'deep' end
if #tail > 0 then
  local before = redis.call('XREVRANGE', KEYS[1], '(' .. id_of(oldest), '-', 'COUNT', node - 1)
  local rows = {}
  for i = #before, 1, -1 do rows[#rows + 1] = before[i] end
  for _, row in ipairs(tail) do rows[#rows + 1] = row end
  local ids = {}
  for i, row in ipairs(rows) do ids[i] = row[1] end
  for i = 1, #ids, 500 do
    redis.call('XDEL', KEYS[1], unpack(ids, i, math.min(i + 499, #ids)))
  end
  local kept = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  redis.call('XSETID', KEYS[1], kept and kept[1] or '0-1')
  for _, row in ipairs(rows) do
    local value = row[2][2]
    if erase[string.format('%d', us(row[1]))] then value = blank(value) end
    redis.call('XADD', KEYS[1], row[1], row[2][1], value)
  end
end
redis.call('SREM', KEYS[2], unpack(ARGV, 3))
return 'done'
