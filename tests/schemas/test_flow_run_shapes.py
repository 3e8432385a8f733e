"""The flow-run wire builders follow their field lists: every key in order, every column
copied as it is, every computed value computed (see ``deputy.schemas.flow_runs.Source``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from deputy.schemas.core import DEFAULT_POLICY, EMPTY_STATE_DETAILS
from deputy.schemas.flow_runs import (
    FLOW_RUN_FIELDS,
    FLOW_RUN_RESPONSE_FIELDS,
    FlowRun,
    FlowRunResponse,
    Source,
    core_flow_run_to_wire,
    flow_run_to_wire,
)

NOW = dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC)


class Column:
    """A column's value no builder could make up: told apart by identity."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<column {self.name}>"


def a_run() -> dict[str, Any]:
    """A row with a distinct value in every column, and the ones the estimates read set."""
    keys = {*FLOW_RUN_FIELDS, *FLOW_RUN_RESPONSE_FIELDS, "state_timestamp"}
    run: dict[str, Any] = {key: Column(key) for key in keys}
    run.update(
        empirical_policy={"retries": 2},
        labels=None,
        total_run_time=1.5,
        state_type="RUNNING",
        state_timestamp=NOW - dt.timedelta(seconds=10),
        expected_start_time=NOW - dt.timedelta(seconds=30),
        start_time=NOW - dt.timedelta(seconds=10),
    )
    return run


STATE = {"id": "s", "type": "RUNNING", "name": "Running", "timestamp": NOW, "state_details": {}}


def assert_follows(fields: Mapping[str, Source], run: dict[str, Any], wire: Any) -> None:
    assert list(wire) == list(fields)
    for key, source in fields.items():
        if source is Source.COLUMN:
            assert wire[key] is run[key], key
        else:
            assert not isinstance(wire[key], Column), key
    assert wire["empirical_policy"] == {**DEFAULT_POLICY, "retries": 2}
    assert wire["labels"] == {}
    assert wire["estimated_run_time"] == 11.5
    assert wire["estimated_start_time_delta"] == 20.0
    assert wire["state"]["state_details"] == EMPTY_STATE_DETAILS


def test_the_core_flow_run_follows_its_field_list() -> None:
    run = a_run()
    assert_follows(FLOW_RUN_FIELDS, run, core_flow_run_to_wire(run, STATE, NOW))
    assert core_flow_run_to_wire(run, None, NOW)["state"] is None


def test_the_flow_run_response_follows_its_field_list() -> None:
    run = a_run()
    wire = flow_run_to_wire(run, STATE, queue_name="q", pool_id="p", pool_name="n", now=NOW)
    assert_follows(FLOW_RUN_RESPONSE_FIELDS, run, wire)
    assert (wire["work_queue_name"], wire["work_pool_id"], wire["work_pool_name"]) == (
        "q",
        "p",
        "n",
    )
    # Without a queue, the run's own queue name.
    wire = flow_run_to_wire(run, None, queue_name=None, pool_id=None, pool_name=None, now=NOW)
    assert wire["work_queue_name"] is run["work_queue_name"]


def test_the_models_have_the_same_fields() -> None:
    """The OpenAPI models describe the same keys (pydantic puts a subclass's new fields
    last, so only the core FlowRun's order matches)."""
    assert list(FlowRun.model_fields) == list(FLOW_RUN_FIELDS)
    assert set(FlowRunResponse.model_fields) == set(FLOW_RUN_RESPONSE_FIELDS)
