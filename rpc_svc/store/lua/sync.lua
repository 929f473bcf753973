-- uses: remembered, timeline, members, feed, changes
-- A page of a user's sync feed (store.md, "Sync"). KEYS: the user's sync feed, read
-- positions, groups; on one Redis also the big groups' sequence, groups, times, change
-- counts. ARGV: the user, the token's epoch ('' for none: from now), its position (the
-- records read), its place in the next record (the last send time, or change, given of a
-- range; 0: none), the most events, the epoch of a feed made now, the records a feed keeps,
-- its idle lifetime (ms), the user's sync channel, '1' to list the user's groups with their
-- positions (a wait follows), '1' on one Redis (every key is here: the big groups are
-- caught up and the messages read in this script); on a cluster then the big groups'
-- sequence seen; the token's check ('' for none: the record it read last, as rec_check
-- prints it); then quadruples: for a feed to make, each group the user is a member of, its
-- newest send time, its change log's length and ''; else each big group with activity
-- since, its last send time, its change log's length and the newest send times its change
-- log's records name from the feed's change position on (feed_catch_up, log_newest).
-- Answers {'reset'} (no feed, or another epoch, or records gone: a token too old), {'lost'}
-- (a token past the feed's end, or whose last record is not the one there: a store that
-- lost its newest records), {'make'} / {'seen', sequence, the user's groups} (a cluster: the
-- backend learns what the script needs and calls again), or {'ok', epoch, position, place,
-- more, n, the check of the new position (on a cluster '': the backend makes it from the
-- records), then n events, then the listed groups (3 values each:
-- group, its message position, its change position)}: on one Redis an event is 5 values
-- (kind, name, number, its message's value as it is now (nil: none, or gone), its change
-- mark: '', 'e<at>' or 'r<at>'), on a cluster the records as stored (kind, name, number,
-- start).
-- A feed is made from now: each of the user's groups at its newest message and change, the
-- big groups' sequence as seen (and its 'reset' never says "from now"). Before a page, the
-- user's big groups with activity since its last sync get their messages and changes as
-- range records, in the order the group accepted them (feed_catch_up).
-- Bound: the events of the page (each record 1 at least, a range read up to what is left)
-- and the one record before them that the token's check names, a made feed's groups, the
-- catch-up's min(big groups active since, the user's groups), the listing's groups (at most
-- IM_USER_MAX_GROUPS each), the big groups' change log records since the feed's position.
local feed, reads, groups = KEYS[1], KEYS[2], KEYS[3]
local here = ARGV[11] == '1'
local function quadruples_from(i)  -- ARGV's from i: name, number, number, text
  local out = {}
  for j = i, #ARGV, 4 do
    out[#out + 1] = {ARGV[j], tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2]), ARGV[j + 3]}
  end
  return out
end
local function rec_check(r)  -- a record's kind and number: which record a token read last
  return string.format('%s%d', string.sub(r, 1, 1), struct.unpack('>I7', r, 2))
end
local head = redis.call('LINDEX', feed, 0)
if not head then
  if ARGV[2] ~= '' then return {'reset'} end
  local seq, at
  if here then
    seq, at = redis.call('GET', KEYS[4]) or '0', {}
    for _, g in ipairs(redis.call('SMEMBERS', groups)) do
      if redis.call('HEXISTS', key(g, 'mem'), ARGV[1]) == 1 then
        local id = tl_top(key(g, 'm'), key(g, 's'), 'g')
        at[#at + 1] = {g, id and us(id) or 0, redis.call('LLEN', key(g, 'cl'))}
      end
    end
  elseif ARGV[12] == '' then
    return {'make'}
  else
    seq, at = ARGV[12], quadruples_from(14)
  end
  for _, g in ipairs(redis.call('SMEMBERS', groups)) do
    redis.call('HDEL', reads, '+' .. g, '~' .. g)
  end
  for _, p in ipairs(at) do
    redis.call('HSET', reads, '+' .. p[1], string.format('%d', p[2]),
      '~' .. p[1], string.format('%d', p[3]))
  end
  redis.call('HSET', reads, ':sync', seq)
  redis.call('RPUSH', feed, ARGV[6] .. ':0:' .. ARGV[7])
  redis.call('PEXPIRE', feed, ARGV[8])
  return {'ok', ARGV[6], '0', '0', 0, 0, ''}
end
local epoch, trimmed = string.match(head, '^(%x+):(%d+):')
if redis.call('PTTL', feed) < tonumber(ARGV[8]) / 2 then redis.call('PEXPIRE', feed, ARGV[8]) end
local length = redis.call('LLEN', feed)
local function total() return tonumber(trimmed) + length - 1 end
if ARGV[2] == '' then
  local check = length > 1 and rec_check(redis.call('LINDEX', feed, -1)) or ''
  return {'ok', epoch, string.format('%d', total()), '0', 0, 0, check}
end
if ARGV[2] ~= epoch then return {'reset'} end
local p, place, check = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[13]
local q = place > 0 and p + 1 or p  -- the record the token read last (in part: a place)
if q > total() then return {'lost'} end
if p < tonumber(trimmed) then return {'reset'} end
-- the big groups' messages and changes since the user's last sync, each as a range
local mine = redis.call('SCARD', groups)
if mine > 0 then
  local wake, moved = ARGV[9], false
  local function move(g, t, c, log)
    moved = true
    feed_catch_up(reads, feed, wake, g, t, c, log)
  end
  local seen = tonumber(redis.call('HGET', reads, ':sync') or '0')
  if here then
    local top = tonumber(redis.call('GET', KEYS[4]) or '0')
    if top > seen then
      local since = '(' .. string.format('%d', seen)
      local function moved(g)
        move(g, tonumber(redis.call('HGET', KEYS[6], g)), tonumber(redis.call('HGET', KEYS[7], g)),
          key(g, 'cl'))
      end
      if redis.call('ZCOUNT', KEYS[5], since, top) <= mine then
        for _, g in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], since, top)) do
          if redis.call('SISMEMBER', groups, g) == 1 then moved(g) end
        end
      else
        for _, g in ipairs(redis.call('SMEMBERS', groups)) do
          local s = redis.call('ZSCORE', KEYS[5], g)
          if s and tonumber(s) > seen then moved(g) end
        end
      end
      redis.call('HSET', reads, ':sync', string.format('%d', top))
    end
  elseif ARGV[12] == '' then
    return {'seen', string.format('%d', seen), mine}
  else
    for _, m in ipairs(quadruples_from(14)) do
      if redis.call('SISMEMBER', groups, m[1]) == 1 then move(m[1], m[2], m[3], log_newest(m[4])) end
    end
    if tonumber(ARGV[12]) > seen then redis.call('HSET', reads, ':sync', ARGV[12]) end
  end
  if moved then  -- (records appended, the oldest maybe trimmed)
    head, length = redis.call('LINDEX', feed, 0), redis.call('LLEN', feed)
    epoch, trimmed = string.match(head, '^(%x+):(%d+):')
    if p < tonumber(trimmed) then return {'reset'} end
  end
