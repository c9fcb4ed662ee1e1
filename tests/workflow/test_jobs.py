"""The expiry job, called directly on the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
