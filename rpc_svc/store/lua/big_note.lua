-- uses: members
-- KEYS: the big groups' sequence, groups, times. ARGV: a big group, its message's send time.
-- The second step of a big group's send on a cluster. Bound: O(log big groups).
note_big(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]))
return 1
