-- What im-rpc asks a Redis at start (store.md, "Layout versions"): the scripts print their
-- numbers with %d, which Redis's Lua prints as a C long; a build whose long has 32 bits would
-- cut every send time (µs, past 2^31). KEYS: the layout key (not read: it routes the script
-- on a cluster). Answers 2^53 printed with %d ("9007199254740992" where the store works).
return string.format('%d', 9007199254740992)
