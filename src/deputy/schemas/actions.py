"""Automation actions as clients send them: every action Prefect 3.9.1's server accepts.

Field for field with Prefect's server actions, with the same defaults when dumped, the same
checks and the same error types, locations and messages. Actions are told apart the way
Prefect tells them apart, without a discriminator: each kind is tried in Prefect's order
(``ActionTypes``), so an unknown ``type`` lists one error per kind, and an object without a
``type`` is "do nothing" unless its keys fit another kind better, as in Prefect.

The actions that act on a deployment, work pool, work queue or automation take
``source``: ``"selected"`` (the default) needs the object's id, ``"inferred"`` refuses one
(the object is read from the triggering event). Templates (notification subject and body,
webhook payload, run-deployment parameters) are checked by ``deputy.automations.templates``.

deputy refuses a ``schedule_after`` beyond ten years and a few template mistakes Prefect only
finds when the action runs: see "Where deputy is stricter than Prefect" in
``deputy.schemas.automations``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Annotated, Any, Literal, Self, get_args

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from deputy.automations.templates import check_parameters, check_template
from deputy.schemas.core import StateType
from deputy.schemas.triggers import MAX_DURATION, too_long

Source = Literal["selected", "inferred"]


def _non_negative(value: dt.timedelta) -> dt.timedelta:
    if value < dt.timedelta(0):
        raise ValueError("schedule_after must be non-negative")
    return value


def _within_ten_years(value: dt.timedelta) -> dt.timedelta:
    if value > MAX_DURATION:
        raise ValueError(too_long("schedule_after", value))
    return value


#: A delay: seconds or an ISO 8601 duration, from 0 to ten years.
Delay = Annotated[
    dt.timedelta,
    AfterValidator(_non_negative),
    AfterValidator(_within_ten_years),
    WithJsonSchema(
        {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "format": "duration"}]},
        mode="validation",
    ),
    WithJsonSchema({"type": "number", "minimum": 0}, mode="serialization"),
]


def _check_source(source: str, target_id: uuid.UUID | None, field: str) -> None:
    """A selected target needs its id; an inferred one must not have one."""
    if (source == "selected") != (target_id is not None):
        raise ValueError(f"{field} is " + ("not allowed" if target_id is not None else "required"))


class Action(BaseModel):
    """What all actions share: their kind. Unknown keys are ignored, as in Prefect."""

    model_config = ConfigDict(extra="ignore", ser_json_timedelta="float")

    type: str


class DoNothing(Action):
    type: Literal["do-nothing"] = "do-nothing"


# --- deployments -------------------------------------------------------------------------


class DeploymentAction(Action):
    source: Source = Field(
        default="selected",
        description="'selected': the deployment given by deployment_id; 'inferred': the "
        "deployment related to the triggering event.",
    )
    deployment_id: uuid.UUID | None = Field(default=None, description="The deployment")

    @model_validator(mode="after")
    def selected_deployment_requires_id(self) -> Self:
        # Validator names show in error locations, as in Prefect's 422s.
        _check_source(self.source, self.deployment_id, "deployment_id")
        return self


class RunDeployment(DeploymentAction):
    type: Literal["run-deployment"] = "run-deployment"
    parameters: dict[str, Any] | None = Field(
        default=None,
        description="Parameters for the run (templates allowed), or None for the "
        "deployment's defaults.",
    )
    job_variables: dict[str, Any] | None = Field(
        default=None,
        description="Job variables for the run, or None for the deployment's.",
    )
    schedule_after: Delay = Field(
        default_factory=lambda: dt.timedelta(0),
        description="How long after the trigger the run is scheduled (default: at once).",
    )

    @field_validator("parameters")
    @classmethod
    def _parameters_resolve(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_parameters(value)


class PauseDeployment(DeploymentAction):
    type: Literal["pause-deployment"] = "pause-deployment"


class ResumeDeployment(DeploymentAction):
    type: Literal["resume-deployment"] = "resume-deployment"


# --- flow runs (always the flow run of the triggering event) ------------------------------


class CancelFlowRun(Action):
    type: Literal["cancel-flow-run"] = "cancel-flow-run"


class DeleteFlowRun(Action):
    type: Literal["delete-flow-run"] = "delete-flow-run"


class ChangeFlowRunState(Action):
    type: Literal["change-flow-run-state"] = "change-flow-run-state"
    name: str | None = Field(default=None, description="The name of the new state")
    state: StateType = Field(description="The type of the new state")
    message: str | None = Field(default=None, description="A message for the state change")
    force: bool = Field(default=False, description="Whether to skip the orchestration rules")


class SuspendFlowRun(Action):
    type: Literal["suspend-flow-run"] = "suspend-flow-run"


class ResumeFlowRun(Action):
    type: Literal["resume-flow-run"] = "resume-flow-run"


# --- work queues -------------------------------------------------------------------------


class WorkQueueAction(Action):
    source: Source = Field(
        default="selected",
        description="'selected': the work queue given by work_queue_id; 'inferred': the "
        "work queue related to the triggering event.",
    )
    work_queue_id: uuid.UUID | None = Field(default=None, description="The work queue")

    @model_validator(mode="after")
    def selected_work_queue_requires_id(self) -> Self:
        _check_source(self.source, self.work_queue_id, "work_queue_id")
        return self


class PauseWorkQueue(WorkQueueAction):
    type: Literal["pause-work-queue"] = "pause-work-queue"


class ResumeWorkQueue(WorkQueueAction):
    type: Literal["resume-work-queue"] = "resume-work-queue"


# --- notifications and webhooks ----------------------------------------------------------


class SendNotification(Action):
    type: Literal["send-notification"] = "send-notification"
    block_document_id: uuid.UUID = Field(description="The notification block to send with")
    subject: str = Field(default="Prefect automated notification")
    body: str = Field(description="The text of the notification (a template)")

    @field_validator("subject", "body")
    @classmethod
    def _valid_template(cls, value: str, info: ValidationInfo) -> str:
        return check_template(value, info.field_name or "")


def _payload_text(value: Any) -> Any:
    """Older clients send the payload as JSON, not text: it becomes indented JSON text."""
    if value is None or isinstance(value, str):
        return value  # a null payload is refused by the field
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, a lone surrogate...
        return json.dumps(value, indent=2, ensure_ascii=False)


class CallWebhook(Action):
    type: Literal["call-webhook"] = "call-webhook"
    block_document_id: uuid.UUID = Field(description="The webhook block to call")
    payload: str = Field(default="", description="What to send (a template)")

    @field_validator("payload", mode="before")
    @classmethod
    def _payload_as_text(cls, value: Any) -> Any:
        return _payload_text(value)

    @field_validator("payload")
    @classmethod
    def _valid_payload(cls, value: str) -> str:
        return check_template(value, "payload") if value else value


# --- automations -------------------------------------------------------------------------


class AutomationAction(Action):
    source: Source = Field(
        default="selected",
        description="'selected': the automation given by automation_id; 'inferred': the "
        "automation related to the triggering event.",
    )
    automation_id: uuid.UUID | None = Field(default=None, description="The automation")

    @model_validator(mode="after")
    def selected_automation_requires_id(self) -> Self:
        _check_source(self.source, self.automation_id, "automation_id")
        return self


class PauseAutomation(AutomationAction):
    type: Literal["pause-automation"] = "pause-automation"


class ResumeAutomation(AutomationAction):
    type: Literal["resume-automation"] = "resume-automation"


# --- work pools --------------------------------------------------------------------------


class WorkPoolAction(Action):
    source: Source = Field(
        default="selected",
        description="'selected': the work pool given by work_pool_id; 'inferred': the "
        "work pool related to the triggering event.",
    )
    work_pool_id: uuid.UUID | None = Field(default=None, description="The work pool")

    @model_validator(mode="after")
    def selected_work_pool_requires_id(self) -> Self:
        _check_source(self.source, self.work_pool_id, "work_pool_id")
        return self


class PauseWorkPool(WorkPoolAction):
    type: Literal["pause-work-pool"] = "pause-work-pool"


class ResumeWorkPool(WorkPoolAction):
    type: Literal["resume-work-pool"] = "resume-work-pool"


#: Every action Prefect 3.9.1's open-source server accepts, in its order (which decides
#: which kind an ambiguous object becomes and the order of errors in a 422).
ActionTypes = (
    DoNothing
    | RunDeployment
    | PauseDeployment
    | ResumeDeployment
    | CancelFlowRun
    | DeleteFlowRun
    | ChangeFlowRunState
    | PauseWorkQueue
    | ResumeWorkQueue
    | SendNotification
    | CallWebhook
    | PauseAutomation
    | ResumeAutomation
    | SuspendFlowRun
    | ResumeFlowRun
    | PauseWorkPool
    | ResumeWorkPool
)

#: The ``type`` of every accepted action, in the same order.
ACTION_TYPES: tuple[str, ...] = tuple(
    kind.model_fields["type"].default for kind in get_args(ActionTypes)
)
