"""job priorities: workers claim in (priority, id) order, transcript work first

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# junto.jobs.registry.PRIORITIES as of this revision (a migration must not change with the code).
_PRIORITIES = {
    "recording.finalize": 10,
    "transcript.track": 10,
    "transcript.build": 10,
    "knowledge.extract": 20,
    "search.index": 20,
}


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="30"))
    jobs = sa.table("jobs", sa.column("kind", sa.String()), sa.column("priority", sa.Integer()))
    for kind, priority in _PRIORITIES.items():
        op.execute(jobs.update().where(jobs.c.kind == kind).values(priority=priority))
    op.create_index("ix_jobs_claim", "jobs", ["state", "priority", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_claim", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("priority")
