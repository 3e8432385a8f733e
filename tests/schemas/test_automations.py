"""Automation bodies: create, replace, enable/disable, filter, and what Prefect's client sends.

Expected dumps and errors were recorded from Prefect 3.9.1's server models; the tests marked
"the same as Prefect" ask Prefect's own models (in ``.venv-prefect``), and
``test_bodies_prefects_client_sends`` builds its bodies with Prefect's client classes
(``prefect.automations.Automation``, ``prefect.events`` triggers and actions, deployment
triggers as ``flow.serve(triggers=...)`` and ``prefect deploy`` make them).
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import uuid
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from deputy.schemas import automations as automations_module
from deputy.schemas.automations import (
    INFERRED_LOOP,
    SELECTED_LOOP,
    Automation,
    AutomationCountBody,
    AutomationCreate,
    AutomationFilter,
    AutomationFilterBody,
    AutomationPartialUpdate,
    AutomationSort,
    AutomationUpdate,
    automation_core,
)
from deputy.schemas.filters import Operator
from prefect_models import comparable, deputy_answer, prefect_answers, run_prefect

ID = "7b0a8f7e-9f1b-4c8f-8c67-8d6b5b1d2f3e"
TRIGGER = {"posture": "Reactive", "expect": ["prefect.flow-run.Completed"], "id": ID}
DO_NOTHING = [{"type": "do-nothing"}]

Errors = list[tuple[str, tuple[str | int, ...], str]]


def errors(model: type[BaseModel], body: Any) -> Errors:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    return [(e["type"], e["loc"], e["msg"]) for e in caught.value.errors()]


def test_create_defaults() -> None:
    body = {"name": "a", "trigger": TRIGGER, "actions": DO_NOTHING}
    assert AutomationCreate.model_validate(body).model_dump(mode="json") == {
        "name": "a",
        "description": "",
        "enabled": True,
        "tags": [],
        "trigger": {
            "type": "event",
            "id": ID,
            "match": {},
            "match_related": {},
            "after": [],
            "expect": ["prefect.flow-run.Completed"],
            "for_each": [],
            "posture": "Reactive",
            "threshold": 1,
            "within": 0.0,
        },
        "actions": [{"type": "do-nothing"}],
        "actions_on_trigger": [],
        "actions_on_resolve": [],
        "owner_resource": None,
    }


def test_create_and_replace_refuse_unknown_keys() -> None:
    body = {"name": "a", "trigger": TRIGGER, "actions": DO_NOTHING}
    extra = "Extra inputs are not permitted"
    assert errors(AutomationCreate, {**body, "id": ID, "created": "2020-01-01T00:00:00Z"}) == [
        ("extra_forbidden", ("id",), extra),
        ("extra_forbidden", ("created",), extra),
    ]
    # the owner is given on create only
    assert errors(AutomationUpdate, {**body, "owner_resource": "x"}) == [
        ("extra_forbidden", ("owner_resource",), extra)
    ]
    owned = AutomationCreate.model_validate({**body, "owner_resource": "prefect.deployment.x"})
    assert owned.owner_resource == "prefect.deployment.x"
    # triggers and actions ignore theirs
    trigger = {**TRIGGER, "color": "red"}
    loose = AutomationUpdate.model_validate({**body, "trigger": trigger, "actions": [{"x": 1}]})
    assert "color" not in loose.trigger.model_dump()


def test_required_fields_and_types() -> None:
    assert errors(AutomationCreate, {"trigger": TRIGGER}) == [
        ("missing", ("name",), "Field required"),
        ("missing", ("actions",), "Field required"),
    ]
    nulls = {"name": None, "description": None, "tags": None, "enabled": None}
    assert errors(AutomationCreate, {**nulls, "trigger": TRIGGER, "actions": []}) == [
        ("string_type", ("name",), "Input should be a valid string"),
        ("string_type", ("description",), "Input should be a valid string"),
        ("bool_type", ("enabled",), "Input should be a valid boolean"),
        ("list_type", ("tags",), "Input should be a valid list"),
    ]


@pytest.mark.parametrize(
    ("body", "enabled"), [({}, True), ({"enabled": False}, False), ({"enabled": "yes"}, True)]
)
def test_partial_update(body: dict[str, Any], enabled: bool) -> None:
    assert AutomationPartialUpdate.model_validate(body).model_dump() == {"enabled": enabled}


def test_partial_update_errors() -> None:
    assert errors(AutomationPartialUpdate, {"enabled": None}) == [
        ("bool_type", ("enabled",), "Input should be a valid boolean")
    ]
    assert errors(AutomationPartialUpdate, {"enabled": True, "name": "x"}) == [
        ("extra_forbidden", ("name",), "Extra inputs are not permitted")
    ]


# --- run-deployment loops ----------------------------------------------------------------

INFERRED = {"type": "run-deployment", "source": "inferred"}
SELECTED = {"type": "run-deployment", "deployment_id": ID}


def looping(expect: list[str], action: dict[str, Any], **trigger: Any) -> dict[str, Any]:
    body = {"posture": "Reactive", "expect": expect, "id": ID, **trigger}
    return {"name": "loop", "trigger": body, "actions": [action]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (looping(["prefect.flow-run.Running"], INFERRED), INFERRED_LOOP),
        (looping(["prefect.flow-run.*"], INFERRED, match={"x": "y"}), INFERRED_LOOP),
        (looping(["prefect.flow-run.Pending", "other"], SELECTED), SELECTED_LOOP),
        (
            looping(
                ["prefect.flow-run.Scheduled"],
                SELECTED,
                match={"prefect.resource.id": "prefect.flow-run.*"},
                match_related=[{}, {"a": "b"}],
            ),
            SELECTED_LOOP,
        ),
        (looping(["prefect.flow-run.Completed"], INFERRED), None),
        (looping(["prefect.flow-run.Running"], SELECTED, match={"x": "y"}), None),
        (looping(["prefect.flow-run.Running"], SELECTED, match_related=[]), None),
        (looping(["prefect.flow-run.Running"], SELECTED, match_related={"a": "b"}), None),
        (looping(["prefect.flow-run.Running"], {"type": "do-nothing"}), None),
        ({**looping(["prefect.flow-run.Running"], INFERRED), "enabled": False}, None),
        (looping(["prefect.flow-run.Running"], INFERRED, posture="Proactive"), None),
        (
            {
                **looping(["prefect.flow-run.Running"], {"type": "do-nothing"}),
                "actions_on_trigger": [INFERRED],
            },
            None,
        ),
    ],
)
def test_run_deployment_loops(body: dict[str, Any], message: str | None) -> None:
    if message is None:
        AutomationCreate.model_validate(body)
    else:
        assert errors(AutomationCreate, body) == [("value_error", (), f"Value error, {message}")]


def test_loop_matrix_the_same_as_prefect() -> None:
    expects = [
        ["prefect.flow-run.Completed"],
        ["prefect.flow-run.Running"],
        ["prefect.flow-run.*"],
        ["prefect.flow-run.Pending", "x"],
    ]
    matches: list[dict[str, Any]] = [
        {},
        {"prefect.resource.id": "prefect.flow-run.*"},
        {"prefect.resource.id": ["prefect.flow-run.*", "x"]},
        {"prefect.resource.id": "prefect.flow-run.abc"},
        {"prefect.resource.id": "prefect.flow-run.*", "x": "y"},
    ]
    relateds: list[Any] = [
        {},
        [],
        [{}, {"a": "b"}],
        {"prefect.resource.id": "prefect.flow-run.*"},
        {"prefect.resource.role": "deployment"},
    ]
    bodies = [
        looping(expect, action, match=match, match_related=related)
        for expect, action, match, related in itertools.product(
            expects, [INFERRED, SELECTED], matches, relateds
        )
    ]
    answers = prefect_answers([("AutomationCreate", body) for body in bodies])
    assert {"ok" in answer for answer in answers} == {True, False}
    for body, theirs in zip(bodies, answers, strict=True):
        assert comparable(deputy_answer("AutomationCreate", body)) == comparable(theirs), body


# --- what is stored, what is read back ---------------------------------------------------


def test_automation_core_resets_trigger_ids() -> None:
    compound = {
        "type": "compound",
        "id": ID,
        "require": "any",
        "within": None,
        "triggers": [TRIGGER],
    }
    body = AutomationCreate.model_validate(
        {"name": "a", "trigger": compound, "actions": DO_NOTHING, "owner_resource": "x"}
    )
    before = body.model_dump(mode="json")
    stored = automation_core(body)
    assert body.model_dump(mode="json") == before  # the body is left as it was
    assert "owner_resource" not in stored
    ids = {stored["trigger"]["id"], stored["trigger"]["triggers"][0]["id"]}
    assert len(ids) == 2
    assert ID not in ids
    assert list(stored) == [
        "name",
        "description",
        "enabled",
        "tags",
        "trigger",
        "actions",
        "actions_on_trigger",
        "actions_on_resolve",
    ]


def test_a_stored_automation_reads_back() -> None:
    body = AutomationCreate.model_validate({"name": "a", "trigger": TRIGGER, "actions": DO_NOTHING})
    row = {
        **automation_core(body),
        "id": ID,
        "created": "2024-01-01T00:00:00Z",
        "updated": "2024-01-02T00:00:00Z",
        "future_column": 1,
    }
    automation = Automation.model_validate(row)
    assert str(automation.id) == ID
    assert automation.created == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert automation.trigger.id == uuid.UUID(row["trigger"]["id"])


# --- filters -----------------------------------------------------------------------------


def test_filter_body_defaults_and_nulls() -> None:
    body = AutomationFilterBody.model_validate(
        {"sort": None, "limit": None, "offset": None, "automations": None, "unknown": 1}
    )
    assert (body.sort, body.limit, body.offset, body.automations) == (
        AutomationSort.NAME_ASC,
        None,
        0,
        None,
    )
    assert AutomationCountBody.model_validate({}).automations is None
    assert [sort.value for sort in AutomationSort] == [
        "CREATED_DESC",
        "UPDATED_DESC",
        "NAME_ASC",
        "NAME_DESC",
    ]


def test_filter() -> None:
    data = {
        "operator": "or_",
        "id": {"any_": [ID]},
        "name": {"any_": ["a"]},
        "created": {"before_": "2020-01-01T00:00:00"},
        "tags": {"operator": "or_", "all_": ["x"], "any_": ["y"], "is_null_": False},
    }
    parsed = AutomationFilter.model_validate(data)
    assert parsed.operator is Operator.or_
    assert parsed.created is not None
    assert parsed.created.before_ == dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    assert errors(AutomationFilter, {"x": 1}) == [
        ("extra_forbidden", ("x",), "Extra inputs are not permitted")
    ]


FILTERS: list[Any] = [
    {},
    {
        "name": {"any_": ["a"]},
        "tags": {"all_": ["x"], "any_": ["y"], "is_null_": False},
        "created": {"before_": "2020-01-01T00:00:00Z"},
        "id": {"any_": [ID]},
        "operator": "or_",
    },
    {"x": 1},
    {"tags": {"operator": "or_", "y": 1}},
    {"id": {"any_": ["x"]}},
    {"name": {"like_": "a"}},
]


def test_filters_the_same_as_prefect() -> None:
    answers = prefect_answers([("AutomationFilter", body) for body in FILTERS])
    for body, theirs in zip(FILTERS, answers, strict=True):
        assert deputy_answer("AutomationFilter", body) == theirs, body


# --- the same as Prefect -----------------------------------------------------------------

PARITY_BODIES: list[tuple[str, Any]] = [
    ("AutomationCreate", {"name": "a", "trigger": TRIGGER, "actions": DO_NOTHING, "extra": 1}),
    ("AutomationCreate", {"name": "a", "trigger": TRIGGER}),
    ("AutomationCreate", {"name": "a", "trigger": TRIGGER, "actions": []}),
    (
        "AutomationCreate",
        {
            "name": "a",
            "trigger": TRIGGER,
            "actions": DO_NOTHING,
            "owner_resource": "prefect.deployment.x",
            "actions_on_trigger": DO_NOTHING,
            "actions_on_resolve": [{"type": "cancel-flow-run"}],
            "tags": ["a", "a"],
        },
    ),
    (
        "AutomationCreate",
        {"name": "a", "trigger": {"posture": "Proactive", "within": 5}, "actions": []},
    ),
    ("AutomationCreate", {"name": "a", "trigger": TRIGGER, "actions": [{"type": "nope"}]}),
    ("AutomationCreate", {"name": "a", "trigger": TRIGGER, "actions": "x"}),
    ("AutomationCreate", "x"),
    ("AutomationCreate", []),
    ("AutomationUpdate", {"name": "a", "trigger": TRIGGER, "actions": DO_NOTHING}),
    ("AutomationUpdate", {"name": "a", "trigger": TRIGGER, "actions": [], "owner_resource": None}),
    ("AutomationPartialUpdate", {}),
    ("AutomationPartialUpdate", {"enabled": "no"}),
    ("AutomationPartialUpdate", {"enabled": 2}),
]


def test_same_as_prefect() -> None:
    answers = prefect_answers(PARITY_BODIES)
    for (model, body), theirs in zip(PARITY_BODIES, answers, strict=True):
        assert comparable(deputy_answer(model, body)) == comparable(theirs), body


_CLIENT_BODIES = """
    import json
    from datetime import timedelta
    from uuid import UUID

    from pydantic import TypeAdapter
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events import (
        CallWebhook, CancelFlowRun, ChangeFlowRunState, CompoundTrigger, DeleteFlowRun,
        DeploymentCompoundTrigger, DeploymentEventTrigger, DeploymentSequenceTrigger,
        DoNothing, EventTrigger, PauseAutomation, PauseDeployment, PauseWorkPool,
        PauseWorkQueue, Posture, ResumeAutomation, ResumeDeployment, ResumeWorkPool,
        ResumeWorkQueue, RunDeployment, SendNotification, SequenceTrigger, SuspendFlowRun,
    )
    from prefect.events.actions import ResumeFlowRun
    from prefect.events.schemas.automations import AutomationCore
    from prefect.events.schemas.deployment_triggers import DeploymentTriggerTypes

    D = UUID("7b0a8f7e-9f1b-4c8f-8c67-8d6b5b1d2f3e")
    completed = EventTrigger(
        expect={"prefect.flow-run.Completed"},
        match_related={"prefect.resource.id": "prefect.deployment.*"},
        posture="Reactive",
    )
    failed = EventTrigger(
        expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
        match={"prefect.resource.id": "prefect.flow-run.*"},
        for_each={"prefect.resource.id"},
        threshold=3,
        within=timedelta(hours=1),
        posture=Posture.Reactive,
    )
    every_action = [
        DoNothing(), RunDeployment(source="inferred"), PauseDeployment(deployment_id=D),
        RunDeployment(
            source="selected", deployment_id=D, job_variables={"image": "x"},
            parameters={"x": "{{ event.id }}", "n": {"__prefect_kind": "json", "value": "[1]"}},
            schedule_after=timedelta(seconds=30),
        ),
        ResumeDeployment(source="inferred"), CancelFlowRun(), DeleteFlowRun(), SuspendFlowRun(),
        ChangeFlowRunState(state=StateType.FAILED, name="Given up", message="m", force=True),
        ResumeFlowRun(), CallWebhook(block_document_id=D),
        CallWebhook(block_document_id=D, payload='{"run": "{{ flow_run.id }}"}'),
        SendNotification(block_document_id=D, subject="{{ flow_run.name }}", body="{{ x }}"),
        SendNotification(block_document_id=D, body="plain"),
        PauseWorkPool(work_pool_id=D), ResumeWorkPool(source="inferred"),
        PauseWorkQueue(work_queue_id=D), ResumeWorkQueue(source="inferred"),
        PauseAutomation(automation_id=D), ResumeAutomation(source="inferred"),
    ]
    automations = [
        Automation(
            name="woodchonk",
            trigger=EventTrigger(
                expect={"animal.walked"}, match={"genus": "Marmota", "species": "monax"},
                posture="Reactive", threshold=3, within=timedelta(seconds=10),
            ),
            actions=[CancelFlowRun()],
        ),
        Automation(
            name="late", description="no run in 5 minutes", tags=["ops"],
            trigger=EventTrigger(
                expect={"prefect.flow-run.Completed"}, after={"prefect.flow-run.Running"},
                match={"prefect.resource.id": "prefect.flow-run.*"},
                for_each={"prefect.resource.id"}, posture=Posture.Proactive,
                within=timedelta(minutes=5),
            ),
            actions=[SendNotification(block_document_id=D, body="late")],
            actions_on_trigger=[DoNothing()], actions_on_resolve=[DoNothing()],
        ),
        Automation(
            name="proactive", enabled=False, actions=[DoNothing()],
            trigger=EventTrigger(expect={"x"}, posture="Proactive"),
        ),
        Automation(name="all", trigger=completed, actions=every_action),
        Automation(
            name="compound", actions=[DoNothing()],
            trigger=CompoundTrigger(
                require="all", within=timedelta(hours=1), triggers=[completed, failed]
            ),
        ),
        Automation(
            name="compound-n", actions=[DoNothing()],
            trigger=CompoundTrigger(require=1, within=None, triggers=[completed, failed]),
        ),
        Automation(
            name="sequence", actions=[DoNothing()],
            trigger=SequenceTrigger(
                within=timedelta(minutes=10),
                triggers=[
                    completed, CompoundTrigger(require="any", within=None, triggers=[failed])
                ],
            ),
        ),
        Automation(
            name="related-list", actions=[DoNothing()],
            trigger=EventTrigger(
                expect={"prefect.flow-run.*"}, posture="Reactive",
                match_related=[
                    {"prefect.resource.role": "flow", "prefect.resource.name": ["a", "b"]},
                    {"prefect.resource.role": "tag", "prefect.resource.id": "prefect.tag.x"},
                ],
            ),
        ),
    ]
    bodies = []
    for automation in automations:  # as Automation.create() and .update() send them
        core = AutomationCore(**automation.model_dump(exclude={"id"}))
        bodies.append(["AutomationCreate", core.model_dump(mode="json")])
        update = AutomationCore(**automation.model_dump(exclude={"id", "owner_resource"}))
        bodies.append(["AutomationUpdate", update.model_dump(mode="json", exclude_unset=True)])
    deployment_triggers = [  # flow.serve(triggers=...), flow.deploy(triggers=...)
        DeploymentEventTrigger(
            expect={"external.resource.pinged"},
            match={"prefect.resource.id": "my.external.resource"},
            parameters={"param_1": "{{ event }}"},
        ),
        DeploymentEventTrigger(
            name="named",
            description="d",
            enabled=False,
            posture="Proactive",
            expect={"prefect.flow-run.Completed"},
            within=timedelta(minutes=2),
            job_variables={"env": {"A": "1"}},
            schedule_after=timedelta(minutes=1),
        ),
        DeploymentCompoundTrigger(
            require="any", within=timedelta(seconds=30), triggers=[completed, failed]
        ),
        DeploymentSequenceTrigger(within=None, triggers=[completed, failed]),
    ]
    for raw in [  # `triggers:` in prefect.yaml, as `prefect deploy` reads them
        {
            "enabled": True,
            "match": {"prefect.resource.id": "my.external.resource"},
            "expect": ["external.resource.pinged"],
            "parameters": {"param_1": "{{ event }}"},
        },
        {
            "type": "compound",
            "require": "all",
            "within": 60,
            "triggers": [{"type": "event", "expect": ["a"]}, {"type": "event", "expect": ["b"]}],
        },
        {"type": "sequence", "within": 60, "triggers": [{"expect": ["a"]}, {"expect": ["b"]}]},
        {
            "posture": "Proactive",
            "expect": ["prefect.flow-run.Completed"],
            "within": 600,
            "match_related": {"prefect.resource.role": "flow"},
        },
    ]:
        deployment_triggers.append(TypeAdapter(DeploymentTriggerTypes).validate_python(raw))
    for trigger in deployment_triggers:
        trigger.set_deployment_id(D)
        bodies.append(["AutomationCreate", trigger.as_automation().model_dump(mode="json")])
    print(json.dumps(bodies))
