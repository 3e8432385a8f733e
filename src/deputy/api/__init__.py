"""HTTP only: parse, call one service function, shape the response. No SQL here."""

from __future__ import annotations

from fastapi import APIRouter

from deputy.api import (
    admin,
    artifacts,
    automations,
    block_catalog,
    block_documents,
    block_schemas,
    block_types,
    collections,
    concurrency_limits,
    deployments,
    events,
    flow_runs,
    flows,
    logs,
    set_state,
    task_runs,
    variables,
    work_pools,
)

#: Routes are matched in this order, one by one, so the hot paths come first: the few admin
#: probes, deployments (create_flow_run), set_state, flow runs, work pools (the worker poll).
ROUTERS: list[APIRouter] = [
    admin.router,
    deployments.router,
    set_state.router,
    flow_runs.router,
    work_pools.router,
    concurrency_limits.router,
    concurrency_limits.v1_router,
    flow_runs.states_router,
    flows.router,
    variables.router,
    work_pools.work_queues_router,
    logs.router,
    events.router,
    task_runs.router,
    task_runs.states_router,
    artifacts.router,
    automations.router,
    block_types.router,
    block_catalog.router,
    block_schemas.router,
    block_schemas.capabilities_router,
    block_documents.router,
    block_documents.type_documents_router,
    collections.router,
]
