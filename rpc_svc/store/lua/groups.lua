-- Helpers of the group scripts. count_of: the message count of a group entry's value
-- ("<messages so far>:<sender>:<text>"). refused: the refusal for a caller whose members-hash
-- value is `mine` (false: not a member): -2, or -1 for a group that does not exist when no
-- acting user is set (`open`: authentication off; with one, a non-member learns the same -2
-- of a group that exists and one that does not).
local function count_of(value) return tonumber(string.match(value, '^(%d+):')) end
local function refused(mine, owner_key, open)
  if mine then return nil end
  if open and redis.call('EXISTS', owner_key) == 0 then return -1 end
  return -2
end
