-- A worker's poll: POST /work_pools/{name}/get_scheduled_flow_runs, the body Prefect's worker
-- sends (no queue names, no limit: the server's default page of 200 runs).
function scenario_init()
  local path = opts.api .. "/work_pools/" .. opts.pool .. "/get_scheduled_flow_runs"
  local body = string.format('{"scheduled_before": "%s"}', opts.before)
  poll = wrk.format("POST", path, json_headers, body)
end

function request()
  return poll
end
