-- POST /flow_runs/filter: 200 runs of the seeded deployment, newest expected start first.
function scenario_init()
  local body = string.format(
    '{"flow_runs": {"deployment_id": {"any_": ["%s"]}}, '
      .. '"sort": "EXPECTED_START_TIME_DESC", "limit": 200}',
    opts.deployment
  )
  filter = wrk.format("POST", opts.api .. "/flow_runs/filter", json_headers, body)
end

function request()
  return filter
end
