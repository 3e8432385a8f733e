-- POST /deployments/{id}/create_flow_run with a small parameter override.
function scenario_init()
  path = opts.api .. "/deployments/" .. opts.deployment .. "/create_flow_run"
  n = 0
end

function request()
  n = n + 1
  return wrk.format("POST", path, json_headers, string.format('{"parameters": {"x": %d}}', n))
end
