"""blocks: types, schemas, documents (encrypted) and their references; configuration

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 00:10:00

``block_document`` existed only as the target of the deployment and flow-run foreign keys (no
route wrote it), so it is reshaped in place: its JSON ``data`` becomes ``encrypted_data``, and
it gains its type name and the foreign keys to its type and schema.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import deputy.db.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _base_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
    ]


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _owner(name: str, table: str, owner: str) -> sa.ForeignKeyConstraint:
    """The foreign key to the owning row; a reference table's two are named by role (the
    conventional name would pass PostgreSQL's 63 characters)."""
    role = name.split("_")[0]
    constraint = (
        f"fk_{table}__{role}" if table.endswith("_reference") else f"fk_{table}__{name}__{owner}"
    )
    return sa.ForeignKeyConstraint(
        [name], [f"{owner}.id"], name=op.f(constraint), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "block_type",
        *_base_columns(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("slug", sa.String(), nullable=False),
        sa.Column("logo_url", sa.String(), nullable=True),
        sa.Column("documentation_url", sa.String(), nullable=True),
        sa.Column("description", sa.String(), nullable=True),
        sa.Column("code_example", sa.String(), nullable=True),
        sa.Column("is_protected", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_block_type"),
        sa.UniqueConstraint("slug", name="uq_block_type__slug"),
    )
    op.create_index("ix_block_type__updated", "block_type", ["updated"])

    op.create_table(
        "block_schema",
        *_base_columns(),
        sa.Column("checksum", sa.String(), nullable=False),
        sa.Column("fields", _json(), server_default="{}", nullable=False),
        sa.Column("capabilities", _json(), server_default="[]", nullable=False),
        sa.Column("version", sa.String(), server_default="non-versioned", nullable=False),
        sa.Column("block_type_id", sa.Uuid(), nullable=False),
        _owner("block_type_id", "block_schema", "block_type"),
        sa.PrimaryKeyConstraint("id", name="pk_block_schema"),
        sa.UniqueConstraint("checksum", "version", name="uq_block_schema__checksum_version"),
    )
    for column in ("updated", "created", "block_type_id"):
        op.create_index(f"ix_block_schema__{column}", "block_schema", [column])

    op.create_table(
        "block_schema_reference",
        *_base_columns(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("parent_block_schema_id", sa.Uuid(), nullable=False),
        sa.Column("reference_block_schema_id", sa.Uuid(), nullable=False),
        _owner("parent_block_schema_id", "block_schema_reference", "block_schema"),
        _owner("reference_block_schema_id", "block_schema_reference", "block_schema"),
        sa.PrimaryKeyConstraint("id", name="pk_block_schema_reference"),
    )
    for column in ("updated", "parent_block_schema_id", "reference_block_schema_id"):
        op.create_index(f"ix_block_schema_reference__{column}", "block_schema_reference", [column])

    # Empty until now (nothing wrote it), so the new NOT NULL columns need no default.
    with op.batch_alter_table("block_document") as batch:
        batch.drop_column("data")
        batch.add_column(sa.Column("encrypted_data", sa.Text(), nullable=False))
        batch.add_column(sa.Column("block_type_name", sa.String(), nullable=True))
        batch.alter_column("block_type_id", existing_type=sa.Uuid(), nullable=False)
        batch.alter_column("block_schema_id", existing_type=sa.Uuid(), nullable=False)
        batch.create_foreign_key(
            "fk_block_document__block_type_id__block_type",
            "block_type",
            ["block_type_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_foreign_key(
            "fk_block_document__block_schema_id__block_schema",
            "block_schema",
            ["block_schema_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_unique_constraint(
            "uq_block_document__block_type_id_name", ["block_type_id", "name"]
        )
        batch.create_index("ix_block_document__name", ["name"])
        batch.create_index("ix_block_document__is_anonymous", ["is_anonymous"])
        batch.create_index("ix_block_document__block_schema_id", ["block_schema_id"])

    op.create_table(
        "block_document_reference",
        *_base_columns(),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("parent_block_document_id", sa.Uuid(), nullable=False),
        sa.Column("reference_block_document_id", sa.Uuid(), nullable=False),
        _owner("parent_block_document_id", "block_document_reference", "block_document"),
        _owner("reference_block_document_id", "block_document_reference", "block_document"),
        sa.CheckConstraint(
            "parent_block_document_id != reference_block_document_id",
            name=op.f("ck_block_document_reference__no_self_reference"),
        ),
        sa.PrimaryKeyConstraint("id", name="pk_block_document_reference"),
    )
    for column in ("updated", "parent_block_document_id", "reference_block_document_id"):
        op.create_index(
            f"ix_block_document_reference__{column}", "block_document_reference", [column]
        )

    op.create_table(
        "configuration",
        *_base_columns(),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_configuration"),
        sa.UniqueConstraint("key", name="uq_configuration__key"),
    )
    op.create_index("ix_configuration__updated", "configuration", ["updated"])


def downgrade() -> None:
    op.drop_table("configuration")
    op.drop_table("block_document_reference")
    op.execute("DELETE FROM block_document")
    with op.batch_alter_table("block_document") as batch:
        batch.drop_index("ix_block_document__block_schema_id")
        batch.drop_index("ix_block_document__is_anonymous")
        batch.drop_index("ix_block_document__name")
        batch.drop_constraint("uq_block_document__block_type_id_name", type_="unique")
        batch.drop_constraint("fk_block_document__block_schema_id__block_schema", "foreignkey")
        batch.drop_constraint("fk_block_document__block_type_id__block_type", "foreignkey")
        batch.alter_column("block_schema_id", existing_type=sa.Uuid(), nullable=True)
        batch.alter_column("block_type_id", existing_type=sa.Uuid(), nullable=True)
        batch.drop_column("block_type_name")
        batch.drop_column("encrypted_data")
        batch.add_column(sa.Column("data", _json(), server_default="{}", nullable=False))
    op.drop_table("block_schema_reference")
    op.drop_table("block_schema")
    op.drop_table("block_type")
