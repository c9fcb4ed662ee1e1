"""Database fixtures of the store tests: every test runs on SQLite and, when configured, PostgreSQL.

* ``db_engine`` (session scope, parametrized ``sqlite`` / ``postgresql``): a
  fresh, migrated database per test session -- a temporary SQLite file, or a
  new PostgreSQL database created beside the one named by
  ``APPROVALRULES_TEST_DATABASE_URL`` and dropped at the end.
* ``session``: one connection, one outer transaction rolled back after the
  test; the session works in a savepoint, so tests are fast and isolated.
* ``empty_database_url``: a brand-new empty database, for migration tests.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy.orm import Session

from approvalrules.store import migrate
from approvalrules.store.db import create_engine_for_url
from approvalrules.store.services import ensure_tenant
from approvalrules.store.testing import create_postgres_database, drop_postgres_database

DATABASE_ENV = "APPROVALRULES_TEST_DATABASE_URL"
SKIP_MESSAGE = f"PostgreSQL not configured: set {DATABASE_ENV}"


def _postgres_url() -> str:
    url = os.environ.get(DATABASE_ENV)
    if not url:
        pytest.skip(SKIP_MESSAGE)
    return url


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_url(request, tmp_path_factory):
    """URL of this test session's migrated database, per dialect."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.sqlite'}"
        migrate.upgrade(url)
        yield url
        return
    url = create_postgres_database(_postgres_url())
    try:
        migrate.upgrade(url)
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture(scope="session")
def db_engine(db_url):
    engine = create_engine_for_url(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def dialect(db_engine) -> str:
    return db_engine.dialect.name


@pytest.fixture
def session(db_engine):
    """A session inside a transaction that is rolled back after the test."""
    connection = db_engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def tenant(session):
    return ensure_tenant(session, "acme-store", "ACME store")


@pytest.fixture
def postgres_only(dialect):
    if dialect != "postgresql":
        pytest.skip("PostgreSQL only")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request, tmp_path):
    """A new, empty database (not migrated) for this test alone."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite'}"
        return
    url = create_postgres_database(_postgres_url(), prefix="ar_empty")
    try:
        yield url
    finally:
        drop_postgres_database(url)
