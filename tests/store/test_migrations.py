"""Migrations: up from empty, down to empty, up again -- on SQLite and PostgreSQL."""

from argon2 import PasswordHasher
from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from approvalrules.store import migrate
from approvalrules.store.db import create_engine_for_url
from approvalrules.store.meta import metadata
from approvalrules.store.models import AdminUser
from approvalrules.store.services import verify_admin_password


def _tables(url):
    engine = create_engine_for_url(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(empty_database_url):
    url = empty_database_url
    assert _tables(url) == set()
    assert migrate.current(url) is None

    migrate.upgrade(url)
    assert _tables(url) == set(metadata.tables)
    assert migrate.current(url) == "0005"

    migrate.downgrade(url)
    assert _tables(url) == set()
    assert migrate.current(url) is None

    migrate.upgrade(url)
    assert _tables(url) == set(metadata.tables)


def test_upgrade_twice_is_a_no_op(empty_database_url):
    migrate.upgrade(empty_database_url)
    migrate.upgrade(empty_database_url)
    assert migrate.current(empty_database_url) == "0005"


def test_models_match_the_migration(db_engine):
    """Autogenerate finds nothing to do: the models and the migration agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

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
            connection.execute(
                text(
                    "insert into tenants (slug, name, settings, created_at)"
                    " values ('t', 'T', '{}', CURRENT_TIMESTAMP)"
                )
            )
            tenant_id = connection.execute(text("select id from tenants")).scalar_one()

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
