-- wrk script: replays signed WeChat deliveries from a file written by bench/messages.py.
-- Usage: wrk -s replay.lua URL -- FILE [LIMIT]
-- Each thread takes every n-th line, so no two threads send the same delivery; LIMIT
-- (requests per thread, 0 = none) stops a thread early for the memory measurement.
-- done() prints one JSON line the bench runner reads.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  paths, bodies = {}, {}
  local file, i = args[1], 0
  limit = tonumber(args[2] or "0")
  local total = tonumber(args[3] or "1")
  for line in io.lines(file) do
    if i % total == id then
      local tab = string.find(line, "\t", 1, true)
      table.insert(paths, string.sub(line, 1, tab - 1))
      table.insert(bodies, string.sub(line, tab + 1))
    end
    i = i + 1
  end
  n, sent, wrapped, bad = 0, 0, 0, 0
  headers = {["Content-Type"] = "text/xml"}
end

function request()
  n = n + 1
  if n > #paths then
    n = 1
    wrapped = wrapped + 1
  end
  sent = sent + 1
  return wrk.format("POST", paths[n], headers, bodies[n])
end

function response(status, hdrs, body)
  if status ~= 200 then bad = bad + 1 end
  if limit > 0 and sent >= limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local wraps, sent_all, bad_all = 0, 0, 0
  for _, t in ipairs(threads) do
    wraps = wraps + t:get("wrapped")
    sent_all = sent_all + t:get("sent")
    bad_all = bad_all + t:get("bad")
  end
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non200": %d, ' ..
    '"socket_errors": %d, "wrapped": %d, "sent": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), bad_all,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    wraps, sent_all))
end
