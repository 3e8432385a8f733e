"""Flow-run input bodies and answers (``/flow_runs/{id}/input``), as Prefect 3.9.1's."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, Field

from deputy.schemas.core import lowercase_dashed
from deputy.schemas.filters import FilterBody

InputKey = Annotated[str, lowercase_dashed("key")]


class FlowRunInputCreate(FilterBody):
    """``POST /flow_runs/{id}/input``: ``value`` is the text of a JSON document."""

    key: InputKey = Field(description="The input key")
    value: str = Field(description="The value of the input")
    sender: str | None = Field(default=None, description="The sender of the input")


class FlowRunInputFilterBody(FilterBody):
    """``POST /flow_runs/{id}/input/filter``: the oldest inputs whose key starts so."""

    prefix: str = Field(description="The input key prefix")
    limit: int = Field(default=1, description="The maximum number of results to return")
    exclude_keys: list[str] = Field(
        default_factory=list, description="Exclude inputs with these keys"
    )


class FlowRunInput(BaseModel):
    """An input as ``/input/filter`` answers it (documentation only)."""

    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    flow_run_id: uuid.UUID
    key: str
    value: str
    sender: str | None = None


def flow_run_input_to_wire(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "created": row.created,
        "updated": row.updated,
        "flow_run_id": row.flow_run_id,
        "key": row.key,
        "value": row.value,
        "sender": row.sender,
    }
