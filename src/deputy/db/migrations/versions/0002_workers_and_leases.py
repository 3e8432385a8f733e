"""workers and concurrency leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 03:10:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import deputy.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _json(nullable: bool) -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=nullable).with_variant(
        postgresql.JSONB(none_as_null=nullable, astext_type=sa.Text()), "postgresql"
    )


def upgrade() -> None:
    op.create_table(
        "worker",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("work_pool_id", sa.Uuid(), nullable=False),
        sa.Column("last_heartbeat_time", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("heartbeat_interval_seconds", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(), server_default="OFFLINE", nullable=False),
        sa.ForeignKeyConstraint(
            ["work_pool_id"],
            ["work_pool.id"],
            name=op.f("fk_worker__work_pool_id__work_pool"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker")),
        sa.UniqueConstraint("work_pool_id", "name", name=op.f("uq_worker__work_pool_id_name")),
    )
    with op.batch_alter_table("worker", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_worker__updated"), ["updated"], unique=False)
        batch_op.create_index(batch_op.f("ix_worker__work_pool_id"), ["work_pool_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_worker__work_pool_id_last_heartbeat_time"),
            ["work_pool_id", "last_heartbeat_time"],
            unique=False,
        )

    op.create_table(
        "concurrency_lease",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("updated", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("concurrency_limit_id", sa.Uuid(), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("expiration", deputy.db.types.Timestamp(timezone=True), nullable=False),
        sa.Column("holder", _json(True), nullable=True),
        sa.ForeignKeyConstraint(
            ["concurrency_limit_id"],
            ["concurrency_limit_v2.id"],
            name=op.f("fk_concurrency_lease__concurrency_limit_id__concurrency_limit_v2"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_concurrency_lease")),
    )
    with op.batch_alter_table("concurrency_lease", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_concurrency_lease__concurrency_limit_id"),
            ["concurrency_limit_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_concurrency_lease__expiration"), ["expiration"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_concurrency_lease__updated"), ["updated"], unique=False
        )


def downgrade() -> None:
    op.drop_table("concurrency_lease")
    op.drop_table("worker")
