-- Helpers of a chat's (or group's) timeline (scripts that use it name `remembered` first).
-- us / id_of: a stream ID as µs and back (the ID of a message is its send time:
-- "<ms>-<µs within it>").
-- A timeline is, while the chat is short, a hash of its records (field i, the i-th message,
-- holds "<id> <value>"), a stream once it is long (see store.md). tl_top: the newest entry
-- (id, value, field), whether the timeline is a stream, and the hash's record count;
-- tl_append: add an entry after that, moving a hash of `short_max` records into the stream;
-- tl_range: read as XRANGE (XREVRANGE when `reverse`, bounds then high first) does, from
-- either form; tl_after: the entries sent after one time up to another (µs), oldest first, as
-- {send time, value} (sync's ranges: no ID formatted or parsed again); tl_at: the value of the
-- entry at one send time (nil for none; a sync keeps what it read of a chat for the chat's
-- next read). Neither cuts out an ID: a sync's answer does not carry it. A hash's records
-- are in time order: the reads find a time by bisection over its fields (`HGET`s, the newest
-- first for tl_at: a sync reads new messages), then read only the records they answer, so
-- that a read costs O(log records) of a short chat's values, not all of them (short_field,
-- short_after). Numbers travel as decimal strings (%d: Redis's
-- Lua prints it as a C long, 64 bits here, exact for these integers and a quarter of %.0f's
-- cost): µs times pass 2^31, and Redis would print a Lua number in exponent form (a
-- script's integer reply, as sync's send times, is exact below 2^53).
local function us(id)
  local dash = string.find(id, '-', 1, true)
  return tonumber(string.sub(id, 1, dash - 1)) * 1000 + tonumber(string.sub(id, dash + 1))
end
local function id_of(t) return string.format('%d-%d', math.floor(t / 1000), t % 1000) end
local function split(r)  -- a hash record "<id> <value>": id, value
  local sp = string.find(r, ' ', 1, true)
  return string.sub(r, 1, sp - 1), string.sub(r, sp + 1)
end
local function short_raw(s, n)  -- the `n` records of hash `s` as stored, oldest first, and
  local fields = {}               -- their fields
  if n == 0 then return {}, fields end
  for i = 1, n do fields[i] = i end
  return redis.call('HMGET', s, unpack(fields)), fields
end
local function short_all(s, n)  -- the same records split: {id, value} each
  local raw, fields = short_raw(s, n)
  local out = {}
  for i, r in ipairs(raw) do out[i] = {split(r)} end
  return out, fields
end
local function tl_top(m, s, field)
  local n = redis.call('HLEN', s)  -- a chat is never both: most are short
  if n > 0 then
    local id, value = split(redis.call('HGET', s, n))
    return id, value, field, false, n
  end
  local top = redis.call('XREVRANGE', m, '+', '-', 'COUNT', 1)
  if top[1] then return top[1][1], top[1][2][2], top[1][2][1], true, 0 end
  return nil, nil, nil, redis.call('EXISTS', m) == 1, 0
end
local function tl_append(m, s, long, short_max, n, id, field, value)
  if long then
    redis.call('XADD', m, id, field, value)
    return
  end
  -- at short_max the records move into the stream; with short forms off (0) at once, so
  -- that a hash written before they were turned off moves too
  if n + 1 < short_max then
    redis.call('HSET', s, n + 1, id .. ' ' .. value)
    return
  end
  local all, fields = short_all(s, n)
  if n > 0 then redis.call('HDEL', s, unpack(fields)) end  -- (a hash emptied is deleted)
  for _, r in ipairs(all) do redis.call('XADD', m, r[1], field, r[2]) end
  redis.call('XADD', m, id, field, value)
end
local function bound(b)  -- '-', '+', an ID, or '(' and an ID: exclusive (as a start only)
  if b == '-' then return -1 end
  if b == '+' then return math.huge end
  if string.sub(b, 1, 1) == '(' then return us(string.sub(b, 2)) + 1 end
  return us(b)
