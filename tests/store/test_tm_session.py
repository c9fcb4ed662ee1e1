"""Sessions whose commit belongs to a transaction manager (pyramid_tm's, one per request):
zope.sqlalchemy's hooks reach each session through listeners its factory holds once."""

from __future__ import annotations

import pytest
import transaction
from sqlalchemy import create_engine, event, select
from sqlalchemy.orm import sessionmaker

from approvalrules.store import migrate
from approvalrules.store.db import core_write, get_tm_session
from approvalrules.store.models import Tenant


@pytest.fixture
def factory(tmp_path):
    url = f"sqlite:///{tmp_path / 'tm.sqlite'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    yield sessionmaker(bind=engine)
    engine.dispose()


def slugs(factory) -> list[str]:
    with factory() as session:
        return sorted(session.scalars(select(Tenant.slug)))


def test_each_session_commits_and_aborts_with_its_own_manager(factory):
    first, second = (transaction.TransactionManager(explicit=True) for _ in range(2))
    first.begin()
    second.begin()
    one = get_tm_session(factory, first)
    other = get_tm_session(factory, second)
    one.add(Tenant(slug="committed", name="Committed"))
    one.flush()
    first.commit()  # SQLite has one writer at a time: the other writes after
    other.add(Tenant(slug="aborted", name="Aborted"))
    other.flush()
    second.abort()
    assert slugs(factory) == ["committed"]


def test_a_core_write_alone_is_committed_too(factory):
    manager = transaction.TransactionManager(explicit=True)
    manager.begin()
    session = get_tm_session(factory, manager)
    core_write(session, Tenant.__table__.insert().values(slug="core", name="Core"))
    manager.commit()
    assert slugs(factory) == ["core"]


def test_a_session_of_a_manager_is_not_committed_by_hand(factory):
    manager = transaction.TransactionManager(explicit=True)
    manager.begin()
    session = get_tm_session(factory, manager)
    session.add(Tenant(slug="by-hand", name="By hand"))
    with pytest.raises(AssertionError, match="committed using the transaction manager"):
        session.commit()
    manager.abort()
    assert slugs(factory) == []


def test_a_session_without_a_manager_is_left_alone(factory):
    get_tm_session(factory, transaction.TransactionManager(explicit=True))  # the factory listens
    with factory() as session:
        session.add(Tenant(slug="plain", name="Plain"))
        session.commit()
    assert slugs(factory) == ["plain"]


def test_the_factory_listens_once_however_many_sessions_it_makes(factory):
    for _ in range(3):
        get_tm_session(factory, transaction.TransactionManager(explicit=True)).close()
    session = factory()
    try:
        listeners = [
            fn for fn in session.dispatch.after_begin if getattr(fn, "__name__", "") == "forward"
        ]
    finally:
        session.close()
    assert len(listeners) == 1
    assert not event.contains(session, "after_begin", listeners[0])  # not one per session
