"""The directory contract, run against the SQL directory on SQLite and PostgreSQL."""

import pytest

from approvalrules.engine.directory_contract import FIXTURE, DirectoryContract
from approvalrules.store.directory import SqlDirectory
from approvalrules.store.services import DirectoryService, ensure_tenant


class TestSqlDirectory(DirectoryContract):
    @pytest.fixture(autouse=True)
    def _session(self, session):
        self.session = session

    def make_directory(self, data):
        tenant = ensure_tenant(self.session, "contract", "Contract")
        DirectoryService(self.session, tenant).load_fixture(data)
        self.session.flush()
        return SqlDirectory(self.session, tenant.id)


def test_tenants_do_not_see_each_other(session):
    one = ensure_tenant(session, "one")
    two = ensure_tenant(session, "two")
    DirectoryService(session, one).load_fixture(FIXTURE)
    DirectoryService(session, two).upsert_company("acme", name="Another Acme")
    assert SqlDirectory(session, two.id).company("acme").name == "Another Acme"
    assert SqlDirectory(session, two.id).account("ann") is None
    assert SqlDirectory(session, two.id).memberships_of_company("acme") == ()
    assert SqlDirectory(session, one.id).company("acme").name == "Acme Corp"


def test_directory_queries_stay_few(session, db_engine):
    """Each method is one query, memoised for the directory's life."""
    from sqlalchemy import event

    tenant = ensure_tenant(session, "queries")
    DirectoryService(session, tenant).load_fixture(FIXTURE)
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
