"""Automation wire models: create, replace (PUT), enable/disable (PATCH), filter and count.

Field for field with Prefect 3.9.1: the create and replace bodies refuse unknown keys (the
trigger and actions inside them ignore theirs), ``owner_resource`` is accepted on create
only, and the answers are dumped with Prefect's defaults. Triggers are in
``deputy.schemas.triggers``, actions in ``deputy.schemas.actions``.

As in Prefect, an enabled automation is refused when its ``run-deployment`` actions would
start flow runs that fire it again: a reactive event trigger expecting
``prefect.flow-run.Scheduled``, ``.Pending``, ``.Running`` or ``.*`` with a deployment that
is inferred from the event, or selected while nothing in ``match`` and ``match_related``
narrows down which flow runs count.

Where deputy is stricter than Prefect
-------------------------------------
Prefect stores these values and then misbehaves (never fires, always fires, or fails each
time the trigger or the action runs); no client can depend on them, so deputy refuses them
with a 422 naming the field:

- an event trigger's ``threshold`` below 1 (``0``, ``-1``): Prefect stores it, and the
  trigger then fires on every event (reactive) or never (proactive);
- an event trigger's ``threshold`` above 2,147,483,647;
- ``within`` beyond ten years (315,619,200 seconds), such as 10^12 seconds, on an event,
  compound or sequence trigger: Prefect stores it and fails computing the window's end;
- a negative ``within`` on a compound or sequence trigger (Prefect refuses it only on event
  triggers);
- a compound or sequence trigger with no triggers, which can never fire;
- a ``run-deployment`` ``schedule_after`` beyond ten years;
- in ``run-deployment`` parameters, a ``jinja`` placeholder whose ``template`` is not a
  string, and any invalid placeholder inside a list: Prefect accepts both (it does not look
  into lists) and the action fails every time it runs.

Two more differences, where Prefect has no answer to keep: the sets of an event trigger
(``expect``, ``after``, ``for_each``) are answered in the order sent, not in Python's set
order; and a ``call-webhook`` payload sent as a JSON value that Prefect fails to turn into
text (with a 500: an integer beyond 64 bits, a lone surrogate) is kept as indented JSON text.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deputy.schemas.actions import ActionTypes, RunDeployment
from deputy.schemas.core import DateTime, Offset
from deputy.schemas.filters import FilterBody, Operator
from deputy.schemas.triggers import EventTrigger, Posture, TriggerTypes

#: Flow-run events every run a deployment starts goes through: a reactive trigger expecting
#: one of them and running a deployment can fire itself again and again.
LOOPING_FLOW_RUN_EVENTS = frozenset(
    {
        "prefect.flow-run.Scheduled",
        "prefect.flow-run.Pending",
        "prefect.flow-run.Running",
        "prefect.flow-run.*",
    }
)
INFERRED_LOOP = (
    "Running an inferred deployment from a flow run state change event will lead to an "
    "infinite loop of flow runs.  Please choose a specific deployment and add additional "
    "filtering labels to the match or match_related for this automation's trigger."
)
SELECTED_LOOP = (
    "Running a selected deployment from a flow run state change event may lead to an "
    "infinite loop of flow runs.  Please include additional filtering labels on either "
    "match or match_related to narrow down which flow runs will trigger this automation to "
    "exclude flow runs from the deployment you've selected."
)


def _looping_trigger(automation: AutomationCore) -> EventTrigger | None:
    """The trigger when it is one whose run-deployment actions can start a loop."""
    trigger = automation.trigger
    if not automation.enabled or not isinstance(trigger, EventTrigger):
        return None
    if trigger.posture != Posture.Reactive:
        return None
    if not any(event.startswith("prefect.flow-run.") for event in trigger.expect):
        return None
    return trigger if LOOPING_FLOW_RUN_EVENTS.intersection(trigger.expect) else None


def _matches_every_flow_run(trigger: EventTrigger) -> bool:
    """Whether nothing in ``match`` and ``match_related`` tells flow runs apart.

    An empty ``match_related`` list is Prefect's "no related filter that matches every
    flow run", so it counts as narrowing.
    """
    if not trigger.match_specification().matches_every_resource_of_kind("prefect.flow-run"):
        return False
    return any(
        related.matches_every_resource_of_kind("prefect.flow-run")
        for related in trigger.related_specifications()
    )


class AutomationCore(BaseModel):
    """What an automation is; unknown keys are ignored (the request bodies refuse them)."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(description="The name of this automation")
    description: str = Field(default="", description="A longer description of this automation")
    enabled: bool = Field(default=True, description="Whether this automation will be evaluated")
    tags: list[str] = Field(
        default_factory=list, description="A list of tags associated with this automation"
    )
    trigger: TriggerTypes = Field(
        description="Which events this automation covers and how it answers their presence "
        "or absence"
    )
    actions: list[ActionTypes] = Field(
        description="The actions to perform when this automation triggers"
    )
    actions_on_trigger: list[ActionTypes] = Field(
        default_factory=list,
        description="The actions to perform when this automation goes into a triggered state",
    )
    actions_on_resolve: list[ActionTypes] = Field(
        default_factory=list,
        description="The actions to perform when this automation goes into a resolving state",
    )

    @model_validator(mode="after")
    def prevent_run_deployment_loops(self) -> Self:
        trigger = _looping_trigger(self)
        if trigger is None:
            return self
        for action in self.actions:
            if not isinstance(action, RunDeployment):
                continue
            if action.source == "inferred":
                raise ValueError(INFERRED_LOOP)
            if _matches_every_flow_run(trigger):
                raise ValueError(SELECTED_LOOP)
        return self


