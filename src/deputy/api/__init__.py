"""HTTP only: parse, call one service function, shape the response. No SQL here."""

from __future__ import annotations

from fastapi import APIRouter

from deputy.api import (
    admin,
    concurrency_limits,
    deployments,
    flow_runs,
    flows,
    set_state,
    variables,
    work_pools,
)

ROUTERS: list[APIRouter] = [
    admin.router,
    flows.router,
    variables.router,
    deployments.router,
    flow_runs.router,
    flow_runs.states_router,
    set_state.router,
    concurrency_limits.router,
    work_pools.router,
    work_pools.work_queues_router,
]
