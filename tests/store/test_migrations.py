"""Migrations: up from empty, down to empty, up again -- on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from approvalrules.store import migrate
from approvalrules.store.db import create_engine_for_url
from approvalrules.store.meta import metadata


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
    assert migrate.current(url) == "0004"

    migrate.downgrade(url)
    assert _tables(url) == set()
    assert migrate.current(url) is None

    migrate.upgrade(url)
    assert _tables(url) == set(metadata.tables)


def test_upgrade_twice_is_a_no_op(empty_database_url):
    migrate.upgrade(empty_database_url)
    migrate.upgrade(empty_database_url)
    assert migrate.current(empty_database_url) == "0004"


def test_models_match_the_migration(db_engine):
    """Autogenerate finds nothing to do: the models and the migration agree."""

    with db_engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), metadata
        )
    assert diff == []
