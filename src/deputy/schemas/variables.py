"""Variable wire models, with Prefect 3.9.1's name rules and value size limit.

The validation messages are part of the API contract: clients and the UI show them as is.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from deputy.schemas.core import Offset
from deputy.schemas.filters import FilterBody, VariableFilter, VariableSort

MAX_VARIABLE_NAME_LENGTH = 255
#: Longest value allowed, measured as the UTF-8 bytes of its compact JSON.
MAX_VARIABLE_VALUE_LENGTH = 5000

# ``$`` (not ``\Z``) on purpose: Prefect's rule lets one trailing newline through, and a name
# it accepts must be accepted here too.
_NAME_CHARACTERS = re.compile(r"^[a-z0-9_-]*$")


def _check_name(name: str) -> str:
    """Lowercase letters, digits, dashes and underscores; the empty name is allowed."""
    if _NAME_CHARACTERS.match(name) is None:
        raise ValueError(
            "Variable name must only contain lowercase letters, numbers, and dashes or underscores."
        )
    return name


def _check_value(value: Any) -> Any:
    """A value must serialise to JSON (so no integer beyond 64 bits) within the size limit."""
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:
        raise ValueError("Variable value must be serializable to JSON") from None
    if value is not None and len(encoded) > MAX_VARIABLE_VALUE_LENGTH:
        raise ValueError(f"Variable value must be less than {MAX_VARIABLE_VALUE_LENGTH} characters")
    return value


# The length limit comes after the character check, as in Prefect: a long name with bad
# characters reports the characters, and a long valid one reports "too_long" (not
# "string_too_long"), because pydantic applies a constraint placed after a validator late.
VariableName = Annotated[
    str,
    AfterValidator(_check_name),
    Field(
        max_length=MAX_VARIABLE_NAME_LENGTH,
        description="The name of the variable",
        examples=["my_variable"],
    ),
]

#: Any JSON value; the scalars are strict so ``true`` stays a bool and ``1`` stays an int.
VariableValue = Annotated[
    StrictStr | StrictInt | StrictBool | StrictFloat | dict[str, Any] | list[Any] | None,
    BeforeValidator(_check_value),
]


class VariableCreate(BaseModel):
    """Data used to create a variable."""

    model_config = ConfigDict(extra="forbid")

    name: VariableName
    value: VariableValue = Field(description="The value of the variable", examples=["my-value"])
    tags: list[str] = Field(
        default_factory=list,
        description="A list of variable tags",
        examples=[["tag-1", "tag-2"]],
    )


class VariableUpdate(BaseModel):
    """Data used to update a variable; only the keys sent are written."""

    model_config = ConfigDict(extra="forbid")

    name: VariableName | None = None
    value: VariableValue = Field(
        default=None, description="The value of the variable", examples=["my-value"]
    )
    tags: list[str] | None = Field(
        default=None, description="A list of variable tags", examples=[["tag-1", "tag-2"]]
    )


class Variable(BaseModel):
    """A variable as answered (documentation only: routes return ``variable_to_wire``)."""

    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    name: str = Field(
        max_length=MAX_VARIABLE_NAME_LENGTH,
        description="The name of the variable",
        examples=["my-variable"],
    )
    value: VariableValue = Field(description="The value of the variable", examples=["my-value"])
    tags: list[str] = Field(
        default_factory=list,
        description="A list of variable tags",
        examples=[["tag-1", "tag-2"]],
    )


class VariableFilterBody(FilterBody):
    """Body of ``POST /variables/filter``; unknown top-level keys are ignored, as Prefect."""

    offset: Offset = 0
    limit: int | None = Field(default=None, description="Defaults to the server's page size.")
    variables: VariableFilter | None = None
    sort: VariableSort = VariableSort.NAME_ASC


class VariableCountBody(FilterBody):
    """Body of ``POST /variables/count``."""

    variables: VariableFilter | None = None


def variable_to_wire(row: Any) -> dict[str, Any]:
    """A ``variable`` row as the JSON object Prefect answers."""
    return {
        "id": row.id,
        "created": row.created,
        "updated": row.updated,
        "name": row.name,
        "value": row.value,
        "tags": row.tags,
    }
