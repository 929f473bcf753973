-- uses: members
-- KEYS: the big groups' sequence, groups, change counts. ARGV: a big group, its change log's
-- length. The second step of a big group's edit or recall on a cluster: its members' syncs
-- find the change by the group's activity. Bound: O(log big groups).
note_change(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]))
return 1
