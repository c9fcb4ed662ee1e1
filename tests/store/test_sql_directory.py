"""The directory contract, run against the SQL directory and the snapshot, on SQLite and
PostgreSQL; and the one place that chooses between them (``directory_for``)."""

import pytest
from sqlalchemy import event

from approvalrules.engine.directory import MemoryDirectory
from approvalrules.engine.directory_contract import FIXTURE, DirectoryContract
from approvalrules.store.directory import (
    SqlDirectory,
    directory_for,
    load_memory_directory,
    snapshot,
)
from approvalrules.store.directory_service import DirectoryService
from approvalrules.store.services import ensure_tenant
from approvalrules.store.testing import load_fixture


class TestSqlDirectory(DirectoryContract):
    @pytest.fixture(autouse=True)
    def _session(self, session):
        self.session = session

    def make_directory(self, data):
        tenant = ensure_tenant(self.session, "contract", "Contract")
        load_fixture(self.session, tenant, data)
        self.session.flush()
        return SqlDirectory(self.session, tenant.id)


class TestSnapshotDirectory(DirectoryContract):
    """The snapshot production evaluates against: the whole directory read into memory.

    Built with ``load_memory_directory``, what ``snapshot`` caches: the cache is keyed by
    tenant id and directory version, which repeat between these rolled-back tests.
    """

    @pytest.fixture(autouse=True)
    def _session(self, session):
        self.session = session

    def make_directory(self, data):
        tenant = ensure_tenant(self.session, "contract", "Contract")
        load_fixture(self.session, tenant, data)
        self.session.flush()
        return load_memory_directory(self.session, tenant.id)


def test_tenants_do_not_see_each_other(session):
    one = ensure_tenant(session, "one")
    two = ensure_tenant(session, "two")
    load_fixture(session, one, FIXTURE)
    DirectoryService(session, two).upsert_company("acme", name="Another Acme")
    assert SqlDirectory(session, two.id).company("acme").name == "Another Acme"
    assert SqlDirectory(session, two.id).account("ann") is None
    assert SqlDirectory(session, two.id).memberships_of_company("acme") == ()
    assert SqlDirectory(session, one.id).company("acme").name == "Acme Corp"
    assert load_memory_directory(session, two.id).account("ann") is None
    assert load_memory_directory(session, one.id).company("acme").name == "Acme Corp"


def test_directory_queries_stay_few(session, db_engine):
    """Each method is one query, memoised for the directory's life."""
    tenant = ensure_tenant(session, "queries")
    load_fixture(session, tenant, FIXTURE)
    session.flush()
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(session.connection(), "before_cursor_execute", listener)
    try:
        directory = SqlDirectory(session, tenant.id)
        for _ in range(3):
            directory.memberships_of_company("acme")
            directory.assignments_for("Bob", "acme")
            directory.company("acme")
    finally:
        event.remove(session.connection(), "before_cursor_execute", listener)
    assert len(statements) == 3


def test_directory_for_is_the_snapshot_when_the_transaction_changed_nothing(session):
    tenant = ensure_tenant(session, "unchanged")
    load_fixture(session, tenant, FIXTURE)
    session.commit()  # ends the savepoint: the changes are no longer this transaction's
    directory = directory_for(session, tenant)
    assert isinstance(directory, MemoryDirectory)
    assert directory is snapshot(session, tenant)


def test_directory_for_reads_live_rows_after_a_change_in_the_transaction(session):
    """A transaction bumps the directory version once: a snapshot cached under it would miss
    the changes made after, so the transaction that changes the directory reads it live."""
    tenant = ensure_tenant(session, "changing")
    service = load_fixture(session, tenant, FIXTURE)
    assert isinstance(directory_for(session, tenant), SqlDirectory)
    service.upsert_company("acme", name="Acme Renamed")
    assert directory_for(session, tenant).company("acme").name == "Acme Renamed"
