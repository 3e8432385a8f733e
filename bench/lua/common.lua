-- Shared by every scenario: loadgen.py prepends it to the scenario's script.
-- Counts responses by status, stops a thread after `max` responses (the count bound; wrk's
-- -d is the time bound), times the run with CLOCK_MONOTONIC, and prints one line
-- "BENCH_RESULT {json}" from done(). Arguments after wrk's `--` are key=value pairs.
local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]])
local timespec = ffi.new("bench_timespec")
local CLOCK_MONOTONIC = 1

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) * 1e-9
end

json_headers = { ["Content-Type"] = "application/json" }

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function init(args)
  opts = {}
  for _, arg in ipairs(args) do
    local key, value = arg:match("^([%w_]+)=(.*)$")
    opts[key] = value
  end
  max_responses = tonumber(opts.max)
  statuses = {}
  responses = 0
  ops = 0 -- operations completed (a lifecycle is one operation of four requests)
  rejected = 0 -- 2xx answers that were not the expected outcome
  started = now()
  finished = started
  scenario_init()
end

function response(status, headers, body)
  finished = now()
  responses = responses + 1
  statuses[status] = (statuses[status] or 0) + 1
  if on_response then
    on_response(status, body)
  end
  if responses >= max_responses then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local totals, first, last = {}, math.huge, 0
  local all_ops, all_rejected, all_responses = 0, 0, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      totals[status] = (totals[status] or 0) + count
    end
    first = math.min(first, thread:get("started"))
    last = math.max(last, thread:get("finished"))
    all_ops = all_ops + thread:get("ops")
    all_rejected = all_rejected + thread:get("rejected")
    all_responses = all_responses + thread:get("responses")
  end
  local parts = {}
  for status, count in pairs(totals) do
    table.insert(parts, string.format('"%d": %d', status, count))
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"elapsed": %.6f, "responses": %d, "ops": %d, "rejected": %d, '
      .. '"statuses": {%s}, "socket_errors": {"connect": %d, "read": %d, "write": %d, '
      .. '"timeout": %d}, "latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    math.max(last - first, 1e-6), all_responses, all_ops, all_rejected,
    table.concat(parts, ", "), errors.connect, errors.read, errors.write, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max
  ))
end
