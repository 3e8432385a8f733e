"""set_state's answer: Prefect's OrchestrationResult."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from deputy.schemas.core import State


class StateAcceptDetails(BaseModel):
    type: Literal["accept_details"] = "accept_details"


class StateRejectDetails(BaseModel):
    type: Literal["reject_details"] = "reject_details"
    reason: str | None = None


class StateAbortDetails(BaseModel):
    type: Literal["abort_details"] = "abort_details"
    reason: str | None = None


class StateWaitDetails(BaseModel):
    type: Literal["wait_details"] = "wait_details"
    delay_seconds: int
    reason: str | None = None


class OrchestrationResult(BaseModel):
    state: State | None
    status: Literal["ACCEPT", "REJECT", "ABORT", "WAIT"]
    details: StateAcceptDetails | StateWaitDetails | StateRejectDetails | StateAbortDetails
