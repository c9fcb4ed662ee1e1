"""The workflow end to end: escalation, merchant review, pending orders when
rules change, approver edits.

Everything runs in tenant ``beyond`` (tests/api/beyond/: its own rule sets and
directory), so the shared sample data of tenant ``demo`` is never changed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from approvalrules.store.models import AuditEvent, OutboxEvent
from approvalrules.store.services import resolve_tenant
from approvalrules.workflow import actions, jobs


def submit(api, order_id, buyer, total, **extra):
    return api.post_json(
        "/api/v1/orders", {"id": order_id, "buyer": buyer, "total": total, **extra}, status="*"
    )


def events_of(world, order_id: str, kind: str | None = None) -> list[OutboxEvent]:
    with world.session() as session:
        rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        return [
            e
            for e in rows
            if e.payload["order"]["id"] == order_id and (kind is None or e.event_type == kind)
        ]


def audit_actions(world, order_id: str) -> list[str]:
    with world.session() as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.subject_type == "order", AuditEvent.subject_id == order_id)
                .order_by(AuditEvent.id)
            )
        )


def tenant_run(world, job):
    return world.run(lambda session: job(session, resolve_tenant(session, "beyond")))


# ------------------------------------------------------------------ escalation


def test_escalation_reminds_first_then_escalates_then_approves_on_timeout(beyond, world, order_id):
    oid = order_id("ESC")
    approval = submit(beyond, oid, "eva", 6000).json["approval"]
    assert [(s["name"], s["approvers"]) for s in approval["steps"]] == [
        ("manager", ["emil"]),
        ("finance", ["edda"]),
    ]
    created = datetime.fromisoformat(approval["created_at"].replace("Z", "+00:00"))

    # before escalate_after nothing happens
    assert world.run(lambda s: jobs.expire_due(s, now=created + timedelta(days=1))) == 0
    # past P2D: reminders are configured, so the approvers are reminded first ...
    later = created + timedelta(days=2, minutes=1)
    assert world.run(lambda s: jobs.expire_due(s, now=later)) == 0
    reminders = events_of(world, oid, "approval_reminder")
    assert len(reminders) == 1 and [r["account"] for r in reminders[0].recipients] == ["emil"]
    assert reminders[0].payload["reason"] == "before_escalation"
    assert not events_of(world, oid, "approval_escalated")
    # ... and the next run escalates to the directors, keeping the manager
    assert world.run(lambda s: jobs.expire_due(s, now=later + timedelta(minutes=5))) == 1
    detail = beyond.get(f"/api/v1/approvals/{approval['id']}").json
    assert detail["status"] == "pending" and detail["current_step"] == 0
    assert [a["account"] for a in detail["steps"][0]["approvers"]] == ["emil", "edda"]
    assert detail["steps"][0]["escalated_at"] and detail["steps"][0]["approvers"][1]["why"] == [
        "escalated from step manager after P2D"
    ]
    escalated = events_of(world, oid, "approval_escalated")
    assert len(escalated) == 1 and [
        (r["account"], r["channel"]) for r in escalated[0].recipients
    ] == [("edda", "email")]
    assert escalated[0].payload["escalated_from"] == ["emil"]
    # the inbox index knows the new approver; running the job again changes nothing
    inbox = beyond.get("/api/v1/approvals", {"approver": "edda", "status": "pending"}).json
    assert approval["id"] in [i["id"] for i in inbox["items"]]
    assert world.run(lambda s: jobs.expire_due(s, now=later + timedelta(minutes=10))) == 0

    # the escalation target approves the manager step; finance (edda) then times out: approved by
    # the system
    assert (
        beyond.post_json(f"/api/v1/approvals/{approval['id']}/approve", {"approver": "edda"}).json[
            "current_step"
        ]
        == 1
    )
    started = datetime.now(UTC)
    world.run(lambda s: jobs.expire_due(s, now=started + timedelta(days=1, minutes=1)))
    world.run(lambda s: jobs.expire_due(s, now=started + timedelta(days=1, minutes=2)))
    done = beyond.get(f"/api/v1/approvals/{approval['id']}").json
    assert done["status"] == "approved" and done["steps"][1]["approved_by_system"] is True
    assert beyond.get(f"/api/v1/orders/{oid}").json["status"] == "approved"
    assert events_of(world, oid, "order_approved")
    actions = audit_actions(world, oid)
    assert "approval.escalated" in actions and "approval.approved_on_timeout" in actions


def test_escalation_at_the_request_expiry_pushes_it_then_it_expires(beyond, world, order_id):
    oid = order_id("EXP")
    approval = submit(beyond, oid, "eva", 2000).json["approval"]
    expires = datetime.fromisoformat(approval["expires_at"].replace("Z", "+00:00"))
    # the manager step escalates (to edda) instead of expiring: after reminder + escalation the
    # request lives on
    world.run(lambda s: jobs.expire_due(s, now=expires + timedelta(minutes=1)))
    world.run(lambda s: jobs.expire_due(s, now=expires + timedelta(minutes=2)))
    detail = beyond.get(f"/api/v1/approvals/{approval['id']}").json
    assert detail["status"] == "pending" and [
        a["account"] for a in detail["steps"][0]["approvers"]
    ] == ["emil", "edda"]
    # once escalated, the (pushed) expiry cancels it as today
    pushed = datetime.fromisoformat(detail["expires_at"].replace("Z", "+00:00"))
    assert pushed > expires
    world.run(lambda s: jobs.expire_due(s, now=pushed + timedelta(minutes=1)))
    assert beyond.get(f"/api/v1/orders/{oid}").json["status"] == "expired"


# ------------------------------------------------------------- merchant review


def test_merchant_review_after_the_last_step(beyond, world, order_id):
    oid = order_id("MR")
    approval = submit(beyond, oid, "mara", 1500).json["approval"]
    assert [s["name"] for s in approval["steps"]] == ["manager", "merchant-review"]
    after = beyond.post_json(
        f"/api/v1/approvals/{approval['id']}/approve", {"approver": "moritz"}
    ).json
    assert (
        after["status"] == "pending"
        and after["current_step"] == 1
        and after["steps"][1]["merchant"] is True
    )
    # the customer's approvers cannot decide the merchant's step
    refused = beyond.post_json(
        f"/api/v1/approvals/{approval['id']}/approve", {"approver": "moritz"}, status=403
    ).json["error"]
    assert refused["code"] == "merchant_review"
    # only owners and editors among the merchant's admins
    from approvalrules.errors import Forbidden

    with pytest.raises(Forbidden) as viewer:
        tenant_run(world, lambda s, t: actions.merchant_decide(s, t, approval["id"], "peek", True))
    assert viewer.value.code == "read_only_admin"
    with pytest.raises(Forbidden):
        tenant_run(
            world, lambda s, t: actions.merchant_decide(s, t, approval["id"], "nobody", True)
        )
    status = tenant_run(
        world,
        lambda s, t: actions.merchant_decide(s, t, approval["id"], "boss", True, "fine").status,
    )
    assert status == "approved"
    detail = beyond.get(f"/api/v1/approvals/{approval['id']}").json
    assert detail["steps"][1]["decided_by"] == "admin:boss"
    assert beyond.get(f"/api/v1/orders/{oid}").json["status"] == "approved"
    assert events_of(
        world, oid, "order_approved"
    ) and "approval.merchant_approved" in audit_actions(world, oid)

    # a merchant rejection cancels the order; a request not yet in review is refused
    other = order_id("MR")
    second = submit(beyond, other, "mara", 1500).json["approval"]["id"]
    from approvalrules.errors import Conflict

    with pytest.raises(Conflict):
        tenant_run(world, lambda s, t: actions.merchant_decide(s, t, second, "boss", True))
    beyond.post_json(f"/api/v1/approvals/{second}/approve", {"approver": "moritz"})
    assert (
        tenant_run(
            world,
            lambda s, t: (
                actions.merchant_decide(s, t, second, "boss", False, "not this supplier").status
            ),
        )
        == "rejected"
    )
    assert beyond.get(f"/api/v1/orders/{other}").json["status"] == "rejected"
    assert [e.payload.get("comment") for e in events_of(world, other, "order_rejected")] == [
        "not this supplier"
    ]


# ------------------------------------------------ pending orders when rules change


REEVAL_TESTS = """
tests:
  - name: 6000 is over the new maximum of 5500
    order: {buyer: rolf, total: 6000}
    expect: {outcome: blocked, steps: []}
  - name: 4500 needs the manager alone
    order: {buyer: rolf, total: 4500}
    expect: {outcome: pending, steps: [{name: manager, approvers: [ruth]}]}
  - name: 3000 needs nobody any more
    order: {buyer: rolf, total: 3000}
    expect: {outcome: approved, steps: []}
