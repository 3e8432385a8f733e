"""Log wire models: what ``POST /logs/`` takes, what ``/logs/filter`` and ``/logs/out`` answer.

Field for field with Prefect 3.9.1's ``LogCreate``, ``Log``, ``LogFilter`` and ``LogSort``.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from pydantic import BaseModel, ConfigDict, Field

from deputy.schemas.core import DateTime, Offset
from deputy.schemas.filters import FilterBody, LimitField, _Combined, _Strict


class LogCreate(BaseModel):
    """One log line as the client's API log handler sends it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The logger name.")
    level: int = Field(description="The log level.")
    message: str = Field(description="The log message.")
    timestamp: DateTime = Field(description="The log timestamp.")
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None


class Log(BaseModel):
    """A stored log line, as answered."""

    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    name: str
    level: int
    message: str
    timestamp: dt.datetime
    flow_run_id: uuid.UUID | None = None
    task_run_id: uuid.UUID | None = None


class LogFilterLevel(_Strict):
    ge_: int | None = None
    le_: int | None = None


class LogFilterTimestamp(_Strict):
    before_: DateTime | None = None
    after_: DateTime | None = None


class LogFilterFlowRunId(_Strict):
    any_: list[uuid.UUID] | None = None


class LogFilterTaskRunId(_Strict):
    any_: list[uuid.UUID] | None = None
    is_null_: bool | None = None


class TextSearch(_Strict):
    """Prefect's text search: words are ORed, ``-word``/``!word`` excluded, ``+word`` required,
    ``"quoted phrases"`` kept whole; case-insensitive substring matching."""

    query: str = Field(max_length=200)


class LogFilter(_Combined):
    level: LogFilterLevel | None = None
    timestamp: LogFilterTimestamp | None = None
    flow_run_id: LogFilterFlowRunId | None = None
    task_run_id: LogFilterTaskRunId | None = None
    text: TextSearch | None = None


class LogSort(enum.StrEnum):
    TIMESTAMP_ASC = "TIMESTAMP_ASC"
    TIMESTAMP_DESC = "TIMESTAMP_DESC"


class LogFilterBody(FilterBody):
    """The body of ``POST /logs/filter``."""

    offset: Offset = 0
    logs: LogFilter | None = None
    sort: LogSort = LogSort.TIMESTAMP_ASC
    limit: int | None = LimitField
