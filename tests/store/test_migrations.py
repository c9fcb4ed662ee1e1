"""Migrations: up from empty, down to empty, up again -- on SQLite and PostgreSQL."""

import hashlib
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from argon2 import PasswordHasher
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from approvalrules.store import company_slice, migrate
from approvalrules.store.db import create_engine_for_url
from approvalrules.store.directory_service import DirectoryService
from approvalrules.store.meta import metadata
from approvalrules.store.models import (
    AdminUser,
    ApiKey,
    Company,
    DecisionLogEntry,
    SliceVersion,
    Tenant,
)
from approvalrules.store.services import find_api_key, verify_admin_password


def _tables(url):
    engine = create_engine_for_url(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _insert_tenant(connection) -> int:
    """A tenant row written with plain SQL (the models may be newer than the schema); its id."""
    connection.execute(
        text(
            "insert into tenants (slug, name, settings, created_at)"
            " values ('t', 'T', '{}', CURRENT_TIMESTAMP)"
        )
    )
    return connection.execute(text("select id from tenants")).scalar_one()


def test_upgrade_downgrade_upgrade(empty_database_url):
    url = empty_database_url
    assert _tables(url) == set()
    assert migrate.current(url) is None

    migrate.upgrade(url)
    assert _tables(url) == set(metadata.tables)
    assert migrate.current(url) == migrate.head()

    migrate.downgrade(url)
    assert _tables(url) == set()
    assert migrate.current(url) is None

    migrate.upgrade(url)
    assert _tables(url) == set(metadata.tables)


def test_upgrade_twice_is_a_no_op(empty_database_url):
    migrate.upgrade(empty_database_url)
    migrate.upgrade(empty_database_url)
    assert migrate.current(empty_database_url) == migrate.head()


def test_models_match_the_migration(db_engine):
    """Autogenerate finds nothing to do: the models and the migration agree."""

    with db_engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), metadata
        )
    assert diff == []


def test_0005_keeps_admin_users_and_their_logins(empty_database_url):
    """Upgrading a database filled at 0004: every admin user starts at session generation 0."""
    url = empty_database_url
    migrate.upgrade(url, "0004")
    engine = create_engine_for_url(url)
    try:
        with engine.begin() as connection:
            tenant_id = _insert_tenant(connection)

            connection.execute(
                text(
                    "insert into admin_users (tenant_id, login, password_hash, role, created_at)"
                    " values (:tenant, 'ann', :hash, 'owner', CURRENT_TIMESTAMP)"
                ),
                {"tenant": tenant_id, "hash": PasswordHasher().hash("pw")},
            )
        migrate.upgrade(url)
        with Session(engine) as session:
            user = session.query(AdminUser).one()
            assert (user.login, user.session_generation) == ("ann", 0)
            assert verify_admin_password(user, "pw")
    finally:
        engine.dispose()


def test_0006_makes_existing_api_keys_merchant_keys_that_keep_working(empty_database_url):
    """Upgrading a database filled at 0005: a key of before could call every endpoint, so it
    becomes a merchant key (the scope that still allows all of it) and still authenticates;
    a key created afterwards gets the scope it names."""
    url = empty_database_url
    migrate.upgrade(url, "0005")
    engine = create_engine_for_url(url)
    token = "t" * 43
    try:
        with engine.begin() as connection:
            tenant_id = _insert_tenant(connection)
            for prefix, revoked in (("0a1b2c3d", None), ("4e5f6a7b", "2026-01-01")):
                connection.execute(
                    text(
                        "insert into api_keys (tenant_id, name, prefix, hash, created_at,"
                        " revoked_at) values (:tenant, 'shop', :prefix, :hash,"
                        " CURRENT_TIMESTAMP, :revoked)"
                    ),
                    {
                        "tenant": tenant_id,
                        "prefix": prefix,
                        "hash": hashlib.sha256(token.encode()).hexdigest(),
                        "revoked": revoked,
                    },
                )
        migrate.upgrade(url)
        with Session(engine) as session:
            keys = session.query(ApiKey).order_by(ApiKey.prefix).all()
            assert [(k.prefix, k.scope) for k in keys] == [
                ("0a1b2c3d", "merchant"),
                ("4e5f6a7b", "merchant"),
            ]
            assert find_api_key(session, f"ar_0a1b2c3d_{token}") is keys[0]
            assert find_api_key(session, f"ar_4e5f6a7b_{token}") is None  # still revoked
        with engine.begin() as connection, pytest.raises(IntegrityError):
            connection.execute(
                text(
                    "insert into api_keys (tenant_id, name, prefix, hash, created_at, scope)"
                    " values (:tenant, 'x', '99999999', 'h', CURRENT_TIMESTAMP, 'admin')"
                ),
                {"tenant": tenant_id},
            )
        migrate.downgrade(url, "0005")
        assert "scope" not in {c["name"] for c in inspect(engine).get_columns("api_keys")}
    finally:
        engine.dispose()


