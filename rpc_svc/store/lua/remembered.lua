-- Helpers of Redis's clock and of keys remembered for a lifetime (idempotency keys, the
-- recalls a feed got): now_us: Redis's clock in µs; seen: the time a key got within its
-- lifetime (nil for none, or no key); remember: record one, and drop up to 8 expired ones,
-- so that a write never does work proportional to the keys of a day before, and the set
-- still shrinks faster than it grows.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function seen(key, idem, now, ttl)
  if idem == '' then return nil end
  local prev = redis.call('ZSCORE', key, idem)
  if prev and tonumber(prev) > now - ttl then return tonumber(prev) end
  return nil
end
local function remember(key, idem, now, ttl, st)
  if idem == '' then return end
  local old = redis.call('ZRANGEBYSCORE', key, '-inf', now - ttl, 'LIMIT', 0, 8)
  if old[1] then redis.call('ZREM', key, unpack(old)) end
  redis.call('ZADD', key, st, idem)
  redis.call('PEXPIRE', key, math.floor(ttl / 1000))
end
