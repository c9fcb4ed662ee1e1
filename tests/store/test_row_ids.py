"""Row ids of companies and accounts by external id (``store.directory.row_id``): what a submit
writes on the order, from a per-process cache keyed by the tenant's directory version."""

from __future__ import annotations

from sqlalchemy import event

from approvalrules.store.directory import row_id
from approvalrules.store.directory_service import DirectoryService
from approvalrules.store.models import Account, Company


def _count_statements(session):
    seen: list[str] = []
    event.listen(session.get_bind(), "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_row_ids_come_from_the_database_then_from_the_cache(session, tenant):
    directory = DirectoryService(session, tenant, actor="tests", check_names=False)
    directory.upsert_company("ids-co", name="Ids Co")
    directory.upsert_account("ida", name="Ida")
    session.flush()
    company = session.scalar(Company.__table__.select().where(Company.external_id == "ids-co"))
    account = session.scalar(Account.__table__.select().where(Account.external_id == "ida"))
    # the transaction changed the directory: the database answers, nothing is cached
    assert row_id(session, tenant, Company, "ids-co") == company
    assert row_id(session, tenant, Account, "ida") == account
    session.commit()  # the test's savepoint; the directory change is no longer this transaction's

    seen = _count_statements(session)
    assert row_id(session, tenant, Account, "ida") == account  # read once
    read = len(seen)
    assert row_id(session, tenant, Account, "ida") == account  # then from the cache
    assert row_id(session, tenant, Account, "nobody") is None  # unknown: never cached
    assert row_id(session, tenant, Account, "nobody") is None
    assert len(seen) == read + 2


def test_a_new_directory_version_is_read_afresh(session, tenant):
    directory = DirectoryService(session, tenant, actor="tests", check_names=False)
    directory.upsert_account("ivo", name="Ivo")
    session.commit()
    assert row_id(session, tenant, Account, "ola") is None
    # another directory change: the version moves on, the new account is found
    DirectoryService(session, tenant, actor="tests", check_names=False).upsert_account(
        "ola", name="Ola"
    )
    session.commit()
    session.refresh(tenant)
    assert row_id(session, tenant, Account, "ola") is not None
