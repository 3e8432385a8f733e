"""``POST /flow_runs/{id}/resume``: a paused run moved on, with the input it waited for.

The move itself is set_state's (same lock, same rules); what is added here is checking the
input against the schema the paused run stored, and storing it once the move is accepted.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from deputy.errors import ObjectNotFound
from deputy.orchestration.states import StateDraft, Status
from deputy.parameters.hydration import HydrationFailed
from deputy.parameters.schema import CircularSchema, run_input_problem
from deputy.schemas.core import StateType
from deputy.services.common import Answer
from deputy.services.flow_runs import set_state
from deputy.services.flow_runs.inputs import find_flow_run_input, store_flow_run_input
from deputy.services.parameters import hydrate

if TYPE_CHECKING:
    from deputy.db.connection import Connection


async def resume_flow_run(
    conn: Connection,
    flow_run_id: uuid.UUID,
    run_input: dict[str, Any] | None,
    *,
    client_version: tuple[int, ...] | None = None,
    now: dt.datetime,
) -> Answer:
    """Resume a paused run: RUNNING again, or SCHEDULED "Resuming" when it was suspended.

    A pause that asked for input (``run_input_keyset``) is resumed only with input that
    fits the schema the run stored; once the move is accepted, the input is stored as the
    run's answer, in the same transaction. Otherwise the answer is Prefect's REJECT, the
    run left paused.
    """
    row = await set_state.read_run_for_update(conn, flow_run_id)
    if row is None:
        raise ObjectNotFound(f"Flow run with id {flow_run_id} not found")
    current = set_state.current_state(row)
    if current is None or current.type != StateType.PAUSED:
        body = {
            "state": None,
            "status": Status.ABORT.value,
            "details": {
                "type": "abort_details",
                "reason": "Cannot resume a flow run that is not paused.",
            },
        }
        return Answer(body, created=False)
    keyset = current.details.get("run_input_keyset")
    if keyset:
        run_input, refusal = await _checked_run_input(conn, flow_run_id, keyset, run_input)
        if refusal is not None:
            body = {
                "state": set_state.current_body(row),
                "status": Status.REJECT.value,
                "details": {"type": "abort_details", "reason": refusal},
            }
            return Answer(body, created=False)
    if current.details.get("pause_reschedule"):
        draft = StateDraft.of(
            StateType.SCHEDULED, now, name="Resuming", details={"scheduled_time": now}
        )
    else:
        draft = StateDraft.of(StateType.RUNNING, now)
    result = await set_state.orchestrate(
        conn, row, draft, force=False, client_version=client_version, now=now
    )
    response_key = keyset.get("response") if keyset else None
    if response_key and run_input and result.body["status"] == Status.ACCEPT.value:
        await store_flow_run_input(
            conn, flow_run_id, response_key, orjson.dumps(run_input).decode(), now=now
        )
    return result


async def _checked_run_input(
    conn: Connection,
    flow_run_id: uuid.UUID,
    keyset: dict[str, Any],
    run_input: dict[str, Any] | None,
) -> tuple[dict[str, Any], str | None]:
    """The hydrated input, or why it cannot resume the run (Prefect's reasons)."""
    try:
        hydrated = await hydrate(conn, run_input or {}) or {}
    except HydrationFailed as failure:
        return {}, f"Error hydrating run input: {failure.reason}"
    schema_key = keyset.get("schema")
    schema_text = (
        None if schema_key is None else await find_flow_run_input(conn, flow_run_id, schema_key)
    )
    if schema_text is None:
        return hydrated, "Run input schema not found."
    try:
        schema = orjson.loads(schema_text)
    except orjson.JSONDecodeError:
        return hydrated, "Run input schema is not valid JSON."
    try:
        problem = run_input_problem(hydrated, schema)
    except CircularSchema:
        return hydrated, ("Invalid schema: Unable to validate schema with circular references.")
    return hydrated, None if problem is None else f"Reason: {problem}"