end
-- the page, after the record the token read last when it is still kept (`skip`: 1 when
-- that record is read first, before the page's, 0 when it is the page's first or gone)
local limit, n, pos, last = tonumber(ARGV[5]), 0, p, 0
local from = p - tonumber(trimmed) + 1
local skip = (check ~= '' and q == p and p > tonumber(trimmed)) and 1 or 0
local recs = redis.call('LRANGE', feed, from - skip, from + limit - 1)
if check ~= '' and q > tonumber(trimmed) and rec_check(recs[1]) ~= check then
  return {'lost'}  -- (another record where the token read: the store lost what it saw)
end
local out, o = {'ok', epoch, '', '', 0, 0, ''}, 7  -- (the page's place, counts, check: below)
local FIRST, SECOND = {a = 1, A = 1, c = 1, e = 1, x = 1}, {b = 1, B = 1, d = 1, f = 1, y = 1}
local function chat_of(kind, ref)
  if FIRST[kind] then return ARGV[1] .. ':' .. ref end
  if SECOND[kind] then return ref .. ':' .. ARGV[1] end
  return ref
end
local function add(kind, ref, number, value, mark)
  out[o + 1], out[o + 2], out[o + 3] = kind, ref, number  -- (an integer: exact below 2^53)
  out[o + 4], out[o + 5], o = value, mark, o + 5
  n = n + 1
end
local heads, changed = {}, {}  -- each chat's key head, and whether it has changes: once a page
local function head_of(chat)  -- the chat's key head, and whether the page named it before
  local h = heads[chat]
  if h then return h, true end
  h = key_head(chat)
  heads[chat], changed[h] = h, redis.call('EXISTS', h .. 'x') == 1
  return h, false
end
-- what the page read of a chat's hash, kept from the chat's second message on, for at most
-- MEMO_CHATS chats (64 hashes of 31 records of 4 KB: 8 MB)
local memos, kept, MEMO_CHATS = {}, 0, 64
local function current(h, st, value)  -- a stored value as it is now: value, change mark
  if not changed[h] then return value, '' end
  return shown(h .. 'x', st, value)
end
local function message(chat, st)  -- the message at st as it is now: value, mark (false: none)
  local h, again = head_of(chat)
  local memo
  if again then
    memo = memos[h]
    if not memo and kept < MEMO_CHATS then
      memo, kept = {}, kept + 1
      memos[h] = memo
    end
  end
  local stored = tl_at(h .. 'm', h .. 's', st, memo)
  if not stored then return false, '' end
  return current(h, st, stored)
end
local full = false
local SINGLE = {c = 1, d = 1, s = 1, j = 1, l = 1, x = 1, y = 1, X = 1}  -- no message to read
for i = 1 + skip, #recs do
  local r = recs[i]
  if n == limit then full = true break end
  local kind, num, start, ref = rec_read(r)
  if i == 1 and place > 0 then start = place end
  local chat = chat_of(kind, ref)
  if not here then
    out[o + 1], out[o + 2] = kind, ref
    out[o + 3], out[o + 4], o = string.format('%d', num), string.format('%d', start), o + 4
    n, pos = n + 1, pos + 1
  elseif kind == 'k' then  -- a big group's changes: its change log's records start+1..num
    local upto = math.min(num, start + limit - n)
    local logged = redis.call('LRANGE', key(chat, 'cl'), start, upto - 1)
    for j, c in ipairs(logged) do
      local st = tonumber(string.match(c, '^%a(%d+)'))
      if string.sub(c, 1, 1) == 'E' then
        add('E', ref, st, message(chat, st))
      else
        add('X', ref, st, '', '')
      end
      last = start + j
    end
    if start + #logged < num then full = true break end  -- (the page is full)
    pos, last = pos + 1, 0
  elseif REC_RANGE[kind] then
    local h = head_of(chat)
    for _, row in ipairs(tl_after(h .. 'm', h .. 's', start, num, limit - n + 1)) do
      if n == limit then full = true break end
      last = row[1]
      add(kind, ref, last, current(h, last, row[2]))
    end
    if full then break end
    pos, last = pos + 1, 0
  else
    if SINGLE[kind] then
      add(kind, ref, num, '', '')
    else
      add(kind, ref, num, message(chat, num))
    end
    pos = pos + 1
  end
end
local more = (full or pos < total()) and 1 or 0
out[3], out[4], out[5], out[6] = string.format('%d', pos), string.format('%d', last), more, n
local now = last > 0 and pos + 1 or pos  -- the record read last now
if now == q then
  out[7] = check
elseif here then  -- (a cluster's backend finds it in the records it reads)
  out[7] = rec_check(recs[skip + now - p])
end
if ARGV[10] == '1' then
  for _, g in ipairs(redis.call('SMEMBERS', groups)) do
    local f, c = unpack(redis.call('HMGET', reads, '+' .. g, '~' .. g))
    if f and (not here or redis.call('EXISTS', key(g, 'big')) == 1) then
      out[o + 1], out[o + 2], out[o + 3], o = g, f, c or '0', o + 3
    end
  end
end
return out
