-- uses: changes
-- A small group's recall whose second steps all succeeded (a cluster): every member then had
-- its record. KEYS: the group's changes set. ARGV: the message's send time. The recall's
-- member "<send time>:r<at>:" gets a '.' where an edit keeps its text ("<send time>:r<at>:."),
-- so a recall of it again runs no second step (GROUP_CHANGE): a member added since the recall
-- gets no recall of a message recalled before it joined. Answers 1 when marked. Bound: O(1).
local st = tonumber(ARGV[1])
local cur = change_at(KEYS[1], st)
if not cur or change_state(cur) ~= 'r' or recall_done(cur) then return 0 end
set_change(KEYS[1], st, cur .. '.')
return 1
