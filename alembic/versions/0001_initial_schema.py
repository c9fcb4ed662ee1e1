"""Initial schema: every table, plus the triggers that keep history immutable.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Triggers (PostgreSQL and SQLite alike): ``audit_events`` refuses UPDATE and
DELETE; a published or retired ``rule_set_versions`` row refuses any change
of its text, content hash, number or rule set, and cannot go back to draft.
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

IMMUTABLE_MESSAGE = "published rule set versions are immutable: text, content_hash and number can never change"
APPEND_ONLY_MESSAGE = "audit_events is append-only"

POSTGRESQL_TRIGGERS = [
    f"""
    CREATE FUNCTION approvalrules_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}: % refused', TG_OP USING ERRCODE = 'restrict_violation';
    END $$
    """,
    """
    CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION approvalrules_audit_append_only()
    """,
    """
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION approvalrules_audit_append_only()
    """,
    f"""
    CREATE FUNCTION approvalrules_version_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.status <> 'draft' AND (
            NEW.text IS DISTINCT FROM OLD.text
            OR NEW.content_hash IS DISTINCT FROM OLD.content_hash
            OR NEW.number IS DISTINCT FROM OLD.number
            OR NEW.ruleset_id IS DISTINCT FROM OLD.ruleset_id
            OR NEW.status = 'draft'
        ) THEN
            RAISE EXCEPTION '{IMMUTABLE_MESSAGE} (version %, %)', OLD.number, OLD.status
                USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN NEW;
    END $$
    """,
    """
    CREATE TRIGGER rule_set_versions_immutable BEFORE UPDATE ON rule_set_versions
    FOR EACH ROW EXECUTE FUNCTION approvalrules_version_immutable()
    """,
]

POSTGRESQL_DROP = [
    "DROP TRIGGER IF EXISTS rule_set_versions_immutable ON rule_set_versions",
    "DROP FUNCTION IF EXISTS approvalrules_version_immutable()",
    "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
    "DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events",
    "DROP FUNCTION IF EXISTS approvalrules_audit_append_only()",
]

SQLITE_TRIGGERS = [
    f"""
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}: UPDATE refused'); END
    """,
    f"""
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}: DELETE refused'); END
    """,
    f"""
    CREATE TRIGGER rule_set_versions_immutable BEFORE UPDATE ON rule_set_versions
    WHEN OLD.status <> 'draft' AND (
        NEW.text IS NOT OLD.text
        OR NEW.content_hash IS NOT OLD.content_hash
        OR NEW.number IS NOT OLD.number
        OR NEW.ruleset_id IS NOT OLD.ruleset_id
        OR NEW.status = 'draft'
    )
    BEGIN SELECT RAISE(ABORT, '{IMMUTABLE_MESSAGE}'); END
    """,
]

SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS rule_set_versions_immutable",
    "DROP TRIGGER IF EXISTS audit_events_no_delete",
    "DROP TRIGGER IF EXISTS audit_events_no_update",
]

ACTIVE_VERSION_FK = "fk_rule_sets_active_version_id_rule_set_versions"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # rule_sets and rule_set_versions reference each other.  SQLite accepts a
    # forward reference in CREATE TABLE (and cannot ALTER one in later);
    # elsewhere the constraint is added once both tables exist.
    active_version_fk = []
    if dialect == "sqlite":
        active_version_fk = [
            sa.ForeignKeyConstraint(["active_version_id"], ["rule_set_versions.id"], name=op.f(ACTIVE_VERSION_FK), ondelete="SET NULL")
        ]
    op.create_table('tenants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('settings', Json, nullable=False),
    sa.Column('directory_version', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenants')),
    sa.UniqueConstraint('slug', name=op.f('uq_tenants_slug'))
    )
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('email_enabled', sa.Boolean(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_accounts_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('tenant_id', 'external_id', name=op.f('uq_accounts_tenant_id_external_id'))
    )
    op.create_table('admin_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('login', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('owner', 'editor', 'viewer')", name=op.f('ck_admin_users_role')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_admin_users_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_users')),
    sa.UniqueConstraint('tenant_id', 'login', name=op.f('uq_admin_users_tenant_id_login'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_api_keys_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('prefix', name=op.f('uq_api_keys_prefix'))
    )
    op.create_index(op.f('ix_api_keys_tenant_id'), 'api_keys', ['tenant_id'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('subject_type', sa.String(length=100), nullable=False),
    sa.Column('subject_id', sa.String(length=200), nullable=False),
    sa.Column('data', Json, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_audit_events_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    op.create_index('ix_audit_events_subject', 'audit_events', ['tenant_id', 'subject_type', 'subject_id'], unique=False)
    op.create_index('ix_audit_events_tenant_created', 'audit_events', ['tenant_id', 'created_at'], unique=False)

    op.create_table('companies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('ruleset_name', sa.String(length=200), nullable=True),
    sa.Column('attributes', Json, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['companies.id'], name=op.f('fk_companies_parent_id_companies'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_companies_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_companies')),
    sa.UniqueConstraint('tenant_id', 'external_id', name=op.f('uq_companies_tenant_id_external_id'))
    )
    op.create_index(op.f('ix_companies_parent_id'), 'companies', ['parent_id'], unique=False)

    op.create_table('outbox_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('event_type', sa.String(length=100), nullable=False),
    sa.Column('payload', Json, nullable=False),
    sa.Column('recipients', Json, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_outbox_events_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_outbox_events_event_id'))
    )
    op.create_index('ix_outbox_events_due', 'outbox_events', ['delivered_at', 'next_attempt_at'], unique=False)
    op.create_index(op.f('ix_outbox_events_tenant_id'), 'outbox_events', ['tenant_id'], unique=False)

    op.create_table('rule_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('extends', sa.String(length=200), nullable=True),
    sa.Column('active_version_id', sa.Integer(), nullable=True),
    sa.Column('draft_text', sa.Text(), nullable=True),
    sa.Column('draft_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    *active_version_fk,
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_rule_sets_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_sets')),
    sa.UniqueConstraint('tenant_id', 'name', name=op.f('uq_rule_sets_tenant_id_name'))
    )
    op.create_table('assignments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('approver_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('threshold', sa.Numeric(precision=18, scale=4), nullable=True),
    sa.Column('limit', sa.Numeric(precision=18, scale=4), nullable=True),
    sa.Column('step', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_assignments_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['approver_id'], ['accounts.id'], name=op.f('fk_assignments_approver_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_assignments_company_id_companies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments'))
    )
    op.create_index('ix_assignments_account', 'assignments', ['company_id', 'account_id'], unique=False)
    op.create_index('ix_assignments_approver', 'assignments', ['company_id', 'approver_id'], unique=False)

    op.create_table('company_contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.CheckConstraint("kind IN ('primary', 'billing', 'logistics')", name=op.f('ck_company_contacts_kind')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_company_contacts_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_company_contacts_company_id_companies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_company_contacts')),
    sa.UniqueConstraint('company_id', 'account_id', 'kind', name=op.f('uq_company_contacts_company_id_account_id_kind'))
    )
    op.create_index(op.f('ix_company_contacts_account_id'), 'company_contacts', ['account_id'], unique=False)

    op.create_table('groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_groups_company_id_companies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_groups')),
    sa.UniqueConstraint('company_id', 'external_id', name=op.f('uq_groups_company_id_external_id'))
    )
    op.create_table('locations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', Json, nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_locations_company_id_companies'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_locations')),
    sa.UniqueConstraint('company_id', 'external_id', name=op.f('uq_locations_company_id_external_id'))
    )
    op.create_table('rule_set_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ruleset_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.String(length=128), nullable=False),
    sa.Column('extends', sa.String(length=200), nullable=True),
    sa.Column('author', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.CheckConstraint("status IN ('draft', 'published', 'retired')", name=op.f('ck_rule_set_versions_status')),
    sa.ForeignKeyConstraint(['ruleset_id'], ['rule_sets.id'], name=op.f('fk_rule_set_versions_ruleset_id_rule_sets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_set_versions')),
    sa.UniqueConstraint('ruleset_id', 'number', name=op.f('uq_rule_set_versions_ruleset_id_number'))
    )
    op.create_index('ix_rule_set_versions_hash', 'rule_set_versions', ['content_hash'], unique=False)

    op.create_table('memberships',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=100), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('master', sa.Boolean(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('settings', Json, nullable=False),
    sa.Column('attributes', Json, nullable=False),
    sa.CheckConstraint("status IN ('active', 'invited', 'declined', 'inactive')", name=op.f('ck_memberships_status')),
    sa.CheckConstraint('NOT (master AND group_id IS NOT NULL)', name=op.f('ck_memberships_master_or_member')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_memberships_account_id_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_memberships_company_id_companies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], name=op.f('fk_memberships_group_id_groups'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_memberships')),
    sa.UniqueConstraint('account_id', 'company_id', name=op.f('uq_memberships_account_id_company_id'))
    )
    op.create_index(op.f('ix_memberships_company_id'), 'memberships', ['company_id'], unique=False)
    op.create_index(op.f('ix_memberships_group_id'), 'memberships', ['group_id'], unique=False)

    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=True),
    sa.Column('buyer_id', sa.Integer(), nullable=True),
    sa.Column('payload', Json, nullable=False),
    sa.Column('total', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('decision', Json, nullable=False),
    sa.Column('ruleset_version_id', sa.Integer(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['buyer_id'], ['accounts.id'], name=op.f('fk_orders_buyer_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_orders_company_id_companies'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['ruleset_version_id'], ['rule_set_versions.id'], name=op.f('fk_orders_ruleset_version_id_rule_set_versions'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_orders_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('tenant_id', 'external_id', name=op.f('uq_orders_tenant_id_external_id')),
    sa.UniqueConstraint('tenant_id', 'idempotency_key', name='uq_orders_idempotency_key')
    )
    op.create_index('ix_orders_buyer', 'orders', ['buyer_id', 'created_at'], unique=False)
    op.create_index(op.f('ix_orders_company_id'), 'orders', ['company_id'], unique=False)
    op.create_index('ix_orders_tenant_status_created', 'orders', ['tenant_id', 'status', 'created_at'], unique=False)

    op.create_table('approval_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('ruleset_version_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('current_step', sa.Integer(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('steps', Json, nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'approved', 'rejected', 'expired', 'withdrawn')", name=op.f('ck_approval_requests_status')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_approval_requests_order_id_orders'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ruleset_version_id'], ['rule_set_versions.id'], name=op.f('fk_approval_requests_ruleset_version_id_rule_set_versions'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_approval_requests_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_approval_requests')),
    sa.UniqueConstraint('order_id', name=op.f('uq_approval_requests_order_id'))
    )
    op.create_index('ix_approval_requests_expiry', 'approval_requests', ['status', 'expires_at'], unique=False)
    op.create_index('ix_approval_requests_inbox', 'approval_requests', ['tenant_id', 'status', 'created_at'], unique=False)

    op.create_table('budget_ledger',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.Column('scope_key', sa.String(length=200), nullable=False),
    sa.Column('period_key', sa.String(length=16), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('amount', sa.Numeric(precision=18, scale=4), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('draw', 'release')", name=op.f('ck_budget_ledger_kind')),
    sa.ForeignKeyConstraint(['company_id'], ['companies.id'], name=op.f('fk_budget_ledger_company_id_companies'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_budget_ledger_order_id_orders'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_budget_ledger_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_budget_ledger'))
    )
    op.create_index(op.f('ix_budget_ledger_order_id'), 'budget_ledger', ['order_id'], unique=False)
    op.create_index('ix_budget_ledger_scope', 'budget_ledger', ['tenant_id', 'company_id', 'scope_key', 'period_key'], unique=False)

    op.create_table('approval_eligibility',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.String(length=200), nullable=False),
    sa.Column('step_index', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['approval_requests.id'], name=op.f('fk_approval_eligibility_request_id_approval_requests'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_approval_eligibility_tenant_id_tenants'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_approval_eligibility')),
    sa.UniqueConstraint('request_id', 'step_index', 'account_id', name=op.f('uq_approval_eligibility_request_id_step_index_account_id'))
    )
    op.create_index('ix_approval_eligibility_approver', 'approval_eligibility', ['tenant_id', 'account_id', 'status', 'created_at', 'request_id'], unique=False)
    op.create_table('approval_actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.String(length=200), nullable=False),
    sa.Column('approver_id', sa.Integer(), nullable=False),
    sa.Column('on_behalf_of_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('approve', 'reject', 'reverse')", name=op.f('ck_approval_actions_action')),
    sa.ForeignKeyConstraint(['approver_id'], ['accounts.id'], name=op.f('fk_approval_actions_approver_id_accounts'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['on_behalf_of_id'], ['accounts.id'], name=op.f('fk_approval_actions_on_behalf_of_id_accounts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['request_id'], ['approval_requests.id'], name=op.f('fk_approval_actions_request_id_approval_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_approval_actions')),
    sa.UniqueConstraint('request_id', 'step', 'approver_id', 'action', 'generation', name='uq_approval_actions_once')
    )
    op.create_index('ix_approval_actions_approver', 'approval_actions', ['approver_id', 'created_at'], unique=False)
    if dialect != "sqlite":
        op.create_foreign_key(
            op.f(ACTIVE_VERSION_FK), "rule_sets", "rule_set_versions", ["active_version_id"], ["id"], ondelete="SET NULL"
        )
    for statement in SQLITE_TRIGGERS if dialect == "sqlite" else POSTGRESQL_TRIGGERS if dialect == "postgresql" else []:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_DROP if dialect == "sqlite" else POSTGRESQL_DROP if dialect == "postgresql" else []:
        op.execute(statement)
    if dialect != "sqlite":
        op.drop_constraint(op.f(ACTIVE_VERSION_FK), "rule_sets", type_="foreignkey")
    op.drop_index('ix_approval_eligibility_approver', table_name='approval_eligibility')
    op.drop_table('approval_eligibility')
    op.drop_index('ix_approval_actions_approver', table_name='approval_actions')
    op.drop_table('approval_actions')
    op.drop_index('ix_budget_ledger_scope', table_name='budget_ledger')
    op.drop_index(op.f('ix_budget_ledger_order_id'), table_name='budget_ledger')
    op.drop_table('budget_ledger')
    op.drop_index('ix_approval_requests_inbox', table_name='approval_requests')
    op.drop_index('ix_approval_requests_expiry', table_name='approval_requests')
    op.drop_table('approval_requests')
    op.drop_index('ix_orders_tenant_status_created', table_name='orders')
    op.drop_index(op.f('ix_orders_company_id'), table_name='orders')
    op.drop_index('ix_orders_buyer', table_name='orders')
    op.drop_table('orders')
    op.drop_index(op.f('ix_memberships_group_id'), table_name='memberships')
    op.drop_index(op.f('ix_memberships_company_id'), table_name='memberships')
    op.drop_table('memberships')
    op.drop_index('ix_rule_set_versions_hash', table_name='rule_set_versions')
    op.drop_table('rule_set_versions')
    op.drop_table('locations')
    op.drop_table('groups')
    op.drop_index(op.f('ix_company_contacts_account_id'), table_name='company_contacts')
    op.drop_table('company_contacts')
    op.drop_index('ix_assignments_approver', table_name='assignments')
    op.drop_index('ix_assignments_account', table_name='assignments')
    op.drop_table('assignments')
    op.drop_table('rule_sets')
    op.drop_index(op.f('ix_outbox_events_tenant_id'), table_name='outbox_events')
    op.drop_index('ix_outbox_events_due', table_name='outbox_events')
    op.drop_table('outbox_events')
    op.drop_index(op.f('ix_companies_parent_id'), table_name='companies')
    op.drop_table('companies')
    op.drop_index('ix_audit_events_tenant_created', table_name='audit_events')
    op.drop_index('ix_audit_events_subject', table_name='audit_events')
    op.drop_table('audit_events')
    op.drop_index(op.f('ix_api_keys_tenant_id'), table_name='api_keys')
    op.drop_table('api_keys')
    op.drop_table('admin_users')
    op.drop_table('accounts')
    op.drop_table('tenants')
