-- Helpers of a member's side of its groups, and of big groups' activity (see store.md).
-- key: a key named in a script that was not given it (one Redis only); key_head: the same
-- without its suffix (a name's keys made at once). may_join: whether a user (its groups set)
-- may be in `group`: it is already, or is in fewer than `most`. mark_forward: a read
-- position moved forward only (MARK_READ's rule). joined / left: a member's side on
-- joining (the group in its groups, and with a message its inbox at the newest and its read
-- position there) and on leaving (all of it gone). note_big: a big group's message;
-- note_change: its edit or recall (the change log's length). catch_up: a user's big groups
-- with messages since its last inbox read moved to their last message in its inbox.
local function key_head(name)  -- "im:{<name>}:", as keys.py makes a name's keys
  if string.find(name, '[%%{}]') then
    name = string.gsub(string.gsub(string.gsub(name, '%%', '%%25'), '{', '%%7B'), '}', '%%7D')
  end
  return 'im:{' .. name .. '}:'
end
local function key(name, suffix) return key_head(name) .. suffix end
local function may_join(groups, group, most)
  return redis.call('SISMEMBER', groups, group) == 1 or redis.call('SCARD', groups) < most
end
local function mark_forward(reads, chat, value)
  local cur = redis.call('HGET', reads, chat)
  local new = tonumber(string.match(value, '^%d+'))
  if cur and tonumber(string.match(cur, '^%d+')) >= new then return cur end
  if new == 0 then return cur or value end
  redis.call('HSET', reads, chat, value)
  return value
end
local function joined(groups, inbox, reads, group, newest, count)
  redis.call('SADD', groups, group)
  if newest > 0 then
    redis.call('ZADD', inbox, 'GT', newest, group)
    mark_forward(reads, group, string.format('%d:%d:0', newest, count))
  end
end
local function left(groups, inbox, reads, group)
  redis.call('SREM', groups, group)
  redis.call('ZREM', inbox, group)
  redis.call('HDEL', reads, group)
end
local function note_big(seq, act, at, group, st)
  redis.call('ZADD', act, redis.call('INCR', seq), group)
  local cur = redis.call('HGET', at, group)
  if not cur or tonumber(cur) < st then
    redis.call('HSET', at, group, string.format('%d', st))
  end
end
local function note_change(seq, act, cc, group, count)
  redis.call('ZADD', act, redis.call('INCR', seq), group)
  local cur = redis.call('HGET', cc, group)
  if not cur or tonumber(cur) < count then
    redis.call('HSET', cc, group, string.format('%d', count))
  end
end
local function catch_up(inbox, reads, groups, seq, act, at)
  local mine = redis.call('SCARD', groups)
  if mine == 0 then return end  -- (a user in no group keeps no mark)
  local seen = tonumber(redis.call('HGET', reads, ':big') or '0')
  local top = tonumber(redis.call('GET', seq) or '0')
  if top <= seen then return end
  local since = '(' .. string.format('%d', seen)
  local function move(g)
    local t = redis.call('HGET', at, g)
    if t then redis.call('ZADD', inbox, 'GT', t, g) end
  end
  if redis.call('ZCOUNT', act, since, top) <= mine then
    for _, g in ipairs(redis.call('ZRANGEBYSCORE', act, since, top)) do
      if redis.call('SISMEMBER', groups, g) == 1 then move(g) end
    end
  else
    for _, g in ipairs(redis.call('SMEMBERS', groups)) do
      local s = redis.call('ZSCORE', act, g)
      if s and tonumber(s) > seen then move(g) end
    end
  end
  redis.call('HSET', reads, ':big', string.format('%d', top))
end
