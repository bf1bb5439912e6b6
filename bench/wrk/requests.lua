-- wrk script for every scenario: replays the requests listed in a file, tallies the answers by
-- status and X-Cache-Status/X-Cache-Layer, and prints one JSON line of results at the end.
--
--   wrk -c 32 -t 2 -d 15s -s bench/wrk/requests.lua http://127.0.0.1:8787 -- requests.tsv 2
--
-- requests.tsv: one request a line, tab-separated: the path (with its query), then headers as
-- `Name: value`. The second argument is the number of threads. Each thread starts at its own
-- offset and cycles through the list until the duration ends; with a third argument `once`, each
-- thread sends its own slice of the list, stops when all of it has been answered and prints
-- BENCH_THREAD_DONE (wrk itself waits for the duration or SIGINT, which the caller sends).

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local function split(line, sep)
  local fields = {}
  for field in string.gmatch(line, "([^" .. sep .. "]+)") do
    table.insert(fields, field)
  end
  return fields
end

function init(args)
  local file = assert(io.open(args[1], "r"), "cannot open " .. tostring(args[1]))
  prepared = {}
  for line in file:lines() do
    if line ~= "" then
      local fields = split(line, "\t")
      local headers = {}
      for i = 2, #fields do
        local name, value = string.match(fields[i], "^([^:]+):%s*(.*)$")
        headers[name] = value
      end
      table.insert(prepared, wrk.format("GET", fields[1], headers))
    end
  end
  file:close()
  -- Threads start spread over the list (args[2]: how many threads), so they do not all ask for
  -- the same page at once.
  local count = tonumber(args[2]) or 1
  local slice = math.floor(#prepared / count)
  nextIndex = (id * slice) % #prepared + 1
  once = args[3] == "once"
  if once then
    -- The last thread also takes what the division leaves over.
    toSend = (id == count - 1) and (#prepared - id * slice) or slice
    unanswered = toSend
  end
  tallies = {}
end

function request()
  local req = prepared[nextIndex]
  if once then
    -- Past its slice a thread repeats its last request until its answers are in.
    toSend = toSend - 1
    if toSend <= 0 then return req end
  end
  nextIndex = nextIndex % #prepared + 1
  return req
end

function response(status, headers, body)
  if once then
    unanswered = unanswered - 1
    if unanswered == 0 then
      io.write("BENCH_THREAD_DONE\n")
      io.flush()
      wrk.thread:stop()
    end
  end
  local cache = headers["x-cache-status"] or headers["X-Cache-Status"] or "-"
  local layer = headers["x-cache-layer"] or headers["X-Cache-Layer"] or "-"
  local key = status .. " " .. cache .. "/" .. layer
  tallies[key] = (tallies[key] or 0) + 1
end

local function json_string(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end) .. '"'
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    local t = thread:get("tallies")
    for key, count in pairs(t or {}) do
      merged[key] = (merged[key] or 0) + count
    end
  end
  local parts = {}
  for key, count in pairs(merged) do
    table.insert(parts, json_string(key) .. ":" .. count)
  end
  -- The latency histogram as wrk holds it ([microseconds, count] pairs): wrk 4 has already added
  -- its coordinated-omission samples to it, which bench/lib/wrk.mjs takes out again.
  local histogram = {}
  for i = 1, #latency do
    local value, count = latency(i)
    table.insert(histogram, string.format("[%d,%d]", value, count))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"histogram":[%s],"tallies":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(histogram, ","),
    table.concat(parts, ",")))
end
