-- Helpers of edits and recalls (store.md, "Edit and recall"). A chat's (or group's) changes
-- are a sorted set `im:{<chat>}:x`: score the message's send time, member "<send time>:e<edited
-- at>:<text>" (its text now) or "<send time>:r<recalled at>:" (recalled: the text is nowhere;
-- a '.' after it once every member had it, RECALL_DONE).
-- change_at: the member for a send time (nil: none). change_state: 'e' or 'r' and the time of
-- a member; recall_done: whether a recall's member says every member had it.
-- blank: a stored value without its text. erase_short: blank a short chat's record in
-- place (found by bisection; HSET replaces the bytes), or answer false for a message in the
-- stream (its text goes when the stream is rewritten: ERASE_STEP). apply_change: store an
-- edit or a recall at the store's clock, past the message's last change at `at` (and, for a
-- recall, blank or note its text): the change's time, and '1' when the text waits in the
-- stream. shown: a stored value as it is now (an edit's text, or none for a recall) and the
-- change's mark ('' for none, 'e<at>', 'r<at>').
local function change_at(x, st)
  return redis.call('ZRANGEBYSCORE', x, st, st, 'LIMIT', 0, 1)[1]
end
local function change_state(member)
  local kind, at = string.match(member, '^%d+:(%a)(%d+):')
  return kind, tonumber(at)
end
local function recall_done(member)  -- a recall every member had (RECALL_DONE: a '.' where
  return string.sub(member, -1) == '.'  -- an edit keeps its text)
end
local function set_change(x, st, member)
  redis.call('ZREMRANGEBYSCORE', x, st, st)
  redis.call('ZADD', x, st, member)
end
local function blank(value)  -- "<role><n0>:<n1>:<text>" or "<count>:<sender>:<text>"
  local head = string.match(value, '^([^:]*:[^:]*:)')
  return head
end
local function erase_short(s, st)
  local n = redis.call('HLEN', s)
  if n == 0 then return false end
  local i, r, head = short_field(s, n, st)
  if not i then return false end
  redis.call('HSET', s, i, head .. blank(string.sub(r, #head + 1)))
  return true
end
local function apply_change(x, s, er, kind, st, at, text)  -- the time and 'waits' flag
  local now = now_us()
  if now <= at then now = at + 1 end
  if kind == 'e' then
    set_change(x, st, string.format('%d:e%d:', st, now) .. text)
    return now, '0'
  end
  set_change(x, st, string.format('%d:r%d:', st, now))
  if erase_short(s, st) then return now, '0' end
  redis.call('SADD', er, string.format('%d', st))
  return now, '1'
end
local function shown(x, st, value)
  local cur = change_at(x, st)
  if not cur then return value, '' end
  local kind, at = change_state(cur)
  local head = blank(value)
  if kind == 'r' then return head, 'r' .. string.format('%d', at) end
  return head .. string.match(cur, '^%d+:e%d+:(.*)$'), 'e' .. string.format('%d', at)
end
