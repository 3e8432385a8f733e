-- GET /api/health: the web stack's own limit (the "floor" the other scenarios are compared to).
function scenario_init()
  health = wrk.format("GET", opts.api .. "/health")
end

function request()
  return health
end
