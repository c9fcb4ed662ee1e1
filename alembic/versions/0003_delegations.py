"""Delegations: an approver's stand-in for a period (out of office).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delegations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("delegator_id", sa.Integer(), nullable=False),
        sa.Column("delegate_id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("step", sa.String(length=200), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("valid_from <= valid_until", name=op.f("ck_delegations_valid_period")),
        sa.CheckConstraint("delegator_id <> delegate_id", name=op.f("ck_delegations_not_self")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_delegations_tenant_id_tenants"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["delegator_id"], ["accounts.id"], name=op.f("fk_delegations_delegator_id_accounts"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["delegate_id"], ["accounts.id"], name=op.f("fk_delegations_delegate_id_accounts"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["company_id"], ["companies.id"], name=op.f("fk_delegations_company_id_companies"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delegations")),
    )
    op.create_index("ix_delegations_delegator", "delegations", ["tenant_id", "delegator_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_delegations_delegator", table_name="delegations")
    op.drop_table("delegations")