class AutomationCreate(AutomationCore):
    """The body of ``POST /automations/``."""

    model_config = ConfigDict(extra="forbid")

    owner_resource: str | None = Field(
        default=None, description="The resource to which this automation belongs"
    )


class AutomationUpdate(AutomationCore):
    """The body of ``PUT /automations/{id}``: the whole automation, replaced."""

    model_config = ConfigDict(extra="forbid")


class AutomationPartialUpdate(BaseModel):
    """The body of ``PATCH /automations/{id}``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="Whether this automation will be evaluated")


class Automation(AutomationCore):
    """A stored automation, as read back (and answered)."""

    id: uuid.UUID
    created: DateTime | None = None
    updated: DateTime | None = None


# --- filters -----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AutomationFilterId(_Strict):
    any_: list[uuid.UUID] | None = Field(
        default=None, description="A list of automation ids to include"
    )


class AutomationFilterName(_Strict):
    any_: list[str] | None = Field(
        default=None,
        description="Only include automations with names that match any of these strings",
    )


class AutomationFilterCreated(_Strict):
    before_: DateTime | None = Field(
        default=None,
        description="Only include automations created before this datetime (inclusive, as "
        "in Prefect)",
    )


class AutomationFilterTags(_Strict):
    operator: Operator = Operator.and_
    all_: list[str] | None = Field(
        default=None,
        examples=[["tag-1", "tag-2"]],
        description="Automations whose tags include all of these",
    )
    any_: list[str] | None = Field(
        default=None,
        examples=[["tag-1", "tag-2"]],
        description="Automations whose tags include any of these",
    )
    is_null_: bool | None = Field(
        default=None, description="If true, only include automations without tags"
    )


class AutomationFilter(_Strict):
    operator: Operator = Operator.and_
    id: AutomationFilterId | None = None
    name: AutomationFilterName | None = None
    created: AutomationFilterCreated | None = None
    tags: AutomationFilterTags | None = None


class AutomationSort(enum.StrEnum):
    CREATED_DESC = "CREATED_DESC"
    UPDATED_DESC = "UPDATED_DESC"
    NAME_ASC = "NAME_ASC"
    NAME_DESC = "NAME_DESC"


class AutomationFilterBody(FilterBody):
    """The body of ``POST /automations/filter``."""

    sort: AutomationSort = AutomationSort.NAME_ASC
    limit: int | None = Field(default=None, description="Defaults to the server's page size.")
    offset: Offset = 0
    automations: AutomationFilter | None = None


class AutomationCountBody(FilterBody):
    """The body of ``POST /automations/count``."""

    automations: AutomationFilter | None = None


def automation_core(body: AutomationCreate | AutomationUpdate) -> dict[str, Any]:
    """What is stored from a create or replace body: the automation without its owner,
    with fresh trigger ids (the server never keeps the ids a client sends)."""
    trigger = body.trigger.model_copy(deep=True)
    trigger.reset_ids()
    stored = body.model_dump(mode="json", exclude={"owner_resource"})
    stored["trigger"] = trigger.model_dump(mode="json")
    return stored
