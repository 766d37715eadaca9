-- wrk script of bench/run_load.py: GET /v1/users/{id}/recommendations for random users.
-- Arguments (after --): key, users file (one id per line), k, diversity, seed.
-- Prints one JSON line with the latency percentiles (microseconds) and the error counts.

local users = {}
local key, k, diversity
local threads = {}
items, ok = 0, 0 -- per thread (each wrk thread has its own Lua state)

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  key, k, diversity = args[1], args[3], args[4]
  for line in io.lines(args[2]) do
    if #line > 0 then users[#users + 1] = line end
  end
  math.randomseed(tonumber(args[5]) or 0)
end

function request()
  local user = users[math.random(#users)]
  local path = "/v1/users/" .. user .. "/recommendations?k=" .. k .. "&diversity=" .. diversity
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. key })
end

function response(status, headers, body)
  if status == 200 then
    local _, n = string.gsub(body, '"item_id"', "")
    items, ok = items + n, ok + 1
  end
end

function done(summary, latency, requests)
  local all_items, all_ok = 0, 0
  for _, thread in ipairs(threads) do
    all_items, all_ok = all_items + thread:get("items"), all_ok + thread:get("ok")
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "ok": %d, "items": %d, "duration_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, ' ..
    '"max_us": %d}\n',
    summary.requests, all_ok, all_items, summary.duration, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max))
end
