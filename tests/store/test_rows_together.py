"""``rows_written_together``: an action's append-only rows in one statement on PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from approvalrules.store.db import (
    hold_drawn_ids,
    insert_object,
    insert_rows,
    next_id,
    rows_written_together,
    rows_written_together_by,
)
from approvalrules.store.models import AuditEvent, OutboxEvent


@pytest.fixture
def statements(session):
    """The SQL of every write the session's connection runs from now on (not the reads of
    the suite's webhook-contract check, which runs on the same connection)."""
    seen: list[str] = []

    def listener(connection, cursor, statement, *args):
        if statement.lstrip().upper().startswith(("INSERT", "WITH")):
            seen.append(statement)

    connection = session.connection()
    event.listen(connection, "before_cursor_execute", listener)
    yield seen
    event.remove(connection, "before_cursor_execute", listener)


def _audit(tenant, action):
    return {
        "tenant_id": tenant.id,
        "actor": "ann",
        "action": action,
        "subject_type": "order",
        "subject_id": "o-1",
        "data": {"step": "marketing"},
    }


def _event(tenant, event_type):
    order = {
        "id": "o-1",
        "status": "approved",
        "total": "800",
        "currency": "EUR",
        "type": "regular",
    }
    return {
        "tenant_id": tenant.id,
        "event_type": event_type,
        "payload": {"event": event_type, "order": order},
    }


def _write_an_action(session, tenant):
    insert_rows(session, AuditEvent, [_audit(tenant, "approval.approved")])
    insert_rows(session, OutboxEvent, [_event(tenant, "order_approved")])
    insert_rows(session, OutboxEvent, [_event(tenant, "order_confirmation")])


def test_the_rows_of_a_block_are_one_statement_at_its_end_on_postgresql(
    session, tenant, statements
):
    with rows_written_together(session, AuditEvent, OutboxEvent):
        _write_an_action(session, tenant)
        written_inside = len(statements)
    postgresql = session.get_bind().dialect.name == "postgresql"
    # elsewhere every call writes at once, as outside a block
    assert (written_inside, len(statements)) == ((0, 1) if postgresql else (3, 3))

    audit = session.scalars(
        select(AuditEvent).where(
            AuditEvent.tenant_id == tenant.id, AuditEvent.action == "approval.approved"
        )
    ).all()
    assert [(a.action, a.data) for a in audit] == [("approval.approved", {"step": "marketing"})]
    assert audit[0].created_at is not None  # the column's Python default, filled
    events = session.scalars(
        select(OutboxEvent).where(OutboxEvent.tenant_id == tenant.id).order_by(OutboxEvent.id)
    ).all()
    assert [e.event_type for e in events] == ["order_approved", "order_confirmation"]
    assert events[0].event_id != events[1].event_id
    assert [(e.attempts, e.recipients) for e in events] == [(0, []), (0, [])]


def test_a_block_that_raises_writes_nothing_it_kept(session, tenant):
    class Refused(Exception):
        pass

    kept_by_postgresql = session.get_bind().dialect.name == "postgresql"
    with pytest.raises(Refused), rows_written_together(session, AuditEvent, OutboxEvent):
        _write_an_action(session, tenant)
        raise Refused
    written = session.scalars(
        select(OutboxEvent.event_type).where(OutboxEvent.tenant_id == tenant.id)
    )
    assert len(written.all()) == (0 if kept_by_postgresql else 2)
    # the session writes at once again after the block
    insert_rows(session, AuditEvent, [_audit(tenant, "order.pending")])
    assert (
        session.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == tenant.id)).all()[
            -1
        ]
        == "order.pending"
    )


def test_rows_of_other_tables_and_of_an_inner_block_go_their_usual_way(session, tenant, statements):
    with rows_written_together(session, OutboxEvent):
        insert_rows(session, AuditEvent, [_audit(tenant, "approval.approved")])  # not kept
        assert len(statements) == 1
        with rows_written_together(session, AuditEvent):  # the outer block decides
            insert_rows(session, OutboxEvent, [_event(tenant, "order_approved")])
            insert_rows(session, AuditEvent, [_audit(tenant, "order.approved")])
        inner = len(statements)
    postgresql = session.get_bind().dialect.name == "postgresql"
    assert (inner, len(statements)) == ((2, 3) if postgresql else (3, 3))


