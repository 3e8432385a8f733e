-- A run's whole life: create_flow_run, then set_state PENDING, RUNNING, COMPLETED.
-- Run with one connection per wrk thread, so a thread's responses arrive in order and the
-- next request can use the previous answer. An answer that is not 2xx + ACCEPT counts as
-- rejected (or as its status) and the thread starts over with a new run.
local STATES = { "PENDING", "RUNNING", "COMPLETED" }

function scenario_init()
  create_path = opts.api .. "/deployments/" .. opts.deployment .. "/create_flow_run"
  step = 0
  run_id = nil
  n = 0
end

function request()
  if step == 0 then
    n = n + 1
    local body = string.format('{"parameters": {"x": %d}}', n)
    return wrk.format("POST", create_path, json_headers, body)
  end
  local path = opts.api .. "/flow_runs/" .. run_id .. "/set_state"
  local body = string.format('{"state": {"type": "%s"}}', STATES[step])
  return wrk.format("POST", path, json_headers, body)
end

function on_response(status, body)
  if status >= 300 then
    step = 0
    return
  end
  if step == 0 then
    run_id = body:match('"id"%s*:%s*"([%x%-]+)"')
    if run_id then
      step = 1
    else
      rejected = rejected + 1
    end
  elseif body:match('"status"%s*:%s*"ACCEPT"') then
    if step == #STATES then
      ops = ops + 1
      step = 0
    else
      step = step + 1
    end
  else
    rejected = rejected + 1
    step = 0
  end
end
