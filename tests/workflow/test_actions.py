"""Submit, approve, reject, reverse and the approver guard, called directly on the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm.exc import StaleDataError

from approvalrules.errors import Conflict, Forbidden
from approvalrules.store.models import ApprovalEligibility, ApprovalRequest, Order, OutboxEvent
from approvalrules.workflow import actions, queries, transitions

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def submit(session, tenant, order_id: str, total: int, buyer: str = "bea"):
    order, created = actions.submit(
        session, tenant, {"id": order_id, "buyer": buyer, "total": total}, now=NOW
    )
    assert created
    return order, queries.request_for_order(session, order)


def event_types(session, order) -> list[str]:
    session.flush()
    return [
        e.event_type
        for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
        if e.payload["order"]["id"] == order.external_id
    ]


def eligible(session, request) -> list[tuple[int, str, str]]:
    session.flush()
    return [
        (row.step_index, row.account_id, row.status)
        for row in session.scalars(
            select(ApprovalEligibility).where(ApprovalEligibility.request_id == request.id)
        )
    ]


def test_an_order_over_the_threshold_waits_for_the_manager_who_approves_it(session, shop):
    order, request = submit(session, shop, "o-approve", 800)
    assert (order.status, request.status, request.current_step) == ("pending", "pending", 0)
    assert eligible(session, request) == [(0, "max", "pending")]
    assert request.steps[0]["base"] == "manager" and "group_of" not in request.steps[0]

    actions.approve(session, shop, request.id, "max", comment="fine", now=NOW)

    assert (request.status, order.status, request.decided_at) == ("approved", "approved", NOW)
    assert eligible(session, request) == [(0, "max", "approved")]
    assert event_types(session, order)[-2:] == ["order_approved", "order_confirmation"]


def test_an_order_under_the_threshold_is_approved_without_a_request(session, shop):
    order, request = submit(session, shop, "o-small", 300)
    assert order.status == "approved" and request is None


def test_a_decided_request_refuses_another_decision_naming_who_decided(session, shop):
    _, request = submit(session, shop, "o-twice", 800)
    actions.approve(session, shop, request.id, "max", now=NOW)
    with pytest.raises(Conflict) as refused:
        actions.reject(session, shop, request.id, "max", now=NOW)
    assert refused.value.code == "already_decided"
    assert refused.value.message == f"approval request {request.id} is already approved by max"


def test_a_rejection_cancels_the_order_and_tells_the_buyer(session, shop):
    order, request = submit(session, shop, "o-reject", 800)
    actions.reject(session, shop, request.id, "max", comment="too dear", now=NOW)
    assert (request.status, order.status) == ("rejected", "rejected")
    assert event_types(session, order)[-2:] == ["order_rejected", "order_cancelled"]


def test_a_reversal_reopens_the_request_from_its_first_step(session, shop):
    order, request = submit(session, shop, "o-reverse", 800)
    actions.approve(session, shop, request.id, "max", now=NOW)
    later = NOW + timedelta(hours=1)

    actions.reverse(session, shop, request.id, "max", comment="wait", now=later)

    assert (request.status, order.status, request.generation) == ("pending", "pending", 1)
    assert (request.current_step, request.decided_at, request.step_started_at) == (0, None, later)
    assert eligible(session, request) == [(0, "max", "pending")]
    assert event_types(session, order)[-2:] == ["approval_reversed", "approval_requested"]
    # the earlier approval belongs to the old generation: the manager approves anew
    actions.approve(session, shop, request.id, "max", now=later)
    assert request.status == "approved"


@pytest.mark.parametrize("act", ["approve", "reject", "edit"])
def test_the_approver_guard_refuses_an_account_the_step_does_not_name(session, shop, act):
    order, request = submit(session, shop, "o-guard-" + act, 800)
    call = {
        "approve": lambda: actions.approve(session, shop, request.id, "olga"),
        "reject": lambda: actions.reject(session, shop, request.id, "olga"),
        "edit": lambda: actions.edit(session, shop, request.id, "olga", []),
    }[act]
    with pytest.raises(Forbidden) as refused:
        call()
    assert refused.value.code == "not_eligible"
    assert refused.value.details == {"step": "manager", "eligible": ["max"]}
    assert (request.status, order.status, request.actions) == ("pending", "pending", [])


def test_masters_hear_of_an_approved_group_order_by_their_own_channel(session, shop):
    order, request = submit(session, shop, "o-master", 800, buyer="gus")
    actions.approve(session, shop, request.id, "max", now=NOW)
    session.flush()
    [event] = session.scalars(
        select(OutboxEvent).where(OutboxEvent.event_type == "master_confirmation")
    ).all()
    # the engine's rule: Mara's membership turns e-mail off
    assert {r["account"]: r["channel"] for r in event.recipients} == {
        "mo": "email",
        "mara": "inbox",
    }


def test_closing_a_request_written_since_it_was_read_writes_nothing(session, shop):
    # the close's UPDATEs (one statement on PostgreSQL, three on SQLite) are conditional on
    # the version the request was read at, as the ORM's would be
    order, request = submit(session, shop, "o-stale", 800)
    session.flush()
    requests = ApprovalRequest.__table__
    session.execute(
        update(requests)
        .where(requests.c.id == request.id)
        .values(version_id=requests.c.version_id + 1)
    )
    with pytest.raises(StaleDataError):
        transitions._write_close(session, request, order, "approved", "approved", NOW)
    stored = session.execute(
        select(requests.c.status, Order.__table__.c.status)
        .join(Order.__table__, Order.__table__.c.id == requests.c.order_id)
        .where(requests.c.id == request.id)
    ).one()
    assert tuple(stored) == ("pending", "pending")
    assert session.scalars(
        select(ApprovalEligibility.__table__.c.status).where(
            ApprovalEligibility.__table__.c.request_id == request.id
        )
    ).all() == ["pending"]


def test_an_approval_rolled_back_with_its_savepoint_leaves_the_request_as_it_was(session, shop):
    # the approval writes with Core statements and sets the new state on the objects itself;
    # a rolled-back savepoint (a bulk action's) must not leave them looking approved
    order, request = submit(session, shop, "o-savepoint", 800)

    class Undone(Exception):
        pass

    with pytest.raises(Undone), session.begin_nested():
        actions.approve(session, shop, request.id, "max", now=NOW)
        assert (request.status, order.status, len(request.actions)) == ("approved", "approved", 1)
        raise Undone

    assert (request.status, order.status, request.actions) == ("pending", "pending", [])
    assert eligible(session, request) == [(0, "max", "pending")]
    actions.approve(session, shop, request.id, "max", now=NOW)
    assert (request.status, order.status, len(request.actions)) == ("approved", "approved", 1)
