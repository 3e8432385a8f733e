"""Block type and block schema wire shapes (the documents are in ``block_documents.py``).

The ``*_to_wire`` functions are the one place a row becomes Prefect's JSON: a block schema
carries its type, and a block document carries both.
"""

from __future__ import annotations

from typing import Any


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
    """A ``block_schema`` row, with its type row, as Prefect's ``BlockSchema``."""
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
