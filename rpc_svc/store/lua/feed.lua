-- Helpers of a user's sync feed (store.md, "Sync"). A feed is a list: element 0 its header
-- "<epoch>:<records trimmed>:<records kept>", then one record per event, oldest first. It
-- exists only while its user syncs (made by the first sync, gone after IM_SYNC_IDLE_S without
-- one): every write below does nothing for a user without one. A record is a kind byte, a
-- number (7 bytes, a big-endian unsigned integer: a send time or read position in µs, or a
-- count), for a range a second one (the exclusive start), then the chat's name from the user's
-- side: the peer for a 1:1 chat (kinds a/A/c: the user is the chat's first member, b/B/d: its
-- second), the group for a group. Kinds: a/b one 1:1 message, A/B 1:1 messages after the
-- second number up to the first, c/d a read position in a 1:1 chat, e/f an edit and x/y a
-- recall of the 1:1 message at the number; g one group message, h group messages in a range, s
-- a read position in a group, E an edit and X a recall of a group's message, k a big group's
-- changes (its change log's records after the second number up to the first), j joined (the
-- number: the group's newest message then), l left (its newest then).
-- feed_push: append a record, trim to the records kept (a few more first: amortized), and
-- announce the feed's length on the user's sync channel (SPUBLISH).
-- TURNED_BIG: what a group that turns big announces on its members' sync channels.
-- note_pair / note_member: a message the send scripts (one Redis) or the send's second step
-- (a cluster) give each member of a 1:1 chat / a small group. A 1:1 chat's position in the
-- feed is the chat's score in the user's inbox (written in the same step); a group's is the
-- read-positions field "+<group>" (and "~<group>": the big group's change log read), there
-- while the user is a member and has a feed. A
-- message after the position is appended; one whose step comes late (a cluster) finds it
-- covered by a range an earlier step appended. feed_joined / feed_left / feed_move: a
-- member's side of a join and a leave, and a group's messages up to a time (a big group's,
-- found by a sync; or those a cluster's join found sent before the side was written; a
-- side written again for a member whose feed lacks some of the change log moves nothing,
-- the catch-up does it in order).
-- feed_catch_up: a big group's messages up to a time and its change log's records up to a
-- count, in the order the group accepted them: a change after the messages up to the newest
-- its record names. Its `log` is the change log's key (one Redis: read here, from the feed's
-- change position) or a table of the records' newest send times by their number (a cluster:
-- read by the backend, `log_newest` of its text); a record whose newest is missing there is
-- given after the messages before it in the feed, as a record of its own.
local REC_RANGE = {A = true, B = true, h = true, k = true}  -- kinds with a start
local TURNED_BIG = 'big'  -- on a sync channel: no feed length, so it wakes all its waiters
local function rec(kind, num, ref) return kind .. struct.pack('>I7', num) .. ref end
local function rec2(kind, num, from, ref)
  return kind .. struct.pack('>I7', num) .. struct.pack('>I7', from) .. ref
end
local function rec_read(r)  -- kind, number, start (0 for a kind without), chat name
  local kind = string.sub(r, 1, 1)
  if REC_RANGE[kind] then
    return kind, struct.unpack('>I7', r, 2), struct.unpack('>I7', r, 9), string.sub(r, 16)
  end
  return kind, struct.unpack('>I7', r, 2), 0, string.sub(r, 9)
end
local function feed_push(feed, wake, record)
  local head = redis.call('LINDEX', feed, 0)
  if not head then return end
  local n = redis.call('RPUSH', feed, record) - 1
  local epoch, trimmed, kept = string.match(head, '^(%x+):(%d+):(%d+)$')
  trimmed, kept = tonumber(trimmed), tonumber(kept)
  if n > kept + math.max(64, math.floor(kept / 16)) then
    local cut = n - kept
    redis.call('LTRIM', feed, cut + 1, -1)
    trimmed, n = trimmed + cut, kept
    redis.call('LPUSH', feed, string.format('%s:%d:%d', epoch, trimmed, kept))
  end
  redis.call('SPUBLISH', wake, string.format('%d', trimmed + n))