def test_a_watcher_reads_each_row_a_statement_of_kept_rows_writes(session, tenant):
    """The test suite's webhook-contract check reads the outbox rows of every INSERT; a
    statement of kept rows names its rows for such watchers."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("rows are kept only on PostgreSQL")
    executed = []

    def watch(connection, statement, multiparams, params, options, result):
        executed.append(rows_written_together_by(statement, result.context.compiled_parameters[0]))

    connection = session.connection()
    event.listen(connection, "after_execute", watch)
    try:
        with rows_written_together(session, AuditEvent, OutboxEvent):
            _write_an_action(session, tenant)
    finally:
        event.remove(connection, "after_execute", watch)
    [rows] = [written for written in executed if written is not None]
    assert [(table.name, row.get("event_type") or row.get("action")) for table, row in rows] == [
        ("audit_events", "approval.approved"),
        ("outbox_events", "order_approved"),
        ("outbox_events", "order_confirmation"),
    ]
    assert rows_written_together_by(select(AuditEvent), {}) is None


def test_the_suite_catches_a_statement_on_a_table_whose_rows_are_kept(
    session, tenant, kept_rows_violations
):
    """Every test runs under a check that no statement reads (or changes) a table while a
    block keeps its new rows; here it is made to fire."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("rows are kept only on PostgreSQL")
    with rows_written_together(session, AuditEvent):
        insert_rows(session, AuditEvent, [_audit(tenant, "approval.approved")])
        session.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == tenant.id)).all()
        session.scalars(select(OutboxEvent.id).where(OutboxEvent.tenant_id == tenant.id)).all()
    found, kept_rows_violations[:] = list(kept_rows_violations), []  # seen: not a failure here
    assert len(found) == 1 and "audit_events" in found[0]


def test_a_block_that_kept_nothing_writes_nothing(session, tenant, statements):
    with rows_written_together(session, AuditEvent, OutboxEvent):
        insert_rows(session, AuditEvent, [])
    assert statements == []


def test_psycopg_parses_a_long_statement_of_kept_rows_once(session, tenant, monkeypatch):
    """A block's statement is longer than psycopg caches by default (50 parameters): the
    engine (``store.db.get_engine``) raises the limit, so the same shape is parsed once."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("PostgreSQL alone writes a block's rows in one statement")
    from psycopg import _queries

    parsed_afresh: list[bytes] = []
    uncached = _queries._query2pg_nocache

    def parsed_again(query, *rest):
        parsed_afresh.append(query)
        return uncached(query, *rest)

    # the cache holds its own reference; the module's name is what an uncached parse calls
    monkeypatch.setattr(_queries, "_query2pg_nocache", parsed_again)
    for _ in range(3):
        with rows_written_together(session, AuditEvent, OutboxEvent):
            for number in range(20):
                insert_rows(session, AuditEvent, [_audit(tenant, f"order.note-{number}")])
            insert_rows(session, OutboxEvent, [_event(tenant, "order_approved")])
    notes = select(AuditEvent.id).where(
        AuditEvent.tenant_id == tenant.id, AuditEvent.action.startswith("order.note-")
    )
    assert len(session.scalars(notes).all()) == 60
    assert not [query for query in parsed_afresh if b"written_0" in query]


def test_an_object_takes_the_id_its_transaction_drew_once_then_returns_its_own(
    session, tenant, statements
):
    """``insert_object`` uses an id held by ``hold_drawn_ids`` (written with the block's
    rows, no RETURNING), once; the next object of the class is written at once."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("ids are drawn from PostgreSQL's sequences")
    from datetime import UTC, datetime

    drawn = session.scalar(select(next_id(AuditEvent)))
    hold_drawn_ids(session, {AuditEvent: drawn})
    values = {**_audit(tenant, "order.drawn"), "created_at": datetime.now(UTC)}
    with rows_written_together(session, AuditEvent, OutboxEvent):
        first = insert_object(session, AuditEvent, values)
        insert_rows(session, OutboxEvent, [_event(tenant, "order_approved")])
        assert statements == []  # kept for the block's end
    [together] = statements
    assert "INSERT INTO audit_events" in together and "RETURNING" not in together
    second = insert_object(session, AuditEvent, {**values, "action": "order.after"})
    assert first.id == drawn and second.id > drawn
    assert "RETURNING" in statements[-1]
    stored = select(AuditEvent.id, AuditEvent.action).where(AuditEvent.id.in_([drawn, second.id]))
    assert sorted(session.execute(stored).all()) == [
        (drawn, "order.drawn"),
        (second.id, "order.after"),
    ]
