"""What every written state does to its flow run (Prefect's global policy), as pure functions.

These run on every state written, forced or not: the initial state of a new run today, every
accepted transition once set_state lands. They take plain data and return the run's new
field values; the service writes them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from deputy.schemas.core import TERMINAL_STATE_TYPES, StateType


def run_updates_for_state(
    run: dict[str, Any],
    initial_type: StateType | None,
    initial_timestamp: dt.datetime | None,
    proposed: dict[str, Any],
) -> dict[str, Any]:
    """The flow-run columns that change when ``proposed`` (a state dict) is written.

    ``run`` holds the run's current bookkeeping columns (``start_time``, ``end_time``,
    ``run_count``, ``total_run_time``, ``expected_start_time``, ``empirical_policy``).
    """
    state_type = StateType(proposed["type"])
    timestamp: dt.datetime = proposed["timestamp"]
    scheduled_time = _scheduled_time(proposed)
    updates: dict[str, Any] = {
        "state_id": proposed["id"],
        "state_type": state_type.value,
        "state_name": proposed["name"],
        "state_timestamp": timestamp,
    }
    # Start time: the first time the run enters RUNNING; a final state with no start gets one.
    if run.get("start_time") is None and (
        state_type == StateType.RUNNING or state_type in TERMINAL_STATE_TYPES
    ):
        updates["start_time"] = timestamp
    # End time: set on entering a final state, cleared when leaving it.
    if state_type in TERMINAL_STATE_TYPES:
        if run.get("end_time") is None:
            updates["end_time"] = timestamp
    elif initial_type in TERMINAL_STATE_TYPES:
        updates["end_time"] = None
    # Run time accumulates over RUNNING stretches.
    if initial_type == StateType.RUNNING and initial_timestamp is not None:
        elapsed = max((timestamp - initial_timestamp).total_seconds(), 0.0)
        updates["total_run_time"] = (run.get("total_run_time") or 0.0) + elapsed
    # Expected start: fixed by the first state (its scheduled time when SCHEDULED).
    if run.get("expected_start_time") is None:
        updates["expected_start_time"] = (
            scheduled_time if state_type == StateType.SCHEDULED and scheduled_time else timestamp
        )
    # Workers poll on this column: set entering SCHEDULED, cleared leaving it.
    if state_type == StateType.SCHEDULED:
        updates["next_scheduled_start_time"] = scheduled_time
    elif initial_type == StateType.SCHEDULED or run.get("next_scheduled_start_time") is not None:
        updates["next_scheduled_start_time"] = None
    # Each entry into RUNNING counts as a run, except a resume from a pause.
    policy = run.get("empirical_policy") or {}
    if state_type == StateType.RUNNING and not policy.get("resuming"):
        updates["run_count"] = (run.get("run_count") or 0) + 1
    if (state_type == StateType.RUNNING or state_type in TERMINAL_STATE_TYPES) and policy.get(
        "resuming"
    ):
        updates["empirical_policy"] = {**policy, "resuming": False}
    return updates


def _scheduled_time(state: dict[str, Any]) -> dt.datetime | None:
    details = state.get("state_details") or {}
    value = details.get("scheduled_time")
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    scheduled: dt.datetime | None = value
    return scheduled
