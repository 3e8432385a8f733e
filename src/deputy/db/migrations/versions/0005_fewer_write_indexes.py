"""fewer indexes on the tables every request writes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 04:30:00

No query reads these; each was one more page to write per commit on the hot paths
(create_flow_run, set_state, event and log ingestion).
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DROPPED = (
    ("flow_run", "ix_flow_run__updated", ["updated"]),
    ("flow_run", "ix_flow_run__created", ["created"]),
    ("flow_run_state", "ix_flow_run_state__type", ["type"]),
    ("flow_run_state", "ix_flow_run_state__name", ["name"]),
    ("task_run_state", "ix_task_run_state__type", ["type"]),
    ("task_run_state", "ix_task_run_state__name", ["name"]),
    ("event", "ix_event__updated", ["updated"]),
    ("event_resource", "ix_event_resource__updated", ["updated"]),
    ("log", "ix_log__updated", ["updated"]),
)


def upgrade() -> None:
    for _table, index, _columns in DROPPED:
        op.drop_index(index)


def downgrade() -> None:
    for table, index, columns in DROPPED:
        op.create_index(index, table, columns)
