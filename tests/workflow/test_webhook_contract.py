"""The webhook contract: schemas/webhook.schema.json names every event type the workflow
emits, and the suite-wide check (tests/conftest.py) flags an event off the schema.

Every outbox event written anywhere in the suite is checked as the webhook would deliver it;
the run ends with the count per type ("webhook contract: events checked by type: ...").
"""

from __future__ import annotations

import uuid

from approvalrules.engine import schema
from approvalrules.store.models import OutboxEvent
from approvalrules.workflow import events
from approvalrules.workflow.events import EVENTS


def test_the_schema_names_exactly_the_events_the_workflow_emits():
    webhook = schema("webhook")
    assert webhook["properties"]["type"]["enum"] == list(EVENTS)
    assert set(EVENTS) <= set(webhook["$defs"])
    for event in EVENTS:
        assert webhook["$defs"][event]["properties"]["event"] == {"const": event}


def _body(data: dict, event_type: str = "order_approved") -> dict:
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "tenant": "demo",
        "created_at": "2026-11-27T10:00:00+00:00",
        "data": data,
    }


ORDER = {
    "id": "PO-1",
    "status": "approved",
    "total": "800.00",
    "currency": "USD",
    "type": "regular",
}


def test_a_delivery_is_checked_against_its_own_event_type(webhook_checks):
    check_webhook_delivery, _ = webhook_checks
    assert check_webhook_delivery(_body({"event": "order_approved", "order": ORDER})) == []
    # approval_reversed requires who reversed and what was reversed
    problems = check_webhook_delivery(
        _body({"event": "approval_reversed", "order": ORDER}, "approval_reversed")
    )
    assert any("'was' is a required property" in p for p in problems)
    undocumented = check_webhook_delivery(
        _body({"event": "order_approved", "order": ORDER, "secret_field": 1})
    )
    assert any("secret_field" in p for p in undocumented)
    assert check_webhook_delivery(_body({"event": "order_approved", "order": ORDER}, "nope"))


def test_an_emitted_event_off_the_schema_is_caught_where_it_is_written(
    session, tenant, webhook_checks
):
    _, violations = webhook_checks
    session.add(
        OutboxEvent(
            tenant_id=tenant.id,
            event_type="order_cancelled",
            payload={"event": "order_cancelled", "order": ORDER, "reason": "bored"},
            recipients=[],
        )
    )
    session.flush()
    found = list(violations)
    violations.clear()  # this test's own bad event must not fail it at teardown
    assert found and "order_cancelled: data/reason" in found[0] and "bored" in found[0]


def test_an_event_written_with_a_core_insert_is_checked_too(session, tenant, webhook_checks):
    # the workflow writes its events with Core inserts (events.queue), not the unit of work
    _, violations = webhook_checks
    row = {
        "tenant_id": tenant.id,
        "event_type": "order_cancelled",
        "payload": {"event": "order_cancelled", "order": ORDER, "reason": "bored"},
        "recipients": [],
    }
    events.queue(session, [row, {**row, "payload": {**row["payload"], "reason": "rejected"}}])
    found = list(violations)
    violations.clear()  # this test's own bad event must not fail it at teardown
    assert len(found) == 1 and "order_cancelled: data/reason" in found[0] and "bored" in found[0]
