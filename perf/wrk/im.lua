-- wrk script for the IM backend:
--   wrk ... -s perf/wrk/im.lua URL -- MODE CHATS LIMIT PREFIX ACKS TOKEN [TOKENS [MEMBERS [SINCE]]]
--   MODE   ping | send | pull | gsend (to group "#<PREFIX>g<i>", i in 1..CHATS, from member
--          "<PREFIX>m<j>", j in 1..MEMBERS) | chats (the inbox of "<PREFIX>hub", LIMIT rows)
--          | inbox (the inbox of a random member of a random chat of the pool, LIMIT rows)
--          | sync (the sync of "<PREFIX>hub" from SINCE, LIMIT events: a replayed token
--          answers the same events every time) | asend (send, always as the chat's first
--          member) | edit (a random message of the ACKS file, by its sender, the chat's first
--          member: fill it with asend) | recall (the ACKS file's messages in turn, oldest
--          first: each a new recall until the file is used up) | recallnew (the same, newest
--          first)
--   CHATS  size of the chat pool: chat i is "<PREFIX>a<i>:<PREFIX>b<i>"
--   LIMIT  page size of pulls
--   PREFIX makes this run's chats its own
--   ACKS   send only: file that gets one "<chat> <send_time>" line per 200 answer; edit and
--          recall: the file of the messages to change
--   TOKEN  unique per wrk invocation
--   TOKENS file of "<user> <bearer token>" lines (perf/tokens.py): each request then
--          carries its user's token (the sender, or a member for a pull)
--   SINCE  sync only: the sync token to read from
-- Every send's text is 100 bytes and unique (token, thread, counter), so an audit can
-- tell a duplicate from two messages. done() prints one line: WRK_JSON {...}.

local threads = {}
local counter = 0
-- globals, so that done() (in wrk's main Lua state, where init() never ran) can read
-- them from a thread with thread:get()
mode, chats, limit, prefix, acks_path, token, group_members = "ping", 100, 10, "run", "", "w", 1000
since = ""
acks = {}
local json_by_user, plain_by_user = {}, {}  -- headers with each user's token
local targets = {}  -- edit, recall: {chat, send_time} of the messages to change

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1] or mode
  chats = tonumber(args[2] or chats)
  limit = tonumber(args[3] or limit)
  prefix = args[4] or prefix
  acks_path = args[5] or ""
  token = args[6] or token
  group_members = tonumber(args[8] or group_members)
  since = args[9] or since
  local tokens_path = args[7] or ""
  if tokens_path ~= "" then
    for line in io.lines(tokens_path) do
      local user, bearer = line:match("^(%S+) (%S+)$")
      if user then
        json_by_user[user] = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. bearer }
        plain_by_user[user] = { ["Authorization"] = "Bearer " .. bearer }
      end
    end
  end
  if (mode == "edit" or mode == "recall" or mode == "recallnew") and acks_path ~= "" then
    for line in io.lines(acks_path) do
      local chat, t = line:match("^(%S+) (%d+)$")
      if chat then targets[#targets + 1] = { chat, t } end
    end
  end
  math.randomseed(id * 7919 + os.time())
end

local json_headers = { ["Content-Type"] = "application/json" }

local function members()
  local i = math.random(chats)
  return prefix .. "a" .. i, prefix .. "b" .. i
end

function request()
  if mode == "send" or mode == "asend" then
    counter = counter + 1
    local a, b = members()
    local sender = (mode == "asend" or counter % 2 == 0) and a or b
    local tag = string.format("%s-t%d-%d ", token, id, counter)
    local text = tag .. string.rep("x", 100 - #tag)
    local body = '{"chat":"' .. a .. ":" .. b .. '","sender":"' .. sender .. '","text":"' .. text .. '"}'
    return wrk.format("POST", "/api/send", json_by_user[sender] or json_headers, body)
  elseif mode == "gsend" then
    counter = counter + 1
    local chat = "#" .. prefix .. "g" .. math.random(chats)
    local sender = prefix .. "m" .. math.random(group_members)
    local tag = string.format("%s-t%d-%d ", token, id, counter)
    local text = tag .. string.rep("x", 100 - #tag)
    local body = '{"chat":"' .. chat .. '","sender":"' .. sender .. '","text":"' .. text .. '"}'
    return wrk.format("POST", "/api/send", json_by_user[sender] or json_headers, body)
  elseif mode == "chats" then
    local hub = prefix .. "hub"
    return wrk.format("GET", "/api/chats?user=" .. hub .. "&limit=" .. limit, plain_by_user[hub])
  elseif mode == "inbox" then
    local a, b = members()
    local user = (math.random(2) == 1) and a or b
    return wrk.format("GET", "/api/chats?user=" .. user .. "&limit=" .. limit, plain_by_user[user])
  elseif mode == "sync" then
    local hub = prefix .. "hub"
    local path = "/api/sync?user=" .. hub .. "&since=" .. since .. "&limit=" .. limit
    return wrk.format("GET", path, plain_by_user[hub])
  elseif mode == "edit" or mode == "recall" or mode == "recallnew" then
    counter = counter + 1
    local turn = (counter * 2 + id - 1) % #targets  -- (at most 2 threads)
    local target = (mode == "edit") and targets[math.random(#targets)]
      or (mode == "recall") and targets[turn + 1] or targets[#targets - turn]
    local chat, t = target[1], target[2]
    local a = chat:match("^([^:]+):")
    if mode ~= "edit" then
      local body = '{"chat":"' .. chat .. '","user":"' .. a .. '","send_time":' .. t .. '}'
      return wrk.format("POST", "/api/recall", json_by_user[a] or json_headers, body)
    end
    local tag = string.format("%s-t%d-%d edited ", token, id, counter)
    local body = '{"chat":"' .. chat .. '","sender":"' .. a .. '","send_time":' .. t ..
      ',"text":"' .. tag .. string.rep("y", 100 - #tag) .. '"}'
    return wrk.format("POST", "/api/edit", json_by_user[a] or json_headers, body)
  elseif mode == "pull" then
    local a, b = members()
    return wrk.format("GET", "/api/pull?chat=" .. a .. ":" .. b .. "&limit=" .. limit, plain_by_user[a])
  end
  return wrk.format("GET", "/ping")
end

function response(status, headers, body)
  if (mode == "send" or mode == "gsend" or mode == "asend") and status == 200 then
    local chat, t = body:match('"chat":"([^"]*)","send_time":(%d+)')
    if chat then acks[#acks + 1] = chat .. " " .. t end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"max_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
  local first = threads[1]
  local path = first and first:get("acks_path") or ""
  local m = first and first:get("mode")
  if (m == "send" or m == "gsend" or m == "asend") and path ~= "" then
    local f = assert(io.open(path, "a"))
    for _, thread in ipairs(threads) do
      for _, line in ipairs(thread:get("acks")) do f:write(line, "\n") end
    end
    f:close()
  end
end
