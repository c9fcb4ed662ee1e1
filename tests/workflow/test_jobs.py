"""The expiry job, called directly on the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from approvalrules.store.models import OutboxEvent
from approvalrules.workflow import actions, jobs, queries

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_request_expires_after_seven_days_and_not_before(session, shop):
    order, _ = actions.submit(
        session, shop, {"id": "o-expire", "buyer": "bea", "total": 800}, now=NOW
    )
    request = queries.request_for_order(session, order)
    expires = NOW + timedelta(days=7)
    assert queries.aware(request.expires_at) == expires

    assert jobs.expire_due(session, now=expires - timedelta(seconds=1)) == 0
    assert request.status == "pending"

    assert jobs.expire_due(session, now=expires + timedelta(seconds=1)) == 1
    assert (request.status, order.status) == ("expired", "expired")
    # decided requests are never expired again
    assert jobs.expire_due(session, now=expires + timedelta(days=1)) == 0


def escalated(session, shop, order_id: str, *, strip_base: bool = False):
    order, _ = actions.submit(session, shop, {"id": order_id, "buyer": "ed", "total": 800}, now=NOW)
    request = queries.request_for_order(session, order)
    if strip_base:
        # as a request stored before steps recorded their base step
        request.steps = [{k: v for k, v in s.items() if k != "base"} for s in request.steps]
        session.flush()
    assert jobs.escalate_due(session, now=NOW + timedelta(minutes=59)) == 0
    assert jobs.escalate_due(session, now=NOW + timedelta(hours=1)) == 1
    return order, request


def test_a_timed_out_step_escalates_and_each_target_hears_by_its_own_channel(session, shop):
    order, request = escalated(session, shop, "o-escalate")
    step = request.steps[0]
    assert step["escalated_at"] == "2026-03-02T10:00:00Z"
    assert {a["account"]: a["email"] for a in step["approvers"]} == {
        "max": True,
        "dirk": True,
        "dora": False,  # her membership turns e-mail off
    }
    session.flush()
    [event] = session.scalars(
        select(OutboxEvent).where(OutboxEvent.event_type == "approval_escalated")
    ).all()
    assert {r["account"]: r["channel"] for r in event.recipients} == {
        "dirk": "email",
        "dora": "inbox",
    }
    assert event.payload["after"] == "PT1H"
    # the new approvers may decide the step
    actions.approve(session, shop, request.id, "dora", now=NOW + timedelta(hours=2))
    assert order.status == "approved"


def test_a_request_stored_before_steps_recorded_their_base_still_escalates(session, shop):
    _, request = escalated(session, shop, "o-legacy", strip_base=True)
    assert [a["account"] for a in request.steps[0]["approvers"]] == ["max", "dirk", "dora"]
