"""Workflow gaps, end to end: merchant review of orders the rules approve outright,
re-evaluation of pending requests under rule sets that extend the published one, and
reminders counted from when the current step became current.

Tenant ``beyond`` (tests/api/conftest.py), with its own rule sets for these tests
(tests/api/beyond/beyond-review.yaml, beyond-base*.yaml, beyond-remind.yaml) and their
companies and accounts (tests/api/beyond/directories/beyond-workflow.yaml), which the
``wf`` fixture puts into the tenant through the storefront's directory API.  Every test
uses fresh order ids and restores any rule-set version it publishes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from approvalrules.store.models import BudgetLedger, Order
from approvalrules.workflow import actions, jobs

from .test_escalation_review_and_edits import audit_actions, events_of, submit, tenant_run

DIRECTORY = Path(__file__).parent / "beyond" / "directories" / "beyond-workflow.yaml"


@pytest.fixture(scope="module")
def wf(beyond, world):
    """Tenant ``beyond`` with the companies and accounts of directories/beyond-workflow.yaml,
    synced through ``PUT /api/v1/directory/...`` (idempotent upserts).

    Afterwards the outbox is delivered (e-mail to the test SMTP server), so the events of
    this module do not wait in the queue of the tests that follow.
    """
    data = yaml.safe_load(DIRECTORY.read_text())
    for company, fields in data["companies"].items():
        beyond.put_json(f"/api/v1/directory/companies/{company}", fields)
    for account, fields in data["accounts"].items():
        beyond.put_json(
            f"/api/v1/directory/accounts/{account}",
            {k: v for k, v in fields.items() if k != "memberships"},
        )
        for membership in fields["memberships"]:
            beyond.put_json(
                f"/api/v1/directory/accounts/{account}/memberships/{membership['company']}",
                {k: v for k, v in membership.items() if k != "company"},
            )
    yield beyond
    from approvalrules.workflow import outbox

    for _ in range(100):
        counts = world.run(lambda session: outbox.dispatch(session, world.settings))
        if not counts["delivered"] and not counts["failed"]:
            break


def ledger(world, order_id: str) -> list[tuple[str, Decimal]]:
    """The budget ledger rows of an order: (draw | release, amount)."""
    with world.session() as session:
        rows = session.execute(
            select(BudgetLedger.kind, BudgetLedger.amount)
            .join(Order, Order.id == BudgetLedger.order_id)
            .where(Order.external_id == order_id)
            .order_by(BudgetLedger.id)
        ).all()
    return [(kind, Decimal(amount)) for kind, amount in rows]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def steps_of(approval) -> list[tuple[str, list[str], str]]:
    """(name, approvers, state) of each step of an approval request.

    As the API shows it (brief or full)."""
    return [
        (s["name"], [a if isinstance(a, str) else a["account"] for a in s["approvers"]], s["state"])
        for s in approval["steps"]
    ]


def merchant(world, request_id: int, approve: bool, comment: str | None = None) -> str:
    """The merchant admin ``boss`` (editor) decides a request in the merchant's review.

    As the admin UI does."""
    return tenant_run(
        world,
        lambda s, t: actions.merchant_decide(s, t, request_id, "boss", approve, comment).status,
    )


# ------------------------------------------------ merchant review of orders approved outright


def test_an_order_approved_outright_waits_for_the_merchant_then_is_released(wf, world, order_id):
    oid = order_id("MRA")
    response = submit(wf, oid, "vera", 800)
    assert response.status_int == 201
    order = response.json
    # the rules approve it (the decision is the engine's) ...
    assert order["decision"]["outcome"] == "approved" and order["decision"]["steps"] == []
    # ... but the order waits for the merchant, in the only step of its approval request
    assert order["status"] == "pending"
    approval = order["approval"]
    assert approval["status"] == "pending" and approval["current_step"] == 0
    assert (
        steps_of(approval) == [("merchant-review", [], "current")]
        and approval["steps"][0]["merchant"] is True
    )
    # approval.expiry (P7D) applies as to any request
    assert instant(approval["expires_at"]) - instant(approval["created_at"]) == timedelta(days=7)
    detail = wf.get(f"/api/v1/approvals/{approval['id']}").json
    assert (
        steps_of(detail) == [("merchant-review", [], "current")]
        and detail["steps"][0]["merchant"] is True
    )
    assert wf.get(f"/api/v1/orders/{oid}").json["approval"]["steps"] == approval["steps"]

    # the buyer hears that the order waits; nothing says approved; no budget drawn yet
    submitted = events_of(world, oid, "order_submitted")
    assert len(submitted) == 1 and [r["account"] for r in submitted[0].recipients] == ["vera"]
    assert (
        submitted[0].payload["step"] == "merchant-review"
        and submitted[0].payload["approval_request"] == approval["id"]
    )
    assert not events_of(world, oid, "order_approved") and not events_of(
        world, oid, "order_confirmation"
    )
    assert ledger(world, oid) == []
    assert "order.pending" in audit_actions(world, oid) and "order.approved" not in audit_actions(
        world, oid
    )

    # neither the customer's approvers nor the storefront can release it
    refused = wf.post_json(
        f"/api/v1/approvals/{approval['id']}/approve", {"approver": "vik"}, status=403
    ).json["error"]
    assert refused["code"] == "merchant_review"
    assert (
        wf.post(f"/api/v1/orders/{oid}/released", status=409).json["error"]["code"]
        == "not_releasable"
    )

    # the merchant approves: the order is approved, the budget drawn, the buyer told
    assert merchant(world, approval["id"], True, "checked") == "approved"
    order = wf.get(f"/api/v1/orders/{oid}").json
    assert order["status"] == "approved" and order["approval"]["status"] == "approved"
    assert (
        order["approval"]["steps"][0]["decided_by"] == "admin:boss"
        and order["approval"]["steps"][0]["state"] == "done"
    )
    assert ledger(world, oid) == [("draw", Decimal(800))]
    approved = events_of(world, oid, "order_approved")
    assert [r["account"] for r in approved[0].recipients] == ["vera"] and approved[0].payload[
        "comment"
    ] == "checked"
    assert events_of(world, oid, "order_confirmation")
    assert "approval.merchant_approved" in audit_actions(world, oid)
    assert wf.post(f"/api/v1/orders/{oid}/released").json["released_at"]


def test_the_merchant_rejects_an_order_approved_outright(wf, world, order_id):
    oid = order_id("MRR")
    request_id = submit(wf, oid, "vera", 600).json["approval"]["id"]
    # in the merchant admin, as any request in the merchant's review
    admin = admin_app(world)
    page = admin.get(f"/admin/approvals/{request_id}")
    assert "Merchant review" in page.text and "merchant-review-form" in page.text
    admin.post(
        f"/admin/approvals/{request_id}/merchant-review",
        {"decision": "reject", "comment": "not this supplier", "csrf_token": admin.csrf},
        status=303,
    )
    assert "approval.merchant_rejected" in audit_actions(world, oid)
    order = wf.get(f"/api/v1/orders/{oid}").json
    assert order["status"] == "rejected" and order["approval"]["status"] == "rejected"
    assert ledger(world, oid) == []
    assert [e.payload.get("comment") for e in events_of(world, oid, "order_rejected")] == [
        "not this supplier"
    ]
    assert [e.payload["reason"] for e in events_of(world, oid, "order_cancelled")] == ["rejected"]
    assert not events_of(world, oid, "order_approved")


def test_held_and_blocked_orders_are_not_sent_to_the_merchant(wf, world, order_id):
    held, blocked = order_id("MRH"), order_id("MRB")
    order = submit(wf, held, "hal", 500).json
    assert (
        order["status"] == "held"
        and order["decision"]["outcome"] == "held"
        and "approval" not in order
    )
    assert events_of(world, held, "order_held") and not events_of(world, held, "order_submitted")
    order = submit(wf, blocked, "vera", 500, type="quote").json
    assert order["status"] == "blocked" and "approval" not in order
    assert ledger(world, held) == [] and ledger(world, blocked) == []


def test_an_approver_edit_that_needs_no_approval_any_more_goes_to_the_merchant(wf, world, order_id):
    oid = order_id("MRE")
    approval = submit(
        wf, oid, "vera", 1500, lines=[{"sku": "A", "quantity": 3, "price": 500}]
    ).json["approval"]
    assert steps_of(approval) == [
        ("manager", ["vik"], "current"),
        ("merchant-review", [], "waiting"),
    ]
    # 3 x A -> 2 x A: 1000, approved outright by the rules; the merchant still reviews it
    edited = wf.post_json(
        f"/api/v1/approvals/{approval['id']}/edit",
        {"approver": "vik", "lines": [{"sku": "A", "quantity": 2}]},
    ).json
    assert edited["status"] == "pending" and edited["current_step"] == 0
    assert steps_of(edited) == [("merchant-review", [], "current")]
    order = wf.get(f"/api/v1/orders/{oid}").json
    assert (
        order["status"] == "pending"
        and order["total"] == "1000"
        and order["decision"]["outcome"] == "approved"
    )
    assert [(d["reason"], d["decision"]["outcome"]) for d in order["previous_decisions"]] == [
        ("edited", "pending")
    ]
    assert not events_of(world, oid, "order_approved") and ledger(world, oid) == []
    assert events_of(world, oid, "order_edited")
    assert events_of(world, oid, "approval_requested")[-1].payload["step"] == "merchant-review"
    # the manager's part is over
    assert (
        wf.post_json(
            f"/api/v1/approvals/{approval['id']}/approve", {"approver": "vik"}, status=403
        ).json["error"]["code"]
        == "merchant_review"
    )
    assert merchant(world, approval["id"], True) == "approved"
    assert wf.get(f"/api/v1/orders/{oid}").json["status"] == "approved"
    assert ledger(world, oid) == [("draw", Decimal(1000))]


def test_a_reevaluation_that_needs_no_approval_any_more_goes_to_the_merchant(wf, world, order_id):
    before = wf.get("/api/v1/rulesets/beyond-review").json
    old_text, old_number = before["text"], before["active"]["number"]
    oid = order_id("MRV")
    request_id = submit(wf, oid, "vera", 1500).json["approval"]["id"]
    new_text = (
        old_text.replace("when: {total: {gt: 1000}}", "when: {total: {gt: 2000}}")
        # its embedded test follows the new threshold (publishing runs it)
        .replace("above 1000 the manager approves first", "above 2000 the manager approves first")
        .replace("{buyer: vera, total: 1500}", "{buyer: vera, total: 2500}")
    )
    assert new_text != old_text
    try:
        published = wf.post(
            "/api/v1/rulesets/beyond-review/publish",
            new_text.encode(),
            content_type="application/yaml",
            status=201,
        ).json
        assert (
            published["pending"]["mode"] == "reevaluate"
            and published["pending"]["reevaluated"][oid] == "pending"
        )
        order = wf.get(f"/api/v1/orders/{oid}").json
        assert (
            order["status"] == "pending"
            and order["decision"]["outcome"] == "approved"
            and order["ruleset_version"] == published["number"]
        )
        assert [
            (d["reason"], d["ruleset_version"], d["decision"]["outcome"])
            for d in order["previous_decisions"]
        ] == [("new_version", old_number, "pending")]
        assert steps_of(wf.get(f"/api/v1/approvals/{request_id}").json) == [
            ("merchant-review", [], "current")
        ]
        assert not events_of(world, oid, "order_approved") and ledger(world, oid) == []
    finally:
        rolled = wf.post(f"/api/v1/rulesets/beyond-review/rollback?to={old_number}").json
    # the old rules again: the manager first, then the merchant
    assert rolled["pending"]["reevaluated"][oid] == "pending"
    assert steps_of(wf.get(f"/api/v1/approvals/{request_id}").json) == [
        ("manager", ["vik"], "current"),
        ("merchant-review", [], "waiting"),
    ]
    assert len(wf.get(f"/api/v1/orders/{oid}").json["previous_decisions"]) == 2
    assert (
        wf.post_json(f"/api/v1/approvals/{request_id}/approve", {"approver": "vik"}).json[
            "current_step"
        ]
        == 1
    )
    assert merchant(world, request_id, True) == "approved"
    assert ledger(world, oid) == [("draw", Decimal(1500))]


# ------------------------------------ re-evaluation for rule sets that extend the published one


def publish(api, name: str, text: str) -> dict:
    return api.post(
        f"/api/v1/rulesets/{name}/publish",
        text.encode(),
        content_type="application/yaml",
        status=201,
    ).json


def admin_app(world):
    """The merchant admin, logged in as ``boss`` (editor) of tenant ``beyond``."""
    import re

    import webtest

    app = webtest.TestApp(world.app)
    form = app.get("/admin/login").forms[0]
    form["tenant"], form["login"], form["password"] = "beyond", "boss", "correct horse battery"
    assert form.submit().status_int == 303
    app.csrf = re.search(
        r'name="csrf_token" value="([^"]+)"', app.get("/admin/rulesets").text
    ).group(1)
    return app


def mine(result: dict, orders) -> dict:
    """The part of a publish's ``reevaluated`` about ``orders``.

    The shared tenant may hold other pending requests."""
    return {k: v for k, v in result.items() if k in orders}


def test_publishing_a_parent_reevaluates_the_rule_sets_extending_it(wf, world, order_id):
    before = wf.get("/api/v1/rulesets/beyond-base").json
    old_text, old_number = before["text"], before["active"]["number"]
    child_number = wf.get("/api/v1/rulesets/beyond-base-child").json["active"]["number"]
    grand_number = wf.get("/api/v1/rulesets/beyond-base-grandchild").json["active"]["number"]
    base, child, grand, sibling = order_id("XB"), order_id("XC"), order_id("XG"), order_id("XK")
    requests = {
        oid: submit(wf, oid, buyer, 3000).json["approval"]["id"]
        for oid, buyer in ((base, "bea"), (child, "cleo"), (grand, "gia"), (sibling, "sia"))
    }
    # a decision records the rules it was made under: the parents' versions and the compiled
    # policy's hash
    stamp = wf.get(f"/api/v1/orders/{grand}").json["decision"]["ruleset"]
    assert (
        stamp["name"] == "beyond-base-grandchild"
        and stamp["version"] == grand_number
        and stamp["policy_hash"]
    )
    assert stamp["parents"] == [
        {"name": "beyond-base-child", "version": child_number},
        {"name": "beyond-base", "version": old_number},
    ]

    new_text = (
        old_text.replace("when: {total: {gt: 1000}}", "when: {total: {gt: 4000}}")
        # its embedded test follows the new threshold (publishing runs it)
        .replace("3000 needs the manager", "5000 needs the manager")
        .replace("{buyer: bea, total: 3000}", "{buyer: bea, total: 5000}")
    )
    assert new_text != old_text
    try:
        published = publish(wf, "beyond-base", new_text)
        pending = published["pending"]
        # beyond-base itself keeps; its extending rule sets decide by their own resolved setting
        assert pending["ruleset"] == "beyond-base" and pending["mode"] == "keep"
        assert mine(pending["reevaluated"], requests) == {child: "approved", grand: "approved"}
        rulesets = pending["rulesets"]
        assert {
            name: (entry.get("extends"), entry["mode"]) for name, entry in rulesets.items()
        } == {
            "beyond-base": (None, "keep"),
            "beyond-base-child": ("beyond-base", "reevaluate"),
            "beyond-base-grandchild": ("beyond-base-child", "reevaluate"),
            "beyond-base-keep": ("beyond-base", "keep"),
        }
        assert mine(rulesets["beyond-base-child"]["reevaluated"], requests) == {child: "approved"}
        assert mine(rulesets["beyond-base-grandchild"]["reevaluated"], requests) == {
            grand: "approved"
        }
        assert (
            rulesets["beyond-base"]["reevaluated"] == {}
            and rulesets["beyond-base-keep"]["reevaluated"] == {}
        )

        # 3000 needs nobody under the new parent: approved, with both decisions on record, under
        # the child's own (unchanged) version
        for oid, number, parents in (
            (child, child_number, [{"name": "beyond-base", "version": published["number"]}]),
            (
                grand,
                grand_number,
                [
                    {"name": "beyond-base-child", "version": child_number},
                    {"name": "beyond-base", "version": published["number"]},
                ],
            ),
        ):
            order = wf.get(f"/api/v1/orders/{oid}").json
            assert order["status"] == "approved" and order["ruleset_version"] == number
            assert [
                (
                    d["reason"],
                    d["ruleset"],
                    d["new_version"],
                    d["ruleset_version"],
                    d["decision"]["outcome"],
                )
                for d in order["previous_decisions"]
            ] == [("new_version", "beyond-base", published["number"], number, "pending")]
            assert order["previous_decisions"][0]["decision"]["ruleset"]["parents"][-1] == {
                "name": "beyond-base",
                "version": old_number,
            }
            assert order["decision"]["ruleset"]["parents"] == parents
            assert (
                order["decision"]["ruleset"]["policy_hash"]
                != order["previous_decisions"][0]["decision"]["ruleset"]["policy_hash"]
            )
            assert wf.get(f"/api/v1/approvals/{requests[oid]}").json["status"] == "approved"
            assert events_of(world, oid, "order_approved")
        # keep: beyond-base's own request and beyond-base-keep's are as they were
        for oid in (base, sibling):
            order = wf.get(f"/api/v1/orders/{oid}").json
            assert order["status"] == "pending" and "previous_decisions" not in order
        with world.session() as session:
            from approvalrules.store.models import AuditEvent

            audited = {
                e.subject_id: e.data
                for e in session.scalars(
                    select(AuditEvent)
                    .where(AuditEvent.action == "ruleset.pending_reevaluated")
                    .order_by(AuditEvent.id)
                )
            }
        assert (
            audited["beyond-base-child"]["published"]
            == {"ruleset": "beyond-base", "version": published["number"]}
            and child in audited["beyond-base-child"]["reevaluated"]
        )

        # the same text again publishes nothing new, and nothing is decided again
        again = publish(wf, "beyond-base", new_text)
        assert (
            again["number"] == published["number"]
            and mine(again["pending"]["reevaluated"], requests) == {}
        )

        # a request decided under the rules in force stays as it is when a parent version changes
        # nothing for it
        fresh = order_id("XC")
        requests[fresh] = submit(wf, fresh, "cleo", 4500).json["approval"]["id"]
        seen = wf.get(f"/api/v1/approvals/{requests[fresh]}").json
        assert steps_of(seen) == [("manager", ["cal"], "current")]
        described = publish(
            wf,
            "beyond-base",
            new_text.replace("description: The parent", "description: Again, the parent"),
        )
        assert described["number"] == published["number"] + 1
        assert (
            mine(described["pending"]["reevaluated"], requests) == {}
            and described["pending"]["skipped"] == []
        )
        assert wf.get(f"/api/v1/approvals/{requests[fresh]}").json["version"] == seen["version"]
        assert "previous_decisions" not in wf.get(f"/api/v1/orders/{fresh}").json

        # the merchant admin rolls the parent back: the old rules change the fresh request's again
        admin = admin_app(world)
        page = admin.post(
            "/admin/rulesets/beyond-base/rollback",
            {"number": str(old_number), "csrf_token": admin.csrf},
            status=303,
        ).follow()
        assert f"Version {old_number} is active again" in page.text
        assert "1 re-evaluated, 0 skipped" in page.text
    finally:
        if wf.get("/api/v1/rulesets/beyond-base").json["text"] != old_text:
            wf.post(f"/api/v1/rulesets/beyond-base/rollback?to={old_number}")
    order = wf.get(f"/api/v1/orders/{fresh}").json
    assert order["status"] == "pending" and [d["reason"] for d in order["previous_decisions"]] == [
        "new_version"
    ]
    assert order["decision"]["ruleset"]["parents"] == [
        {"name": "beyond-base", "version": described["number"] + 1}
    ]
    assert (
        wf.post_json(f"/api/v1/approvals/{requests[fresh]}/approve", {"approver": "cal"}).json[
            "status"
        ]
        == "approved"
    )
    for oid in (base, sibling):
        assert "previous_decisions" not in wf.get(f"/api/v1/orders/{oid}").json


def test_a_decision_recorded_without_its_policy_hash_counts_as_decided_at_its_time(
    wf, world, order_id
):
    """Requests decided before the policy hash was recorded: out of date when a parent's active
    version was published after the decision, else left alone."""
    before = wf.get("/api/v1/rulesets/beyond-base").json
    old_text, old_number = before["text"], before["active"]["number"]
    oid = order_id("XL")
    request_id = submit(wf, oid, "cleo", 4500).json["approval"]["id"]

    def forget_hash(session):
        order = session.scalar(select(Order).where(Order.external_id == oid))
        order.decision = {
            **order.decision,
            "ruleset": {
                k: v
                for k, v in order.decision["ruleset"].items()
                if k not in ("policy_hash", "parents")
            },
        }

    world.run(forget_hash)
    assert "policy_hash" not in wf.get(f"/api/v1/orders/{oid}").json["decision"]["ruleset"]
    # beyond-base's active version is older than the decision: nothing to do
    assert oid not in publish(wf, "beyond-base", old_text)["pending"]["reevaluated"]
    version = wf.get(f"/api/v1/approvals/{request_id}").json["version"]
    try:
        # a version published after it: decided again (under the same rules, so still the
        # manager), the hash recorded now
        described = publish(
            wf,
            "beyond-base",
            old_text.replace("description: The parent", "description: Once more, the parent"),
        )
        assert described["pending"]["reevaluated"][oid] == "pending"
        assert wf.get(f"/api/v1/approvals/{request_id}").json["version"] != version
        order = wf.get(f"/api/v1/orders/{oid}").json
        assert order["decision"]["ruleset"]["policy_hash"] and [
            d["reason"] for d in order["previous_decisions"]
        ] == ["new_version"]
    finally:
        rolled = wf.post(f"/api/v1/rulesets/beyond-base/rollback?to={old_number}").json
    # the rollback changes nothing for it (a description): left alone
    assert oid not in rolled["pending"]["reevaluated"]
    assert len(wf.get(f"/api/v1/orders/{oid}").json["previous_decisions"]) == 1


# --------------------------------------------------------- reminders from the step's start


def reminders_of(world, oid: str) -> list[tuple[str, list[str]]]:
    """(step, recipients) of each approval_reminder sent for an order, oldest first."""
    return [
        (e.payload["step"], [r["account"] for r in e.recipients])
        for e in events_of(world, oid, "approval_reminder")
    ]


def remind(world, when: datetime) -> None:
    # every pending request of the shared database is looked at, whatever the other tests left
    world.run(lambda session: jobs.remind_due(session, now=when, limit=100_000))


def test_reminders_count_from_when_the_current_step_became_current(wf, world, order_id):
    oid = order_id("REM")
    lines = [{"sku": "A", "quantity": 12, "price": 500}]
    approval = submit(wf, oid, "nina", 6000, lines=lines).json["approval"]
    request_id, created = approval["id"], instant(approval["created_at"])
    assert steps_of(approval) == [
        ("manager", ["noah"], "current"),
        ("director", ["nora"], "waiting"),
    ]

    # the manager's step starts at submission: reminded after P1D, then every P2D
    remind(world, created + timedelta(hours=23))
    assert reminders_of(world, oid) == []
    remind(world, created + timedelta(days=1, minutes=1))
    assert reminders_of(world, oid) == [("manager", ["noah"])]
    remind(world, created + timedelta(days=2))
    assert len(reminders_of(world, oid)) == 1

    # the manager approves on day 2 (12:00): the director's step starts then; the
    # manager's reminder and the request's age do not count for it
    director_from = created + timedelta(days=2, hours=12)
    tenant_run(world, lambda s, t: actions.approve(s, t, request_id, "noah", now=director_from))
    assert wf.get(f"/api/v1/approvals/{request_id}").json["current_step"] == 1
    remind(
        world, created + timedelta(days=3, minutes=2)
    )  # P2D after the manager's reminder: not the director's due
    remind(world, director_from + timedelta(hours=23))
    assert reminders_of(world, oid) == [("manager", ["noah"])]
    remind(world, director_from + timedelta(days=1, minutes=1))
    assert reminders_of(world, oid)[1:] == [("director", ["nora"])]
    remind(world, director_from + timedelta(days=3))
    assert len(reminders_of(world, oid)) == 2
    remind(world, director_from + timedelta(days=3, minutes=2))
    assert reminders_of(world, oid)[2:] == [("director", ["nora"])]

    # P5D in the director's step: it escalates to the deputy (reminded already, so at once); the
    # deputy gets P1D
    escalated_at = director_from + timedelta(days=5, minutes=1)
    world.run(lambda s: jobs.expire_due(s, now=escalated_at, limit=100_000))
    detail = wf.get(f"/api/v1/approvals/{request_id}").json
    assert (
        steps_of(detail)
        == [("manager", ["noah"], "done"), ("director", ["nora", "ned"], "current")]
        and detail["steps"][1]["escalated_at"]
    )
    remind(
        world, escalated_at + timedelta(hours=12)
    )  # P2D after the last reminder, but the step changed hands since
    assert len(reminders_of(world, oid)) == 3
    remind(world, escalated_at + timedelta(days=1, minutes=1))
    assert reminders_of(world, oid)[3:] == [("director", ["nora", "ned"])]

    # an approver's edit decides the order again: its first step starts afresh at the edit
    edited_at = escalated_at + timedelta(days=1, hours=6)
    tenant_run(
        world,
        lambda s, t: actions.edit(
            s, t, request_id, "ned", [{"sku": "A", "quantity": 8}], now=edited_at
        ),
    )
    assert steps_of(wf.get(f"/api/v1/approvals/{request_id}").json) == [
        ("manager", ["noah"], "current")
    ]
    remind(world, edited_at + timedelta(hours=23))
    assert len(reminders_of(world, oid)) == 4
    remind(world, edited_at + timedelta(days=1, minutes=1))
    assert reminders_of(world, oid)[4:] == [("manager", ["noah"])]
    assert (
        wf.post_json(f"/api/v1/approvals/{request_id}/approve", {"approver": "noah"}).json["status"]
        == "approved"
    )
    remind(world, edited_at + timedelta(days=30))
    assert len(reminders_of(world, oid)) == 5  # decided: no more reminders


def test_the_jobs_look_at_every_pending_request_not_only_the_oldest_batch(wf, world, order_id):
    from sqlalchemy import func

    from approvalrules.store.models import ApprovalRequest

    # older requests under a rule set without reminders: never due, and first in line
    for _ in range(5):
        assert submit(wf, order_id("NO-REM"), "bea", 5000).json["status"] == "pending"
    oid = order_id("REM-ALL")
    approval = submit(wf, oid, "nina", 2000).json["approval"]
    due = instant(approval["created_at"]) + timedelta(days=1, minutes=1)
    with world.session() as session:
        older = session.scalar(
            select(func.count())
            .select_from(ApprovalRequest)
            .where(ApprovalRequest.status == "pending", ApprovalRequest.id < approval["id"])
        )
    assert older >= 5
    # one action allowed, two rows a query: the job pages past the requests that are not due
    assert world.run(lambda session: jobs.remind_due(session, now=due, limit=1, batch=2)) == 1
    # ``limit`` caps what one run does, not how far it looks: run until this request is reached
    for _ in range(older + 1):
        if reminders_of(world, oid):
            break
        world.run(lambda session: jobs.remind_due(session, now=due, limit=1, batch=2))
    assert reminders_of(world, oid) == [("manager", ["noah"])]


def test_a_publish_that_changes_no_rule_leaves_pending_requests_and_their_approvals_alone(
    beyond, world, order_id
):
    before = beyond.get("/api/v1/rulesets/beyond-reeval").json
    oid = order_id("RE-DESC")
    request_id = submit(beyond, oid, "rolf", 4500).json["approval"]["id"]
    text = before["text"].replace("description:", "description: Reworded.", 1)
    assert text != before["text"]
    try:
        published = beyond.post(
            "/api/v1/rulesets/beyond-reeval/publish",
            text.encode(),
            content_type="application/yaml",
            status=201,
        ).json
        assert published["pending"]["mode"] == "reevaluate"
        assert oid not in published["pending"]["reevaluated"]
        order = beyond.get(f"/api/v1/orders/{oid}").json
        assert (
            order.get("previous_decisions") is None
            and order["ruleset_version"] == before["active"]["number"]
        )
        assert (
            beyond.post_json(f"/api/v1/approvals/{request_id}/approve", {"approver": "ruth"}).json[
                "status"
            ]
            == "approved"
        )
    finally:
        beyond.post(f"/api/v1/rulesets/beyond-reeval/rollback?to={before['active']['number']}")
