"""Block document wire models: create and update bodies with Prefect 3.9.1's name rules, the
document filters, and :func:`block_document_to_wire`.

The validation messages are part of the API contract: clients and the UI show them as is.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from deputy.schemas.blocks import (
    NAME_PATTERN,
    BlockSchema,
    BlockSchemaFilter,
    BlockType,
    BlockTypeFilter,
    block_schema_to_wire,
    block_type_to_wire,
)
from deputy.schemas.core import Offset, lowercase_dashed
from deputy.schemas.filters import FilterBody, _Combined, _Strict

BlockDocumentName = Annotated[
    str, Field(pattern=NAME_PATTERN), lowercase_dashed("Block document name")
]

NAME_REQUIRED = "Names must be provided for block documents."


def _name_given_unless_anonymous(values: Any) -> Any:
    """Prefect's rule, checked before the fields: a named document needs a (non-empty) name."""
    if isinstance(values, dict) and not values.get("is_anonymous") and not values.get("name"):
        raise ValueError(NAME_REQUIRED)
    return values


class BlockDocumentCreate(BaseModel):
    """Data used to create a block document."""

    model_config = ConfigDict(extra="forbid")

    name: BlockDocumentName | None = Field(
        default=None,
        description="The block document's name. Not required for anonymous block documents.",
    )
    data: dict[str, Any] = Field(default_factory=dict, description="The block document's data")
    block_schema_id: uuid.UUID = Field(description="A block schema ID")
    block_type_id: uuid.UUID = Field(description="A block type ID")
    is_anonymous: bool = Field(
        default=False,
        description=(
            "Whether the block is anonymous (anonymous blocks are usually created by"
            " Prefect automatically)"
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _check_name(cls, values: Any) -> Any:
        return _name_given_unless_anonymous(values)


class BlockDocumentUpdate(BaseModel):
    """Data used to update a block document: ``merge_existing_data`` (the default) merges the
    keys sent into the stored data; false replaces the data (and an unset ``data`` is
    ``{}``)."""

    model_config = ConfigDict(extra="forbid")

    block_schema_id: uuid.UUID | None = Field(default=None, description="A block schema ID")
    data: dict[str, Any] = Field(default_factory=dict, description="The block document's data")
    merge_existing_data: bool = True


class BlockDocument(BaseModel):
    """A block document as answered (documentation only: routes return
    :func:`block_document_to_wire`)."""

    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    name: Annotated[str, Field(pattern=NAME_PATTERN)] | None = Field(
        default=None,
        description="The block document's name. Not required for anonymous block documents.",
    )
    data: dict[str, Any] = Field(default_factory=dict, description="The block document's data")
    block_schema_id: uuid.UUID = Field(description="A block schema ID")
    block_schema: BlockSchema | None = Field(
        default=None, description="The associated block schema"
    )
    block_type_id: uuid.UUID = Field(description="A block type ID")
    block_type_name: str | None = Field(
        default=None, description="The associated block type's name"
    )
    block_type: BlockType | None = Field(default=None, description="The associated block type")
    block_document_references: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Record of the block document's references"
    )
    is_anonymous: bool = Field(
        default=False,
        description=(
            "Whether the block is anonymous (anonymous blocks are usually created by"
            " Prefect automatically)"
        ),
    )


# --- filters -------------------------------------------------------------------------------


class BlockDocumentFilterIsAnonymous(_Strict):
    eq_: bool | None = None


class BlockDocumentFilterBlockTypeId(_Strict):
    any_: list[uuid.UUID] | None = None


class BlockDocumentFilterId(_Strict):
    any_: list[uuid.UUID] | None = None


class BlockDocumentFilterName(_Strict):
    any_: list[str] | None = None
    like_: str | None = None


class BlockDocumentFilter(_Combined):
    """Anonymous documents are left out unless ``is_anonymous`` says otherwise (``null``:
    no condition), as in Prefect."""

    id: BlockDocumentFilterId | None = None
    is_anonymous: BlockDocumentFilterIsAnonymous | None = Field(
        default_factory=lambda: BlockDocumentFilterIsAnonymous(eq_=False)
    )
    block_type_id: BlockDocumentFilterBlockTypeId | None = None
    name: BlockDocumentFilterName | None = None


class BlockDocumentSort(enum.StrEnum):
    NAME_DESC = "NAME_DESC"
    NAME_ASC = "NAME_ASC"
    BLOCK_TYPE_AND_NAME_ASC = "BLOCK_TYPE_AND_NAME_ASC"


class BlockDocumentCountBody(FilterBody):
    """Body of ``POST /block_documents/count``."""

    block_documents: BlockDocumentFilter | None = None
    block_types: BlockTypeFilter | None = None
    block_schemas: BlockSchemaFilter | None = None


class BlockDocumentFilterBody(BlockDocumentCountBody):
    """Body of ``POST /block_documents/filter``."""

    include_secrets: bool = Field(
        default=False, description="Whether to include sensitive values in the block document."
    )
    sort: BlockDocumentSort = BlockDocumentSort.NAME_ASC
    offset: Offset = 0
    limit: int | None = Field(default=None, description="Defaults to the server's page size.")


# --- answers -------------------------------------------------------------------------------


def block_document_to_wire(
    row: Any,
    *,
    data: dict[str, Any],
    references: dict[str, Any],
    block_type: Any,
    block_schema: Any = None,
    schema_type: Any = None,
) -> dict[str, Any]:
    """A ``block_document`` row as Prefect's ``BlockDocument``: its data (decrypted, secrets
    hidden unless asked for, references inlined) and references as the service built them;
    its type row; its schema row with the schema's type row (``None`` for a reference)."""
    return {
        "id": row.id,
        "created": row.created,
        "updated": row.updated,
        "name": row.name,
        "data": data,
        "block_schema_id": row.block_schema_id,
        "block_schema": (
            block_schema_to_wire(block_schema, schema_type) if block_schema is not None else None
        ),
        "block_type_id": row.block_type_id,
        "block_type_name": row.block_type_name,
        "block_type": block_type_to_wire(block_type),
        "block_document_references": references,
        "is_anonymous": row.is_anonymous,
    }


def reference_to_wire(row: Any, *, block_type: Any, references: dict[str, Any]) -> dict[str, Any]:
    """One entry of ``block_document_references``: the referenced document, in brief."""
    return {
        "block_document": {
            "id": row.id,
            "name": row.name,
            "block_type": block_type_to_wire(block_type),
            "is_anonymous": row.is_anonymous,
            "block_document_references": references,
        }
    }
