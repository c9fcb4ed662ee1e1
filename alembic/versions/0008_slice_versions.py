"""Slice versions: what lets a cached company slice tell whether its own rows changed.

``slice_versions`` holds, per company and per account, the tenant's directory version at
which the company's slice (the company, its groups, assignments, members and their
delegations) or the account's memberships last changed.  It starts empty: a company or
account without a row reads as version 0, so every existing slice stays valid until the
first change of its rows after the upgrade.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slice_versions",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("row_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('company', 'account')", name=op.f("ck_slice_versions_kind")
        ),
        sa.PrimaryKeyConstraint("kind", "row_id", name=op.f("pk_slice_versions")),
    )
    op.create_index(
        "ix_slice_versions_tenant_version", "slice_versions", ["tenant_id", "version"]
    )


def downgrade() -> None:
    op.drop_index("ix_slice_versions_tenant_version", table_name="slice_versions")
    op.drop_table("slice_versions")
