"""Workflow extensions: orders.previous_decisions, approval_requests.step_started_at.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

``orders.previous_decisions``: the decisions an order had before it was
re-evaluated (a new rule-set version with ``pending_on_new_version:
reevaluate``, or an approver's edit), oldest first.
``approval_requests.step_started_at``: when the current step became current,
so that a step's ``escalate_after`` counts from it.
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("previous_decisions", Json, nullable=True))
    with op.batch_alter_table("approval_requests") as batch:
        batch.add_column(sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approval_requests") as batch:
        batch.drop_column("step_started_at")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("previous_decisions")
