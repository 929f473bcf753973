-- uses: remembered, timeline, feed, changes
-- An edit or a recall of a 1:1 chat's message. KEYS: stream, short hash, changes, the
-- erasures under way; on one Redis also each member's inbox and sync feed. ARGV: 'e' (edit)
-- or 'r' (recall), the role digit of who asks, the message's send time, the new text (an
-- edit), the window (µs: older messages refuse), the chat, the idempotency keys' lifetime
-- (µs), then each member's sync channel. Answer {1, edited or recalled at, '1' when the text
-- waits in the stream for ERASE_STEP, the send time of the chat's newest message},
-- {0, recalled at} (a recall of a recalled message: nothing changes; on a cluster within
-- the lifetime after the recall {0, at, '0', newest}: a retry runs the second step again,
-- which each member's feed takes once), or {-7} (no message
-- there), {-8} (not its sender), {-9} (past the window), {-10} (an edit of a recalled
-- message). The change goes in the changes set (an edit's time strictly after the message's
-- last edit), and in each member's sync feed after the chat's messages up to its newest
-- (those accepted before the change come before it: on a cluster a send's late step finds
-- its message covered). Bound: O(1), plus a
-- short hash's records (at most IM_SHORT_CHAT_MESSAGES) to blank a recalled text.
local kind, st = ARGV[1], tonumber(ARGV[3])
local value = tl_at(KEYS[1], KEYS[2], st)  -- (its text as sent)
if not value then return {-7} end
local cur = change_at(KEYS[3], st)
local was, at = nil, 0
if cur then was, at = change_state(cur) end
if string.sub(value, 1, 1) ~= ARGV[2] then return {-8} end
if kind == 'r' and was == 'r' then
  if #KEYS > 4 or now_us() - at >= tonumber(ARGV[7]) then return {0, string.format('%d', at)} end
  local top = tl_top(KEYS[1], KEYS[2], 't')
  return {0, string.format('%d', at), '0', string.format('%d', top and us(top) or st)}
end
if was == 'r' then return {-10} end
if tonumber(ARGV[5]) > 0 and now_us() - st > tonumber(ARGV[5]) then return {-9} end
local now, waits = apply_change(KEYS[3], KEYS[2], KEYS[4], kind, st, at, ARGV[4])
local top = tl_top(KEYS[1], KEYS[2], 't')
local newest = top and us(top) or st
local done = {1, string.format('%d', now), waits, string.format('%d', newest)}
if #KEYS == 4 then return done end
local a, b = string.match(ARGV[6], '^([^:]+):(.+)$')
for i = 5, #KEYS, 2 do
  local first = i == 5
  local peer, wake = first and b or a, ARGV[8 + (i - 5) / 2]
  note_pair(KEYS[i], KEYS[i + 1], wake, ARGV[6], peer, first, newest, -1)
  local code = kind == 'e' and (first and 'e' or 'f') or (first and 'x' or 'y')
  feed_push(KEYS[i + 1], wake, rec(code, st, peer))
end
return done
