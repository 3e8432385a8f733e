"""Block type and block schema wire shapes (the documents are in ``block_documents.py``): the
request bodies with Prefect 3.9.1's rules, the filters, and the answers.

The ``*_to_wire`` functions are the one place a row becomes Prefect's JSON: a block schema
carries its type, and a block document carries both.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from deputy.schemas.core import Offset
from deputy.schemas.filters import FilterBody, _Combined, _Strict

#: A schema saved without a version gets this one.
DEFAULT_BLOCK_SCHEMA_VERSION = "non-versioned"

#: Prefect's ``Name``: any text but ``/ % & > <``, at least one character.
NAME_PATTERN = "^[^/%&><]+$"

# ``$`` (not ``\Z``) on purpose, as Prefect's rule: one trailing newline gets through.
_SLUG = re.compile(r"^[a-z0-9-]*$")


def _check_slug(value: str) -> str:
    if _SLUG.match(value) is None:
        raise ValueError(
            "Block type slug must only contain lowercase letters, numbers, and dashes."
        )
    return value


BlockTypeName = Annotated[str, Field(pattern=NAME_PATTERN, description="A block type's name")]
BlockTypeSlug = Annotated[str, AfterValidator(_check_slug)]


class _BlockTypeDetails(BaseModel):
    """The descriptive fields of a block type, sent on create and answered on read."""

    logo_url: str | None = Field(default=None, description="Web URL for the block type's logo")
    documentation_url: str | None = Field(
        default=None, description="Web URL for the block type's documentation"
    )
    description: str | None = Field(
        default=None, description="A short blurb about the corresponding block's intended use"
    )
    code_example: str | None = Field(
        default=None, description="A code snippet demonstrating use of the corresponding block"
    )


class BlockTypeCreate(_BlockTypeDetails):
    """Data used to create a block type."""

    model_config = ConfigDict(extra="forbid")

    name: BlockTypeName
    slug: BlockTypeSlug = Field(description="A block type's slug")


class BlockTypeUpdate(BaseModel):
    """Data used to update a block type; only the keys sent are written (name and slug never
    change)."""

    model_config = ConfigDict(extra="forbid")

    logo_url: str | None = None
    documentation_url: str | None = None
    description: str | None = None
    code_example: str | None = None


class BlockSchemaCreate(BaseModel):
    """Data used to create a block schema."""

    model_config = ConfigDict(extra="forbid")

    fields: dict[str, Any] = Field(
        default_factory=dict, description="The block schema's field schema"
    )
    block_type_id: uuid.UUID = Field(description="A block type ID")
    capabilities: list[str] = Field(
        default_factory=list, description="A list of Block capabilities"
    )
    version: str = Field(
        default=DEFAULT_BLOCK_SCHEMA_VERSION,
        description="Human readable identifier for the block schema",
    )


class BlockType(_BlockTypeDetails):
    """A block type as answered (documentation only: routes return
    :func:`block_type_to_wire`)."""

    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    name: BlockTypeName
    slug: str = Field(description="A block type's slug")
    is_protected: bool = Field(
        default=False, description="Protected block types cannot be modified via API."
    )


class BlockSchema(BaseModel):
    """A block schema as answered, with its type (documentation only: routes return
    :func:`block_schema_to_wire`)."""

    id: uuid.UUID
    created: dt.datetime | None
    updated: dt.datetime | None
    checksum: str = Field(description="The block schema's unique checksum")
    fields: dict[str, Any] = Field(
        default_factory=dict, description="The block schema's field schema"
    )
    block_type_id: uuid.UUID | None = Field(description="A block type ID")
    block_type: BlockType | None = Field(default=None, description="The associated block type")
    capabilities: list[str] = Field(
        default_factory=list, description="A list of Block capabilities"
    )
    version: str = Field(
        default=DEFAULT_BLOCK_SCHEMA_VERSION,
        description="Human readable identifier for the block schema",
    )


# --- filters -------------------------------------------------------------------------------


class BlockTypeFilterName(_Strict):
    """``like_``: a case-insensitive partial match on the name."""

    like_: str | None = None


class BlockTypeFilterSlug(_Strict):
    any_: list[str] | None = None


class BlockTypeFilter(_Strict):
    """Its conditions are ANDed (Prefect's block type filter has no ``operator``)."""

    name: BlockTypeFilterName | None = None
    slug: BlockTypeFilterSlug | None = None


class BlockSchemaFilterBlockTypeId(_Strict):
    any_: list[uuid.UUID] | None = None


class BlockSchemaFilterId(_Strict):
    any_: list[uuid.UUID] | None = None


class BlockSchemaFilterCapabilities(_Strict):
    """``all_``: schemas whose capabilities include every one listed (``[]``: no condition)."""

    all_: list[str] | None = None


class BlockSchemaFilterVersion(_Strict):
    any_: list[str] | None = None


class BlockSchemaFilter(_Combined):
    block_type_id: BlockSchemaFilterBlockTypeId | None = None
    block_capabilities: BlockSchemaFilterCapabilities | None = None
    id: BlockSchemaFilterId | None = None
    version: BlockSchemaFilterVersion | None = None


class BlockTypeFilterBody(FilterBody):
    """Body of ``POST /block_types/filter``: types sorted by name."""

    block_types: BlockTypeFilter | None = None
    block_schemas: BlockSchemaFilter | None = None
    offset: Offset = 0
    limit: int | None = Field(default=None, description="Defaults to the server's page size.")


class BlockSchemaFilterBody(FilterBody):
    """Body of ``POST /block_schemas/filter``: schemas newest first."""

    block_schemas: BlockSchemaFilter | None = None
    offset: Offset = 0
    limit: int | None = Field(default=None, description="Defaults to the server's page size.")


# --- answers -------------------------------------------------------------------------------


def block_type_to_wire(row: Any) -> dict[str, Any]:
    """A ``block_type`` row as Prefect's ``BlockType``."""
    return {
        "id": row.id,
        "created": row.created,
        "updated": row.updated,
        "name": row.name,
        "slug": row.slug,
        "logo_url": row.logo_url,
        "documentation_url": row.documentation_url,
        "description": row.description,
        "code_example": row.code_example,
        "is_protected": row.is_protected,
    }


def block_schema_to_wire(row: Any, block_type: Any) -> dict[str, Any]:
    """A ``block_schema`` row, with its type row, as Prefect's ``BlockSchema``.

    ``row.fields`` is answered as is: the services put the reconstructed fields there
    (nested block schemas back in ``definitions`` and ``block_schema_references``).
    """
    return {
        "id": row.id,
        "created": row.created,
        "updated": row.updated,
        "checksum": row.checksum,
        "fields": row.fields,
        "block_type_id": row.block_type_id,
        "block_type": block_type_to_wire(block_type) if block_type is not None else None,
        "capabilities": row.capabilities,
        "version": row.version,
    }
