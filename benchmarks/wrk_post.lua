-- wrk script: POST the JSON body in $BENCH_BODY; print one JSON line of results at the end.
-- With $BENCH_UNIQUE set (e.g. "bench-50"), every request replaces that text by a fresh
-- variant, so each call is a patient the service has not seen (no warm caches).
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

local unique = os.getenv("BENCH_UNIQUE")
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

if unique and unique ~= "" then
  -- Split the body at every occurrence of the id once; each request joins the
  -- pieces with a fresh id.  (A gsub over the whole body per request made wrk,
  -- which shares the two cores with the server, a noticeable load of its own.)
  local parts, start = {}, 1
  while true do
    local i, j = wrk.body:find(unique, start, true)
    if not i then break end
    parts[#parts + 1] = wrk.body:sub(start, i - 1)
    start = j + 1
  end
  parts[#parts + 1] = wrk.body:sub(start)
  local n = 0
  function request()
    n = n + 1
    local body = table.concat(parts, unique .. "u" .. tostring(tid or 0) .. "n" .. n)
    return wrk.format(nil, nil, nil, body)
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"errors_status":%d,"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end
