"""task run states and the task-run state cache

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 03:40:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import deputy.db.types

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _json(nullable: bool) -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=nullable).with_variant(
        postgresql.JSONB(none_as_null=nullable, astext_type=sa.Text()), "postgresql"
    )


def upgrade() -> None:
    op.create_table(
        "task_run_state",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("task_run_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("timestamp", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("state_details", _json(False), server_default="{}", nullable=False),
        sa.Column("data", _json(True), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_run_id"],
            ["task_run.id"],
            name=op.f("fk_task_run_state__task_run_id__task_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_run_state")),
        sa.UniqueConstraint(
            "task_run_id", "timestamp", name=op.f("uq_task_run_state__task_run_id_timestamp")
        ),
    )
    with op.batch_alter_table("task_run_state", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_run_state__name"), ["name"], unique=False)
        batch_op.create_index(batch_op.f("ix_task_run_state__type"), ["type"], unique=False)

    op.create_table(
        "task_run_state_cache",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("cache_key", sa.String(), nullable=False),
        sa.Column("cache_expiration", deputy.db.types.Timestamp(timezone=True), nullable=True),
        sa.Column("task_run_state_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_run_state_cache")),
    )
    with op.batch_alter_table("task_run_state_cache", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_task_run_state_cache__cache_key_created"),
            ["cache_key", "created"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_task_run_state_cache__updated"), ["updated"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("task_run_state_cache", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_run_state_cache__updated"))
        batch_op.drop_index(batch_op.f("ix_task_run_state_cache__cache_key_created"))

    op.drop_table("task_run_state_cache")
    with op.batch_alter_table("task_run_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_run_state__type"))
        batch_op.drop_index(batch_op.f("ix_task_run_state__name"))

    op.drop_table("task_run_state")
