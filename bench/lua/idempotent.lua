-- create_flow_run where every second request replays one of the idempotency keys seeded
-- beforehand (replay-0 .. replay-N-1, so the run surely exists) and the others use fresh keys.
function scenario_init()
  path = opts.api .. "/deployments/" .. opts.deployment .. "/create_flow_run"
  replay_keys = tonumber(opts.replay_keys)
  n = 0
end

function request()
  n = n + 1
  local key
  if n % 2 == 0 then
    key = string.format("replay-%d", (n / 2 + thread_id) % replay_keys)
  else
    key = string.format("%s-%d-%d", opts.nonce, thread_id, n)
  end
  local body = string.format('{"parameters": {"x": %d}, "idempotency_key": "%s"}', n, key)
  return wrk.format("POST", path, json_headers, body)
end