end
local function note_pair(inbox, feed, wake, chat, peer, first, st, prev)
  if redis.call('EXISTS', feed) == 0 then  -- (most users: no feed, the inbox alone)
    redis.call('ZADD', inbox, 'GT', st, chat)
    return
  end
  local cur = redis.call('ZSCORE', inbox, chat)
  redis.call('ZADD', inbox, 'GT', st, chat)
  cur = cur and tonumber(cur) or 0  -- (no row: none of the chat's messages noted yet)
  if cur >= st then return end
  if cur == prev then
    feed_push(feed, wake, rec(first and 'a' or 'b', st, peer))
  else
    feed_push(feed, wake, rec2(first and 'A' or 'B', st, cur, peer))
  end
end
local function feed_move(reads, feed, wake, group, st, prev)
  local f = redis.call('HGET', reads, '+' .. group)
  if not f then return end
  f = tonumber(f)
  if f >= st then return end
  redis.call('HSET', reads, '+' .. group, string.format('%d', st))
  if f == prev then
    feed_push(feed, wake, rec('g', st, group))
  else
    feed_push(feed, wake, rec2('h', st, f, group))
  end
end
local function log_newest(text)  -- "<number before the first>;<newest>,...": a table
  local from, list = string.match(text, '^(%d+);(.*)$')
  if not from then return nil end
  local out, j = {}, tonumber(from)
  for n in string.gmatch(list, '%d+') do
    j = j + 1
    out[j] = tonumber(n)
  end
  return out
end
local function feed_catch_up(reads, feed, wake, group, t, c, log)
  local f, p = unpack(redis.call('HMGET', reads, '~' .. group, '+' .. group))
  if not p then return end
  f, p = f and tonumber(f), tonumber(p)
  if c and f and c > f then
    local newest = log
    if type(log) == 'string' then  -- (bound: the records since the feed's position)
      newest = {}
      for j, r in ipairs(redis.call('LRANGE', log, f, c - 1)) do
        newest[f + j] = tonumber(string.match(r, ':(%d+)$'))
      end
    end
    local from = f
    for j = f + 1, c do
      local n = newest and newest[j]
      if n and n > p then  -- messages the group accepted before change j
        if j - 1 > from then
          feed_push(feed, wake, rec2('k', j - 1, from, group))
          from = j - 1
        end
        feed_move(reads, feed, wake, group, n, -1)
        p = n
      end
    end
    redis.call('HSET', reads, '~' .. group, string.format('%d', c))
    feed_push(feed, wake, rec2('k', c, from, group))
  end
  if t then feed_move(reads, feed, wake, group, t, -1) end
end
local function feed_joined(reads, feed, wake, group, at, newest, changes)
  if redis.call('EXISTS', feed) == 0 then return end
  if redis.call('HEXISTS', reads, '+' .. group) == 0 then
    redis.call('HSET', reads, '+' .. group, string.format('%d', at),
      '~' .. group, string.format('%d', changes))
    feed_push(feed, wake, rec('j', at, group))
  elseif changes > tonumber(redis.call('HGET', reads, '~' .. group) or '0') then
    return  -- (a member's side again, with changes the feed has not had: its catch-up gives
  end       -- them and the messages, in the order the group accepted them)
  feed_move(reads, feed, wake, group, newest, -1)
end
local function feed_left(reads, feed, wake, group, at, changes, log)
  if redis.call('HEXISTS', reads, '+' .. group) == 0 then return end
  feed_catch_up(reads, feed, wake, group, at, changes, log)
  local f = tonumber(redis.call('HGET', reads, '+' .. group))
  redis.call('HDEL', reads, '+' .. group, '~' .. group)
  feed_push(feed, wake, rec('l', math.max(at, f), group))
end
