-- uses: remembered, timeline
-- A chat's (or group's) entries sent from one time to another (µs, both included), at most a
-- count, oldest first, as XRANGE answers them: how a cluster's sync reads the messages its
-- feed's records name (store/sync_steps.py), a short chat's hash by bisection and only the
-- entries answered, not all its records. KEYS: the stream, the short hash. ARGV: from, to
-- (µs), the most.
-- Bound: the entries answered, plus O(log records) of a short hash to find the first.
local from, to = id_of(tonumber(ARGV[1])), id_of(tonumber(ARGV[2]))
return tl_range(KEYS[1], KEYS[2], '', from, to, tonumber(ARGV[3]), false)
