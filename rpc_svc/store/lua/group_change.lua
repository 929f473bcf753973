-- uses: remembered, timeline, members, groups, feed, changes
-- An edit or a recall of a group's message. KEYS: stream, short hash, changes, the erasures
-- under way, owner, members, the big flag, the change log; on one Redis also the big groups'
-- activity (sequence, groups, times, change counts). ARGV: 'e' or 'r', who asks, the
-- message's send time, the new text (an edit), the window (µs), the group, '1' with an
-- acting user, the group's change channel, the idempotency keys' lifetime (µs). Answer
-- {1, at, waits, newest, fan-out, members...} where waits is '1' when the text waits in the
-- stream for ERASE_STEP, newest the send time of the group's newest message, fan-out ''
-- (one Redis: done here), 's' (a small group on a cluster: each of the members' feeds next)
-- or 'b' (a big group on a cluster: its activity next; then the change log's length);
-- {0, at} (a recall
-- of a recalled message: nothing changes; on a cluster within the lifetime after the recall
-- {0, at, '0', newest, fan-out, ...} as above: a retry runs the second step again, which
-- each member's feed takes once, unless every member had it: RECALL_DONE); or
-- {-1}, {-2} (not a member), {-7} (no message there), {-8} (neither its sender nor, for a
-- recall, the owner), {-9} (the sender past the window), {-10} (an edit of a recalled
-- message). The owner may recall any message at any time. A small group's members get the
-- change in their sync feeds (after the group's messages up to its newest: those accepted
-- before the change); a big group's goes in its change log (a record each: "E" or "X", the
-- send time, ':' and the newest message's send time, which a member's sync needs to give the
-- change after exactly those messages) and its activity, where its members' syncs find it.
-- Bound:
-- O(members) for a small group, O(1) for a big one, plus a short hash's records.
local mine = redis.call('HGET', KEYS[6], ARGV[2])
local no = refused(mine, KEYS[5], ARGV[7] ~= '1')
if no then return {no} end
local kind, st, group = ARGV[1], tonumber(ARGV[3]), ARGV[6]
local value = tl_at(KEYS[1], KEYS[2], st)  -- (its text as sent)
if not value then return {-7} end
local sender = string.match(value, '^%d+:([^:]*):')
local owner = redis.call('GET', KEYS[5])
local cur = change_at(KEYS[3], st)
local was, at = nil, 0
if cur then was, at = change_state(cur) end
local by_owner = kind == 'r' and ARGV[2] == owner
if sender ~= ARGV[2] and not by_owner then return {-8} end
local again = kind == 'r' and was == 'r'
if again and (KEYS[9] or now_us() - at >= tonumber(ARGV[9]) or recall_done(cur)) then
  return {0, string.format('%d', at)}
end
if was == 'r' and not again then return {-10} end
local window = tonumber(ARGV[5])
if not again and not by_owner and window > 0 and now_us() - st > window then return {-9} end
local top = tl_top(KEYS[1], KEYS[2], 'g')
local newest = top and us(top) or st
if again then
  local out = {0, string.format('%d', at), '0', string.format('%d', newest)}
  if redis.call('EXISTS', KEYS[7]) == 1 then
    out[5], out[6] = 'b', string.format('%d', redis.call('LLEN', KEYS[8]))
    return out
  end
  out[5] = 's'
  for _, m in ipairs(redis.call('HKEYS', KEYS[6])) do out[#out + 1] = m end
  return out
end
local now, waits = apply_change(KEYS[3], KEYS[2], KEYS[4], kind, st, at, ARGV[4])
local code = kind == 'e' and 'E' or 'X'
local out = {1, string.format('%d', now), waits, string.format('%d', newest)}
if redis.call('EXISTS', KEYS[7]) == 1 then
  local record = string.format('%s%d:%d', code, st, newest)
  local count = redis.call('RPUSH', KEYS[8], record)
  redis.call('SPUBLISH', ARGV[8], string.format('%d', count))
  if not KEYS[9] then
    out[5], out[6] = 'b', string.format('%d', count)
    return out
  end
  note_change(KEYS[9], KEYS[10], KEYS[12], group, count)
  out[5] = ''
  return out
end
local names = redis.call('HKEYS', KEYS[6])
if KEYS[9] then
  for _, m in ipairs(names) do
    local reads, feed, wake = key(m, 'read'), key(m, 'feed'), key(m, 'sw')
    if redis.call('HEXISTS', reads, '+' .. group) == 1 then
      feed_move(reads, feed, wake, group, newest, -1)
      feed_push(feed, wake, rec(code, st, group))
    end
  end
  out[5] = ''
  return out
end
out[5] = 's'
for _, m in ipairs(names) do out[#out + 1] = m end
return out
