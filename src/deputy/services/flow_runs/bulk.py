"""``POST /deployments/{id}/create_flow_run/bulk``: many runs of one deployment in one
transaction, each item under its own savepoint, so an item that fails undoes only its own
work and is answered FAILED beside the others, in order."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError

from deputy.errors import INTEGRITY_CONFLICT, DeputyError
from deputy.schemas.deployments import DeploymentFlowRunCreate
from deputy.services.common import Clock
from deputy.services.flow_runs.create import create_flow_run_for, read_deployment_for_runs

if TYPE_CHECKING:
    from deputy.db.connection import Connection

#: Most runs one request may create, as in Prefect.
MAX_BULK_RUNS = 100


async def create_flow_runs_from_deployment(
    conn: Connection,
    deployment_id: uuid.UUID,
    bodies: Sequence[DeploymentFlowRunCreate],
    *,
    created_by: dict[str, Any] | None = None,
    clock: Clock,
) -> list[dict[str, Any]]:
    """One result per item: ``CREATED`` with the run's id, or ``FAILED`` with the error.

    Unlike other services this one reads the clock, once per item on purpose: each run is
    stamped when it is created, so runs of one request keep their order by time."""
    deployment = await read_deployment_for_runs(conn, deployment_id)
    results: list[dict[str, Any]] = []
    for body in bodies:
        try:
            async with conn.begin_nested():
                answer = await create_flow_run_for(
                    conn, deployment, body, created_by=created_by, now=clock()
                )
        except DeputyError as error:
            results.append(_failure(error.message))
            continue
        except IntegrityError:
            results.append(_failure(INTEGRITY_CONFLICT))
            continue
        results.append({"flow_run_id": answer.body["id"], "status": "CREATED", "error": None})
    return results


def _failure(message: str) -> dict[str, Any]:
    return {"flow_run_id": None, "status": "FAILED", "error": message}
