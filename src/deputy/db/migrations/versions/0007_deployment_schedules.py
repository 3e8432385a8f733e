"""deployment schedules, and one auto-scheduled run per deployment and slot

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 05:40:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import deputy.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _json(nullable: bool) -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=nullable).with_variant(
        postgresql.JSONB(none_as_null=nullable, astext_type=sa.Text()), "postgresql"
    )


def upgrade() -> None:
    timestamp = deputy.db.types.Timestamp(timezone=True)
    op.create_table(
        "deployment_schedule",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", timestamp, nullable=False),
        sa.Column("updated", timestamp, nullable=False),
        sa.Column("deployment_id", sa.Uuid(), nullable=False),
        sa.Column("schedule", _json(False), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("max_scheduled_runs", sa.Integer(), nullable=True),
        sa.Column("parameters", _json(False), server_default="{}", nullable=False),
        sa.Column("slug", sa.String(), nullable=True),
        sa.Column("refill_at", timestamp, nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployment.id"],
            name=op.f("fk_deployment_schedule__deployment_id__deployment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_schedule")),
        sa.UniqueConstraint(
            "deployment_id", "slug", name=op.f("uq_deployment_schedule__deployment_id_slug")
        ),
    )
    with op.batch_alter_table("deployment_schedule", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deployment_schedule__deployment_id"), ["deployment_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_deployment_schedule__refill_at"), ["refill_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_deployment_schedule__updated"), ["updated"], unique=False
        )
    # Runs created before this revision may already repeat a slot; keep the oldest of each.
    op.execute(
        "DELETE FROM flow_run WHERE auto_scheduled AND deployment_id IS NOT NULL "
        "AND expected_start_time IS NOT NULL AND EXISTS ("
        "SELECT 1 FROM flow_run AS other WHERE other.auto_scheduled "
        "AND other.deployment_id = flow_run.deployment_id "
        "AND other.expected_start_time = flow_run.expected_start_time "
        "AND (other.created < flow_run.created OR "
        "(other.created = flow_run.created AND other.id < flow_run.id)))"
    )
    op.create_index(
        "uq_flow_run__auto_scheduled_slot",
        "flow_run",
        ["deployment_id", "expected_start_time"],
        unique=True,
        sqlite_where=sa.text("auto_scheduled"),
        postgresql_where=sa.text("auto_scheduled"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_flow_run__auto_scheduled_slot",
        table_name="flow_run",
        sqlite_where=sa.text("auto_scheduled"),
        postgresql_where=sa.text("auto_scheduled"),
    )
    with op.batch_alter_table("deployment_schedule", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployment_schedule__updated"))
        batch_op.drop_index(batch_op.f("ix_deployment_schedule__refill_at"))
        batch_op.drop_index(batch_op.f("ix_deployment_schedule__deployment_id"))
    op.drop_table("deployment_schedule")
