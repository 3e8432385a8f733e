"""artifacts: every version, and one row per key pointing at its newest

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 13:10:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import deputy.db.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _identity() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
    ]


def _version() -> list[sa.Column[Any]]:
    """What a version holds, and what a key's row copies from its newest version."""
    return [
        sa.Column("type", sa.String(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("data", _json(), nullable=True),
        sa.Column("metadata_", _json(), nullable=True),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("task_run_id", sa.Uuid(), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "artifact",
        *_identity(),
        sa.Column("key", sa.String(), nullable=True),
        *_version(),
        sa.PrimaryKeyConstraint("id", name="pk_artifact"),
    )
    op.create_index("ix_artifact__updated", "artifact", ["updated"])
    op.create_index("ix_artifact__flow_run_id", "artifact", ["flow_run_id"])
    op.create_index("ix_artifact__task_run_id", "artifact", ["task_run_id"])
    op.create_index("ix_artifact__key_created", "artifact", ["key", "created"])
    op.create_table(
        "artifact_collection",
        *_identity(),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("latest_id", sa.Uuid(), nullable=False),
        *_version(),
        sa.PrimaryKeyConstraint("id", name="pk_artifact_collection"),
        sa.UniqueConstraint("key", name="uq_artifact_collection__key"),
    )
    op.create_index("ix_artifact_collection__updated", "artifact_collection", ["updated"])


def downgrade() -> None:
    op.drop_table("artifact_collection")
    op.drop_table("artifact")
