"""API keys carry a scope: storefront, merchant or read_only.

Every key that exists before this revision could call every endpoint (evaluate, orders,
approvals, rule sets, directory writes), so each becomes a ``merchant`` key: the one scope
that still allows all of that, so no running storefront or integration breaks on upgrade.
Keys created afterwards name their scope (``storefront`` unless said otherwise); owners
replace the upgraded keys by narrower ones in the admin (Keys page), see docs/security.md.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: the scope keys of before this revision get: they could do everything a merchant key can
EXISTING_KEYS_SCOPE = "merchant"


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        # the server default fills the existing rows, then goes: a new key always names its scope
        batch.add_column(
            sa.Column(
                "scope", sa.String(length=16), nullable=False, server_default=EXISTING_KEYS_SCOPE
            )
        )
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scope", server_default=None)
        batch.create_check_constraint(
            op.f("ck_api_keys_scope"), "scope IN ('storefront', 'merchant', 'read_only')"
        )


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_constraint(op.f("ck_api_keys_scope"), type_="check")
        batch.drop_column("scope")
