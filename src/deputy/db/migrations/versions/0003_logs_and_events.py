"""logs and events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 03:18:37.920023
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import deputy.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("occurred", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("resource_id", sa.String(), nullable=False),
        sa.Column(
            "resource",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.Column(
            "related_resource_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="[]",
            nullable=False,
        ),
        sa.Column(
            "related",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="[]",
            nullable=False,
        ),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("received", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("recorded", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("follows", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event__event"), ["event"], unique=False)
        batch_op.create_index(batch_op.f("ix_event__occurred"), ["occurred"], unique=False)
        batch_op.create_index(batch_op.f("ix_event__resource_id"), ["resource_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_event__updated"), ["updated"], unique=False)

    op.create_table(
        "log",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("flow_run_id", sa.Uuid(), nullable=True),
        sa.Column("task_run_id", sa.Uuid(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("timestamp", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log")),
    )
    with op.batch_alter_table("log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_log__flow_run_id"), ["flow_run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_log__level"), ["level"], unique=False)
        batch_op.create_index(batch_op.f("ix_log__task_run_id"), ["task_run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_log__timestamp"), ["timestamp"], unique=False)
        batch_op.create_index(batch_op.f("ix_log__updated"), ["updated"], unique=False)

    op.create_table(
        "event_resource",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("occurred", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("resource_id", sa.String(), nullable=False),
        sa.Column("resource_role", sa.String(), nullable=False),
        sa.Column(
            "resource",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default="{}",
            nullable=False,
        ),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["event.id"],
            name=op.f("fk_event_resource__event_id__event"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_resource")),
    )
    with op.batch_alter_table("event_resource", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_resource__event_id"), ["event_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_event_resource__resource_id_occurred"),
            ["resource_id", "occurred"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_event_resource__updated"), ["updated"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("event_resource", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_resource__updated"))
        batch_op.drop_index(batch_op.f("ix_event_resource__resource_id_occurred"))
        batch_op.drop_index(batch_op.f("ix_event_resource__event_id"))

    op.drop_table("event_resource")
    with op.batch_alter_table("log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_log__updated"))
        batch_op.drop_index(batch_op.f("ix_log__timestamp"))
        batch_op.drop_index(batch_op.f("ix_log__task_run_id"))
        batch_op.drop_index(batch_op.f("ix_log__level"))
        batch_op.drop_index(batch_op.f("ix_log__flow_run_id"))

    op.drop_table("log")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event__updated"))
        batch_op.drop_index(batch_op.f("ix_event__resource_id"))
        batch_op.drop_index(batch_op.f("ix_event__occurred"))
        batch_op.drop_index(batch_op.f("ix_event__event"))

    op.drop_table("event")