"""


def test_bodies_prefects_client_sends() -> None:
    """Each body Prefect's client builds is accepted and answered as Prefect answers it."""
    bodies = [(model, body) for model, body in run_prefect(_CLIENT_BODIES)]
    assert len(bodies) == 24
    answers = prefect_answers(bodies)
    for (model, body), theirs in zip(bodies, answers, strict=True):
        assert "ok" in theirs, body
        ours = deputy_answer(model, copy.deepcopy(body))
        assert comparable(ours) == comparable(theirs), body


# --- deputy's stricter checks ------------------------------------------------------------

STRICTER: list[tuple[str, Any, str]] = [
    ("Trigger", {"posture": "Reactive", "threshold": 0}, "`threshold` must be at least 1"),
    ("Trigger", {"posture": "Proactive", "threshold": -1}, "`threshold` must be at least 1"),
    ("Trigger", {"posture": "Reactive", "threshold": 2**31}, "`threshold` must be at most"),
    ("Trigger", {"posture": "Reactive", "within": 10**12}, "`within` must be at most"),
    (
        "Trigger",
        {"type": "sequence", "within": 10**12, "triggers": [TRIGGER]},
        "`within` must be at most",
    ),
    (
        "Trigger",
        {"type": "compound", "require": "all", "within": -5, "triggers": [TRIGGER]},
        "`within` must not be negative",
    ),
    (
        "Trigger",
        {"type": "compound", "require": "all", "within": 5, "triggers": []},
        "needs at least one trigger",
    ),
    (
        "Action",
        {"type": "run-deployment", "deployment_id": ID, "schedule_after": 10**12},
        "`schedule_after` must be at most",
    ),
    (
        "Action",
        {"type": "run-deployment", "deployment_id": ID, "parameters": {"a": ["{{ x"]}},
        "a[0]: Invalid jinja",
    ),
    (
        "Action",
        {
            "type": "run-deployment",
            "deployment_id": ID,
            "parameters": {"a": {"__prefect_kind": "jinja", "template": 5}},
        },
        "template must be a string",
    ),
]


def test_deputy_refuses_what_prefect_stores_and_fails_on() -> None:
    answers = prefect_answers([(model, body) for model, body, _ in STRICTER])
    for (model, body, message), theirs in zip(STRICTER, answers, strict=True):
        assert "ok" in theirs, body
        ours = deputy_answer(model, body)
        assert any(message in error[2] for error in ours.get("errors", [])), (body, ours)


def test_the_stricter_checks_are_documented() -> None:
    doc = automations_module.__doc__ or ""
    section = doc.split("Where deputy is stricter than Prefect", 1)[1]
    for phrase in [
        "``threshold`` below 1",
        "above 2,147,483,647",
        "beyond ten years",
        "negative ``within``",
        "no triggers",
        "``schedule_after``",
        "not a\n  string",
        "inside a list",
    ]:
        assert phrase in section, phrase