"""


def test_pending_requests_reevaluated_on_publish_and_rollback(beyond, world, order_id):
    before = beyond.get("/api/v1/rulesets/beyond-reeval").json
    old_text, old_number = before["text"], before["active"]["number"]
    small, middle, large = order_id("RE"), order_id("RE"), order_id("RE")
    submit(beyond, small, "rolf", 3000)
    mid_id = submit(beyond, middle, "rolf", 4500).json["approval"]["id"]
    large_id = submit(beyond, large, "rolf", 6000).json["approval"]["id"]
    beyond.post_json(
        f"/api/v1/approvals/{mid_id}/approve", {"approver": "ruth"}
    )  # -> approved (one step)
    mid2 = order_id("RE")
    mid2_id = submit(beyond, mid2, "rolf", 4500).json["approval"]["id"]

    new_text = old_text.replace("when: {total: {gt: 1000}}", "when: {total: {gt: 4000}}").replace(
        "approval:\n", "limits:\n  max_order_total: 5500\napproval:\n", 1
    )
    # the embedded tests of the new rules (publishing runs them)
    new_text = new_text.split("\ntests:\n")[0] + REEVAL_TESTS
    assert new_text != old_text
    try:
        published = beyond.post(
            "/api/v1/rulesets/beyond-reeval/publish",
            new_text.encode(),
            content_type="application/yaml",
            status=201,
        ).json
        assert published["pending"]["mode"] == "reevaluate"
        assert published["pending"]["reevaluated"] == {
            small: "approved",
            mid2: "pending",
            large: "blocked",
        }
        # 3000: approved now, with both decisions on record
        order = beyond.get(f"/api/v1/orders/{small}").json
        assert order["status"] == "approved" and order["ruleset_version"] == published["number"]
        assert order["previous_decisions"][0]["ruleset_version"] == old_number
        assert (
            order["previous_decisions"][0]["decision"]["outcome"] == "pending"
            and order["previous_decisions"][0]["reason"] == "new_version"
        )
        assert events_of(world, small, "order_approved")
        # 4500: still pending, steps replaced
        detail = beyond.get(f"/api/v1/approvals/{mid2_id}").json
        assert detail["status"] == "pending" and [s["name"] for s in detail["steps"]] == ["manager"]
        # 6000: over the new maximum -> blocked, request closed, buyer told
        assert beyond.get(f"/api/v1/orders/{large}").json["status"] == "blocked"
        assert beyond.get(f"/api/v1/approvals/{large_id}").json["status"] == "rejected"
        assert [e.payload["reason"] for e in events_of(world, large, "order_cancelled")] == [
            "blocked"
        ]
        # decided requests are never touched
        assert beyond.get(f"/api/v1/orders/{middle}").json.get("previous_decisions") is None
    finally:
        rolled = beyond.post(f"/api/v1/rulesets/beyond-reeval/rollback?to={old_number}").json
    # the rollback re-evaluates again: 4500 is back to the manager of the old rules
    assert rolled["pending"]["reevaluated"] == {mid2: "pending"}
    assert len(beyond.get(f"/api/v1/orders/{mid2}").json["previous_decisions"]) == 2
    assert (
        beyond.post_json(f"/api/v1/approvals/{mid2_id}/approve", {"approver": "ruth"}).json[
            "status"
        ]
        == "approved"
    )


def test_keep_leaves_pending_requests_alone(beyond, order_id):
    oid = order_id("KEEP")
    request_id = submit(beyond, oid, "mara", 1500).json["approval"]["id"]
    before = beyond.get("/api/v1/rulesets/beyond-merchant").json
    text = (
        before["text"]
        .replace("gt: 1000", "gt: 2000")
        # its embedded test follows the new threshold (publishing runs it)
        .replace("orders above 1000 need", "orders above 2000 need")
        .replace("{buyer: mara, total: 1500}", "{buyer: mara, total: 2500}")
    )
    try:
        published = beyond.post(
            "/api/v1/rulesets/beyond-merchant/publish",
            text.encode(),
            content_type="application/yaml",
            status=201,
        ).json
        assert published["pending"] == {
            "ruleset": "beyond-merchant",
            "mode": "keep",
            "reevaluated": {},
            "skipped": [],
        }
        assert beyond.get(f"/api/v1/approvals/{request_id}").json["status"] == "pending"
        assert (
            beyond.get(f"/api/v1/orders/{oid}").json["ruleset_version"]
            == before["active"]["number"]
        )
    finally:
        beyond.post(f"/api/v1/rulesets/beyond-merchant/rollback?to={before['active']['number']}")


# ------------------------------------------------------------- approver edits


LINES = [{"sku": "A", "quantity": 10, "price": 500}, {"sku": "B", "quantity": 2, "price": 600}]


def test_approver_lowers_quantities_order_reevaluated_buyer_told(beyond, world, order_id):
    oid = order_id("EDIT")
    approval = submit(beyond, oid, "rolf", 6200, lines=LINES).json["approval"]
    assert [s["name"] for s in approval["steps"]] == ["manager", "director"]
    url = f"/api/v1/approvals/{approval['id']}/edit"
    # the buyer is no approver; raising or adding is refused
    assert (
        beyond.post_json(
            url, {"approver": "rolf", "lines": [{"sku": "A", "quantity": 1}]}, status=403
        ).json["error"]["code"]
        == "not_eligible"
    )
    for lines in (
        [{"sku": "A", "quantity": 11}, {"sku": "B", "quantity": 2}],
        [{"sku": "A", "quantity": 10}, {"sku": "B", "quantity": 2}, {"sku": "C", "quantity": 1}],
    ):
        refused = beyond.post_json(url, {"approver": "ruth", "lines": lines}, status=422).json[
            "error"
        ]
        assert refused["code"] == "edit_not_a_reduction"
    # optimistic locking: a stale version is refused
    assert (
        beyond.post_json(
            url,
            {"approver": "ruth", "lines": [{"sku": "A", "quantity": 8}], "version": 999},
            status=409,
        ).json["error"]["code"]
        == "stale_version"
    )

    # A 10 -> 8, B removed: 6200 - 2*500 - 2*600 = 4000 -> only the manager now
    edited = beyond.post_json(
        url, {"approver": "ruth", "lines": [{"sku": "A", "quantity": 8}], "comment": "8 are enough"}
    ).json
    assert edited["status"] == "pending" and [s["name"] for s in edited["steps"]] == ["manager"]
    order = beyond.get(f"/api/v1/orders/{oid}").json
    assert order["total"] == "4000"
    previous = order["previous_decisions"][0]
    assert (
        previous["reason"] == "edited" and previous["by"] == "ruth" and previous["total"] == "6200"
    )
    assert previous["changes"] == [
        {"sku": "A", "from": "10", "to": "8"},
        {"sku": "B", "from": "2", "to": "0"},
    ]
    told = events_of(world, oid, "order_edited")
    assert (
        len(told) == 1
        and [r["account"] for r in told[0].recipients] == ["rolf"]
        and told[0].payload["comment"] == "8 are enough"
    )
    assert "approval.edited" in audit_actions(world, oid)

    # down to 1000: no approval needed any more -> approved
    final = beyond.post_json(url, {"approver": "ruth", "lines": [{"sku": "A", "quantity": 2}]}).json
    assert final["status"] == "approved"
    assert beyond.get(f"/api/v1/orders/{oid}").json["status"] == "approved"
    assert events_of(world, oid, "order_approved")


def test_edit_needs_line_prices(beyond, order_id):
    oid = order_id("EDIT")
    request_id = submit(beyond, oid, "rolf", 2000, lines=[{"sku": "A", "quantity": 4}]).json[
        "approval"
    ]["id"]
    refused = beyond.post_json(
        f"/api/v1/approvals/{request_id}/edit",
        {"approver": "ruth", "lines": [{"sku": "A", "quantity": 2}]},
        status=422,
    ).json["error"]
    assert refused["code"] == "missing_line_price"