def test_0007_keeps_api_keys_on_the_default_rate_and_adds_an_empty_decision_log(
    empty_database_url,
):
    """Upgrading a database filled at 0006: every existing key keeps the service-wide rate
    (no limit of its own) and still authenticates; the decision log starts empty and
    takes entries; downgrading drops it and the column again."""
    url = empty_database_url
    migrate.upgrade(url, "0006")
    engine = create_engine_for_url(url)
    token = "k" * 43
    try:
        with engine.begin() as connection:
            tenant_id = _insert_tenant(connection)
            connection.execute(
                text(
                    "insert into api_keys (tenant_id, name, prefix, hash, created_at, scope)"
                    " values (:tenant, 'shop', '0a1b2c3d', :hash, CURRENT_TIMESTAMP,"
                    " 'storefront')"
                ),
                {"tenant": tenant_id, "hash": hashlib.sha256(token.encode()).hexdigest()},
            )
        migrate.upgrade(url)
        with Session(engine) as session:
            key = session.query(ApiKey).one()
            assert (key.scope, key.rate_per_minute) == ("storefront", None)
            assert find_api_key(session, f"ar_0a1b2c3d_{token}") is key
            assert session.query(DecisionLogEntry).count() == 0
            session.add(
                DecisionLogEntry(
                    tenant_id=tenant_id,
                    decided_at=datetime.now(UTC),
                    kind="evaluate",
                    ruleset="acme",
                    version=1,
                    policy_hash="h" * 64,
                    input_digest="d" * 64,
                    outcome="approved",
                    steps=[],
                )
            )
            session.commit()
            assert session.query(DecisionLogEntry).one().outcome == "approved"
        migrate.downgrade(url, "0006")
        assert "decision_log" not in _tables(url)
        assert "rate_per_minute" not in {c["name"] for c in inspect(engine).get_columns("api_keys")}
    finally:
        engine.dispose()


def test_0008_adds_slice_versions_that_start_empty_and_follow_changes(empty_database_url):
    """Upgrading a database filled at 0007: the company and its members keep working with no
    slice version (read as 0); a change after the upgrade writes the tenant's new directory
    version for the company and is seen by the cached slice; downgrading drops the table."""
    url = empty_database_url
    migrate.upgrade(url, "0007")
    engine = create_engine_for_url(url)
    try:
        with engine.begin() as connection:
            tenant_id = _insert_tenant(connection)
            connection.execute(
                text(
                    "insert into companies (tenant_id, external_id, name, attributes, created_at)"
                    " values (:tenant, 'acme', 'Acme', '{}', CURRENT_TIMESTAMP)"
                ),
                {"tenant": tenant_id},
            )
            connection.execute(
                text(
                    "insert into accounts (tenant_id, external_id, name, email_enabled, active,"
                    " created_at) values (:tenant, 'ann', 'Ann', true, true, CURRENT_TIMESTAMP)"
                ),
                {"tenant": tenant_id},
            )
            connection.execute(
                text(
                    "insert into memberships (account_id, company_id, role, master, is_default,"
                    " status, settings, attributes) select a.id, c.id, 'buyer', false, true,"
                    " 'active', '{}', '{}' from accounts a, companies c"
                )
            )
        migrate.upgrade(url)
        company_slice.clear()
        with Session(engine) as session:
            tenant = session.get(Tenant, tenant_id)
            assert session.query(SliceVersion).count() == 0
            before = company_slice.company_directory(session, tenant, "acme")
            assert before.membership("ann", "acme").role == "buyer"
            DirectoryService(session, tenant).upsert_membership("ann", "acme", role="approver")
            session.commit()
            company = session.query(Company).one()
            assert session.get(SliceVersion, ("company", company.id)).version == (
                tenant.directory_version
            )
            after = company_slice.company_directory(session, tenant, "acme")
            assert after.membership("ann", "acme").role == "approver"
        migrate.downgrade(url, "0007")
        assert "slice_versions" not in _tables(url)
    finally:
        company_slice.clear()
        engine.dispose()