end
local function rec_us(r)  -- a hash record's send time (µs), and where its value starts
  local dash = string.find(r, '-', 1, true)
  local sp = string.find(r, ' ', dash, true)
  return tonumber(string.sub(r, 1, dash - 1)) * 1000 + tonumber(string.sub(r, dash + 1, sp - 1)),
    sp + 1
end
local function short_get(s, i, got)  -- record i, each record read once (got: by field)
  local r = got[i]
  if not r then
    r = redis.call('HGET', s, i)
    got[i] = r
  end
  return r
end
local function short_time(s, i, got) return rec_us(short_get(s, i, got)) end  -- its send time
local function short_after(s, t, a, b, got)  -- the first of records a..b sent after t
  b = b + 1                                   -- (b + 1: none), by bisection
  while a < b do
    local mid = math.floor((a + b) / 2)
    if short_time(s, mid, got) <= t then
      a = mid + 1
    else
      b = mid
    end
  end
  return a
end
-- the record sent at st: its field, the record and its head "<id> " (nil: none), the newest
-- first (a sync reads new messages); got (optional): the records read, by field
local function short_field(s, n, st, got)
  local head = string.format('%d-%d ', math.floor(st / 1000), st % 1000)
  local r = got and got[n] or redis.call('HGET', s, n)
  if got then got[n] = r end
  if string.sub(r, 1, #head) == head then return n, r, head end
  if rec_us(r) < st then return nil end
  got = got or {[n] = r}
  local i = short_after(s, st - 1, 1, n - 1, got)
  r = short_get(s, i, got)
  if string.sub(r, 1, #head) == head then return i, r, head end
  return nil
end
local function short_fill(s, a, b, got)  -- records a..b into got (one HMGET of those missing)
  local want = {}
  for i = a, b do
    if not got[i] then want[#want + 1] = i end
  end
  if not want[1] then return end
  for j, r in ipairs(redis.call('HMGET', s, unpack(want))) do got[want[j]] = r end
end
local function tl_at(m, s, st, memo)  -- memo (optional): a chat's hash length (.n) and the
  local n = memo and memo.n           -- records read (by field), kept across its reads
  if not n then
    n = redis.call('HLEN', s)
    if memo then memo.n = n end
  end
  if n == 0 then
    local id = id_of(st)
    local row = redis.call('XRANGE', m, id, id, 'COUNT', 1)[1]
    return row and row[2][2]
  end
  local i, r, head = short_field(s, n, st, memo)
  if not i then return nil end
  return string.sub(r, #head + 1)
end
local function tl_range(m, s, field, from, to, count, reverse)
  local n = redis.call('HLEN', s)
  if n == 0 then
    if reverse then return redis.call('XREVRANGE', m, from, to, 'COUNT', count) end
    return redis.call('XRANGE', m, from, to, 'COUNT', count)
  end
  local lo, hi = bound(from), bound(to)
  if reverse then lo, hi = bound(to), bound(from) end
  local got, first, last = {}, 1, n  -- records first..last are in the range
  if lo > 0 then first = short_after(s, lo - 1, 1, n, got) end
  if hi < math.huge then last = short_after(s, hi, first, n, got) - 1 end
  local a, b, i, step = first, math.min(last, first + count - 1), first, 1
  if reverse then a, b, i, step = math.max(first, last - count + 1), last, last, -1 end
  short_fill(s, a, b, got)  -- (only the page's records are read and split)
  local rows = {}
  while i >= a and i <= b do
    local id, value = split(got[i])
    rows[#rows + 1] = {id, {field, value}}
    i = i + step
  end
  return rows
end
local function tl_after(m, s, after, upto, count)
  local rows, n = {}, redis.call('HLEN', s)
  if n == 0 then
    for _, e in ipairs(redis.call('XRANGE', m, '(' .. id_of(after), id_of(upto), 'COUNT', count)) do
      rows[#rows + 1] = {us(e[1]), e[2][2]}
    end
    return rows
  end
  local got = {}
  local first = short_after(s, after, 1, n, got)
  local last = math.min(n, first + count - 1)
  short_fill(s, first, last, got)
  for i = first, last do
    local r = got[i]
    local st, at = rec_us(r)
    if st > upto then break end
    rows[#rows + 1] = {st, string.sub(r, at)}
  end
  return rows
end
