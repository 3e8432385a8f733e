"""concurrency leases over several limits

A lease is now one row per limit it holds slots on, the rows sharing the lease's id: the
primary key becomes (id, concurrency_limit_id). Existing leases (one limit each) are kept.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 03:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("concurrency_lease", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("pk_concurrency_lease"), type_="primary")
        batch_op.create_primary_key(
            batch_op.f("pk_concurrency_lease"), ["id", "concurrency_limit_id"]
        )


def downgrade() -> None:
    # A lease over several limits cannot be kept under a single-column key: its slots are
    # given back and it is dropped.
    shared = "SELECT id FROM concurrency_lease GROUP BY id HAVING count(*) > 1"
    freed = (
        "(SELECT coalesce(sum(lease.slots), 0) FROM concurrency_lease AS lease "
        "WHERE lease.concurrency_limit_id = concurrency_limit_v2.id "
        f"AND lease.id IN ({shared}))"
    )
    op.execute(
        "UPDATE concurrency_limit_v2 SET active_slots = "
        f"CASE WHEN active_slots > {freed} THEN active_slots - {freed} ELSE 0 END"
    )
    op.execute(f"DELETE FROM concurrency_lease WHERE id IN ({shared})")
    with op.batch_alter_table("concurrency_lease", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("pk_concurrency_lease"), type_="primary")
        batch_op.create_primary_key(batch_op.f("pk_concurrency_lease"), ["id"])
