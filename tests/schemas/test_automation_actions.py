"""Automation actions: every kind Prefect's server accepts, its defaults, checks and errors.

Expected dumps and errors were recorded from Prefect 3.9.1's server models
(``prefect.server.events.actions``); ``test_same_as_prefect`` asks Prefect's own models (in
``.venv-prefect``) about every body of ``PARITY_BODIES``, each inside an automation as
clients send them.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from deputy.schemas.actions import (
    ACTION_TYPES,
    ActionTypes,
    CallWebhook,
    ChangeFlowRunState,
    DoNothing,
    RunDeployment,
    SendNotification,
)
from prefect_models import comparable, deputy_answer, prefect_answers

ID = "7b0a8f7e-9f1b-4c8f-8c67-8d6b5b1d2f3e"
ACTIONS: TypeAdapter[Any] = TypeAdapter(ActionTypes)

Errors = list[tuple[str, tuple[str | int, ...], str]]


def dump(body: Any) -> dict[str, Any]:
    answer: dict[str, Any] = ACTIONS.dump_python(ACTIONS.validate_python(body), mode="json")
    return answer


def errors(body: Any, model: Any = ACTIONS) -> Errors:
    validate = getattr(model, "validate_python", None) or model.model_validate
    with pytest.raises(ValidationError) as caught:
        validate(body)
    return [(e["type"], e["loc"], e["msg"]) for e in caught.value.errors()]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"type": "do-nothing"}, {"type": "do-nothing"}),
        ({"type": "do-nothing", "unknown": 1}, {"type": "do-nothing"}),
        (
            {"type": "run-deployment", "deployment_id": ID},
            {
                "type": "run-deployment",
                "source": "selected",
                "deployment_id": ID,
                "parameters": None,
                "job_variables": None,
                "schedule_after": 0.0,
            },
        ),
        (
            {
                "type": "run-deployment",
                "source": "inferred",
                "parameters": {"a": "{{ event.id }}"},
                "job_variables": {"image": "x"},
                "schedule_after": "PT1H",
            },
            {
                "type": "run-deployment",
                "source": "inferred",
                "deployment_id": None,
                "parameters": {"a": "{{ event.id }}"},
                "job_variables": {"image": "x"},
                "schedule_after": 3600.0,
            },
        ),
        (
            {"type": "pause-deployment", "deployment_id": ID},
            {"type": "pause-deployment", "source": "selected", "deployment_id": ID},
        ),
        (
            {"type": "resume-deployment", "source": "inferred"},
            {"type": "resume-deployment", "source": "inferred", "deployment_id": None},
        ),
        ({"type": "cancel-flow-run"}, {"type": "cancel-flow-run"}),
        ({"type": "delete-flow-run"}, {"type": "delete-flow-run"}),
        ({"type": "suspend-flow-run"}, {"type": "suspend-flow-run"}),
        ({"type": "resume-flow-run"}, {"type": "resume-flow-run"}),
        (
            {"type": "change-flow-run-state", "state": "COMPLETED"},
            {
                "type": "change-flow-run-state",
                "name": None,
                "state": "COMPLETED",
                "message": None,
                "force": False,
            },
        ),
        (
            {"type": "send-notification", "block_document_id": ID, "body": "{{ flow_run.name }}"},
            {
                "type": "send-notification",
                "block_document_id": ID,
                "subject": "Prefect automated notification",
                "body": "{{ flow_run.name }}",
            },
        ),
        (
            {"type": "call-webhook", "block_document_id": ID},
            {"type": "call-webhook", "block_document_id": ID, "payload": ""},
        ),
        (
            {"type": "pause-work-pool", "work_pool_id": ID},
            {"type": "pause-work-pool", "source": "selected", "work_pool_id": ID},
        ),
        (
            {"type": "resume-work-pool", "source": "inferred"},
            {"type": "resume-work-pool", "source": "inferred", "work_pool_id": None},
        ),
        (
            {"type": "pause-work-queue", "work_queue_id": ID},
            {"type": "pause-work-queue", "source": "selected", "work_queue_id": ID},
        ),
        (
            {"type": "resume-work-queue", "source": "inferred"},
            {"type": "resume-work-queue", "source": "inferred", "work_queue_id": None},
        ),
        (
            {"type": "pause-automation", "automation_id": ID},
            {"type": "pause-automation", "source": "selected", "automation_id": ID},
        ),
        (
            {"type": "resume-automation", "source": "inferred"},
            {"type": "resume-automation", "source": "inferred", "automation_id": None},
        ),
    ],
)
def test_every_action_round_trips(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert dump(body) == expected


def test_action_types_in_prefects_order() -> None:
    assert ACTION_TYPES == (
        "do-nothing",
        "run-deployment",
        "pause-deployment",
        "resume-deployment",
        "cancel-flow-run",
        "delete-flow-run",
        "change-flow-run-state",
        "pause-work-queue",
        "resume-work-queue",
        "send-notification",
        "call-webhook",
        "pause-automation",
        "resume-automation",
        "suspend-flow-run",
        "resume-flow-run",
        "pause-work-pool",
        "resume-work-pool",
    )


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({}, DoNothing),  # no type: do nothing, as in Prefect
        ({"deployment_id": ID}, RunDeployment),  # the kind its keys fit best
        ({"state": "FAILED"}, ChangeFlowRunState),
        ({"block_document_id": ID, "body": "x"}, SendNotification),
        ({"block_document_id": ID}, CallWebhook),
    ],
)
def test_an_action_without_type_is_the_kind_it_fits(body: dict[str, Any], kind: type) -> None:
    assert type(ACTIONS.validate_python(body)) is kind


TAGS = [
    "DoNothing",
    "function-after[selected_deployment_requires_id(), RunDeployment]",
    "function-after[selected_deployment_requires_id(), PauseDeployment]",
    "function-after[selected_deployment_requires_id(), ResumeDeployment]",
    "CancelFlowRun",
    "DeleteFlowRun",
    "ChangeFlowRunState",
    "function-after[selected_work_queue_requires_id(), PauseWorkQueue]",
    "function-after[selected_work_queue_requires_id(), ResumeWorkQueue]",
    "SendNotification",
    "CallWebhook",
    "function-after[selected_automation_requires_id(), PauseAutomation]",
    "function-after[selected_automation_requires_id(), ResumeAutomation]",
    "SuspendFlowRun",
    "ResumeFlowRun",
    "function-after[selected_work_pool_requires_id(), PauseWorkPool]",
    "function-after[selected_work_pool_requires_id(), ResumeWorkPool]",
]


@pytest.mark.parametrize("kind", ["declare-incident", "emit-event", "nope", "DoNothing"])
def test_unknown_action_types_are_refused(kind: str) -> None:
    found = errors({"type": kind})
    literal = [(loc, message) for kind_, loc, message in found if kind_ == "literal_error"]
    assert literal == [
        ((tag, "type"), f"Input should be '{expected}'")
        for tag, expected in zip(TAGS, ACTION_TYPES, strict=True)
    ]
    assert [(loc, message) for kind_, loc, message in found if kind_ != "literal_error"] == [
        (("ChangeFlowRunState", "state"), "Field required"),
        (("SendNotification", "block_document_id"), "Field required"),
        (("SendNotification", "body"), "Field required"),
        (("CallWebhook", "block_document_id"), "Field required"),
    ]


def test_an_action_must_be_an_object() -> None:
    assert errors([]) == [
        ("model_type", (tag,), f"Input should be a valid dictionary or instance of {name}")
        for tag in TAGS
        for name in [tag.rsplit(" ", 1)[-1].rstrip("]")]
    ]


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("run-deployment", "deployment_id"),
        ("pause-deployment", "deployment_id"),
        ("resume-deployment", "deployment_id"),
        ("pause-work-pool", "work_pool_id"),
        ("resume-work-pool", "work_pool_id"),
        ("pause-work-queue", "work_queue_id"),
        ("resume-work-queue", "work_queue_id"),
        ("pause-automation", "automation_id"),
        ("resume-automation", "automation_id"),
    ],
)
def test_source_rules(kind: str, field: str) -> None:
    tag = TAGS[ACTION_TYPES.index(kind)]

    def own(body: dict[str, Any]) -> list[tuple[str, tuple[str | int, ...], str]]:
        return [error for error in errors(body) if error[1][0] == tag]

    assert own({"type": kind}) == [("value_error", (tag,), f"Value error, {field} is required")]
    assert own({"type": kind, "source": "selected", field: None}) == [
        ("value_error", (tag,), f"Value error, {field} is required")
    ]
    assert own({"type": kind, "source": "inferred", field: ID}) == [
        ("value_error", (tag,), f"Value error, {field} is not allowed")
    ]
    assert own({"type": kind, "source": "other", field: ID}) == [
        ("literal_error", (tag, "source"), "Input should be 'selected' or 'inferred'")
    ]
    assert dump({"type": kind, field: "00000000-0000-0000-0000-000000000000"})["source"] == (
        "selected"
    )


# --- fields with rules of their own -------------------------------------------------------


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            {"a": "{{ event.id }}", "b": {"__prefect_kind": "jinja", "template": "{{ x"}},
            "Invalid parameters: \nb: Invalid jinja: unexpected end of template, expected "
            "'end of print statement'.",
        ),
        (
            {"a": {"__prefect_kind": "json", "value": "{bad"}, "c": {"__prefect_kind": "none"}},
            "Invalid parameters: \na: Invalid JSON: Expecting property name enclosed in double "
            "quotes: line 1 column 2 (char 1)\n  c: Missing 'value' key in __prefect object",
        ),
    ],
)
def test_run_deployment_parameters(parameters: dict[str, Any], message: str) -> None:
    assert errors({"deployment_id": ID, "parameters": parameters}, RunDeployment) == [
        ("value_error", ("parameters",), f"Value error, {message}")
    ]


def test_run_deployment_parameters_may_name_variables_made_later() -> None:
    parameters = {"a": {"__prefect_kind": "workspace_variable", "variable_name": "later"}}
    assert (
        dump({"type": "run-deployment", "deployment_id": ID, "parameters": parameters})[
            "parameters"
        ]
        == parameters
    )


@pytest.mark.parametrize(
    ("schedule_after", "expected"),
    [
        (
            -1,
            [
                (
                    "value_error",
                    ("schedule_after",),
                    "Value error, schedule_after must be non-negative",
                )
            ],
        ),
        (
            10**12,
            [
                (
                    "value_error",
                    ("schedule_after",),
                    "Value error, `schedule_after` must be at most 315619200 seconds (3653 days, "
                    "about ten years), not 1000000000000",
                )
            ],
        ),
    ],
)
def test_schedule_after_errors(schedule_after: Any, expected: Errors) -> None:
    body = {"deployment_id": ID, "schedule_after": schedule_after}
    assert errors(body, RunDeployment) == expected


def test_change_flow_run_state_needs_a_state_type() -> None:
    assert errors({"state": "completed"}, ChangeFlowRunState) == [
        (
            "enum",
            ("state",),
            "Input should be 'SCHEDULED', 'PENDING', 'RUNNING', 'COMPLETED', 'FAILED', "
            "'CANCELLED', 'CRASHED', 'PAUSED' or 'CANCELLING'",
        )
    ]


def test_notification_templates_are_checked() -> None:
    body = {"block_document_id": ID, "body": "hi {{ flow_run.name ", "subject": "{% if %}"}
    assert errors(body, SendNotification) == [
        (
            "value_error",
            ("subject",),
            "Value error, 'subject' is not a valid template: Expected an expression, got 'end "
            "of statement block'",
        ),
        (
            "value_error",
            ("body",),
            "Value error, 'body' is not a valid template: unexpected end of template, expected "
            "'end of print statement'.",
        ),
    ]
    assert errors({"block_document_id": ID, "body": "x", "subject": None}, SendNotification) == [
        ("string_type", ("subject",), "Input should be a valid string")
    ]


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ("{{ event.id }}", "{{ event.id }}"),
        ({"message": "hi", "n": [1, 2.5, None, True], "u": "é"}, None),
        (5, "5"),
        ([], "[]"),
        ({"big": 2**70}, '{\n  "big": 1180591620717411303424\n}'),  # Prefect: a 500
    ],
)
def test_webhook_payload_becomes_text(payload: Any, text: str | None) -> None:
    if text is None:  # as Prefect writes it: orjson, indented by 2
        text = (
            '{\n  "message": "hi",\n  "n": [\n    1,\n    2.5,\n    null,\n    true\n  ],\n'
            '  "u": "é"\n}'
        )
    assert CallWebhook.model_validate({"block_document_id": ID, "payload": payload}).payload == text


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("{{ x", "unexpected end of template, expected 'end of print statement'."),
        # checked as the text it becomes: '{\n  "m": "{{ x"\n}'
        ({"m": "{{ x"}, "unexpected char '\"' at 14"),
    ],
)
def test_webhook_payload_templates_are_checked(payload: Any, message: str) -> None:
    assert errors({"block_document_id": ID, "payload": payload}, CallWebhook) == [
        ("value_error", ("payload",), f"Value error, 'payload' is not a valid template: {message}")
    ]


def test_webhook_payload_is_text() -> None:
    assert errors({"block_document_id": ID, "payload": None}, CallWebhook) == [
        ("string_type", ("payload",), "Input should be a valid string")
    ]


# --- the same as Prefect -----------------------------------------------------------------

PARITY_BODIES: list[Any] = [
    {"type": "do-nothing", "x": 1},
    {"deployment_id": ID},
    {"state": "FAILED"},
    {"block_document_id": ID},
    {"type": "run-deployment", "source": "inferred", "deployment_id": ID},
    {"type": "run-deployment", "source": "other", "deployment_id": ID},
    {
        "type": "run-deployment",
        "deployment_id": ID,
        "parameters": {
            "a": "{{ event.id }}",
            "b": {"__prefect_kind": "jinja", "template": "{{ x"},
            "d": {"e": "{% for %}"},
            "f": "{{ x + }}",
            "g": {"__prefect_kind": "json", "value": {"x": {"__prefect_kind": "none"}}},
            "h": {"__prefect_kind": "workspace_variable", "variable_name": "v"},
            "i": {"__prefect_kind": "mystery", "value": {"__prefect_kind": "none"}},
        },
    },
    {"type": "run-deployment", "deployment_id": ID, "parameters": {"__prefect_kind": "json"}},
    {"type": "run-deployment", "deployment_id": ID, "parameters": "x"},
    {
        "type": "run-deployment",
        "deployment_id": ID,
        "job_variables": {"x": 1},
        "schedule_after": 30,
    },
    {"type": "run-deployment", "deployment_id": ID, "schedule_after": -1},
    {"type": "pause-deployment"},
    {
        "type": "change-flow-run-state",
        "state": "FAILED",
        "name": "Boom",
        "message": "m",
        "force": True,
    },
    {"type": "change-flow-run-state"},
    {"type": "send-notification", "block_document_id": "nope", "body": "hi"},
    {
        "type": "send-notification",
        "block_document_id": ID,
        "body": "hi {{ x ",
        "subject": "{% if %}",
    },
    {"type": "call-webhook", "block_document_id": ID, "payload": {"message": "hi", "n": [1.5]}},
    {"type": "call-webhook", "block_document_id": ID, "payload": {"m": "{{ x"}},
    {"type": "call-webhook", "block_document_id": ID, "payload": None},
    {"type": "resume-work-queue", "source": "inferred", "work_queue_id": ID},
    {"type": "pause-automation"},
    {"type": "pause-work-pool"},
    {"type": "declare-incident"},
    {"type": "nope"},
    {},
    [],
    None,
]


def test_same_as_prefect() -> None:
    answers = prefect_answers([("Action", body) for body in PARITY_BODIES])
    for body, theirs in zip(PARITY_BODIES, answers, strict=True):
        assert comparable(deputy_answer("Action", body)) == comparable(theirs), body
