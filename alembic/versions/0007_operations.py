"""Operations: a rate limit per API key, and the decision log's table.

``api_keys.rate_per_minute`` is empty for every existing key, which keeps the
service-wide default (``approvalrules.api.rate_per_minute``) it had before.
``decision_log`` starts empty; it is filled only where
``approvalrules.decision_log = table``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("rate_per_minute", sa.Integer(), nullable=True))
    op.create_table(
        "decision_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("ruleset", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("policy_hash", sa.String(length=64), nullable=False),
        sa.Column("input_digest", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column(
            "steps",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.CheckConstraint("kind IN ('evaluate', 'submit')", name=op.f("ck_decision_log_kind")),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_decision_log_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decision_log")),
    )
    op.create_index("ix_decision_log_decided", "decision_log", ["decided_at"])
    op.create_index("ix_decision_log_tenant_decided", "decision_log", ["tenant_id", "decided_at"])


def downgrade() -> None:
    op.drop_index("ix_decision_log_tenant_decided", table_name="decision_log")
    op.drop_index("ix_decision_log_decided", table_name="decision_log")
    op.drop_table("decision_log")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("rate_per_minute")
