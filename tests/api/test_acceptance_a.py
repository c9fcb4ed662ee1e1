"""ACCEPTANCE.md A (purchasing groups) end to end through the HTTP API, with e-mail and webhooks."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from approvalrules.store import versions
from approvalrules.store.services import resolve_tenant
from approvalrules.workflow import jobs

from .conftest import ROOT, WEBHOOK_SECRET


def submit(api, order_id, buyer, total, **extra):
    return api.post_json(
        "/api/v1/orders", {"id": order_id, "buyer": buyer, "total": total, **extra}, status="*"
    )


def approve(api, request_id, approver, status=200, **body):
    return api.post_json(
        f"/api/v1/approvals/{request_id}/approve", {"approver": approver, **body}, status=status
    )


def test_a1_bob_200_approved_payer_acme_confirmations(api, order_id, world, dispatch):
    oid = order_id("A1")
    response = submit(api, oid, "bob", 200)
    assert response.status_int == 201
    decision = response.json["decision"]
    assert response.json["status"] == "approved"
    assert decision["payer"] == {"kind": "company", "id": "acme"}
    dispatch()
    assert [m["Subject"] for m in world.mailbox.to("bob@acme.test") if oid in m["Subject"]] == [
        f"[demo] Order confirmation {oid}"
    ]
    assert [
        m["Subject"] for m in world.mailbox.to("purchasing@acme.test") if oid in m["Subject"]
    ] == [f"[demo] Group order {oid} confirmed"]
    # the storefront learns by a signed webhook that the order may be released
    hooks = world.webhooks.events(oid, "order_approved")
    assert len(hooks) == 1
    headers, body = next((h, b) for h, b in world.webhooks.received if hooks[0]["id"] in b.decode())
    assert (
        headers["X-Approvalrules-Signature"]
        == "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    )
    assert headers["X-Approvalrules-Event-Id"] == hooks[0]["id"]


def test_a2_bob_800_pending_master_and_ann_notified(api, order_id, world, dispatch):
    oid = order_id("A2")
    response = submit(api, oid, "bob", 800)
    assert response.json["status"] == "pending"
    approval = response.json["approval"]
    assert approval["steps"][0]["approvers"] == ["acme-master", "ann"]
    assert approval["steps"][0]["required"] == 1
    dispatch()
    assert any(
        oid in m["Subject"] and "submitted" in m["Subject"]
        for m in world.mailbox.to("bob@acme.test")
    )
    for address in ("ann@acme.test", "purchasing@acme.test"):
        assert any(
            oid in m["Subject"] and "Approval requested" in m["Subject"]
            for m in world.mailbox.to(address)
        ), address
    assert not any(oid in m["Subject"] for m in world.mailbox.to("cid@acme.test"))


def test_a3_ann_is_not_eligible_for_her_own_order(api, order_id):
    response = submit(api, order_id("A3"), "ann", 800)
    request_id = response.json["approval"]["id"]
    assert response.json["approval"]["steps"][0]["approvers"] == ["acme-master"]
    refused = approve(api, request_id, "ann", status=403)
    assert refused.json["error"]["code"] == "not_eligible"


def test_a4_other_group_refused_until_universal_approvers_published(api, order_id, world):
    first = submit(api, order_id("A4"), "bob", 800).json["approval"]["id"]
    refused = approve(api, first, "cid", status=403)
    assert "cid is not an eligible approver of step marketing" in refused.json["error"]["message"]

    universal = (
        (ROOT / "rules" / "acme.yaml").read_text().replace("scope: own_group", "scope: universal")
    )
    original = None

    def publish_universal(session):
        nonlocal original
        original = versions.active_version(
            session, resolve_tenant(session, "demo").id, "acme"
        ).number
        versions.save_draft(session, "demo", "acme", universal, author="qa")
        return versions.publish(session, "demo", "acme", author="qa").number

    new_number = world.run(publish_universal)
    try:
        second = submit(api, order_id("A4"), "bob", 800).json
        assert second["ruleset_version"] == new_number
        assert "cid" in second["approval"]["steps"][0]["approvers"]
        assert approve(api, second["approval"]["id"], "cid").json["status"] == "approved"
        # F2: the order submitted under the old version keeps it
        old = api.get(f"/api/v1/approvals/{first}").json
        assert "cid" not in [a["account"] for a in old["steps"][0]["approvers"]]
        approve(api, first, "cid", status=403)
    finally:
        world.run(lambda session: versions.rollback(session, "demo", "acme", original, author="qa"))


def test_a5_two_of_three_and_double_approval_counts_once(api, order_id, world, dispatch):
    oid = order_id("A5")
    request_id = submit(api, oid, "eve", 50).json["approval"]["id"]
    after_cid = approve(api, request_id, "cid").json
    assert after_cid["status"] == "pending"
    assert after_cid["steps"][0]["approved_by"] == ["cid"]
    again = approve(api, request_id, "cid").json
    assert again["status"] == "pending" and again["steps"][0]["approved_by"] == ["cid"]
    final = approve(api, request_id, "dee").json
    assert final["status"] == "approved"
    assert sorted(final["steps"][0]["approved_by"]) == ["cid", "dee"]
    assert api.get(f"/api/v1/orders/{oid}").json["status"] == "approved"
    dispatch()
    assert any(
        m["Subject"] == f"[demo] Order {oid} approved" for m in world.mailbox.to("eve@acme.test")
    )
    late = approve(api, request_id, "acme-master", status=409).json
    assert late["error"]["code"] == "already_decided"
    assert "cid" in late["error"]["message"] and "dee" in late["error"]["message"]


def test_a6_rejection_cancels_and_tells_the_buyer_the_comment(api, order_id, world, dispatch):
    oid = order_id("A6")
    request_id = submit(api, oid, "bob", 900).json["approval"]["id"]
    rejected = api.post_json(
        f"/api/v1/approvals/{request_id}/reject",
        {"approver": "ann", "comment": "Over the campaign budget"},
    ).json
    assert rejected["status"] == "rejected"
    assert api.get(f"/api/v1/orders/{oid}").json["status"] == "rejected"
    dispatch()
    cancelled = [
        m
        for m in world.mailbox.to("bob@acme.test")
        if m["Subject"] == f"[demo] Order {oid} cancelled"
    ]
    assert len(cancelled) == 1
    assert "Over the campaign budget" in cancelled[0].get_payload()


def test_a7_expiry_cancels_after_seven_days_with_notification(api, order_id, world, dispatch):
    oid = order_id("A7")
    response = submit(api, oid, "bob", 900).json
    expires = datetime.fromisoformat(response["approval"]["expires_at"].replace("Z", "+00:00"))
    created = datetime.fromisoformat(response["approval"]["created_at"].replace("Z", "+00:00"))
    assert timedelta(days=7) - timedelta(seconds=2) <= expires - created <= timedelta(days=7)
    assert world.run(lambda s: jobs.expire_due(s, now=expires - timedelta(minutes=1))) >= 0
    assert api.get(f"/api/v1/orders/{oid}").json["status"] == "pending"
    assert world.run(lambda s: jobs.expire_due(s, now=expires + timedelta(seconds=1))) >= 1
    assert api.get(f"/api/v1/orders/{oid}").json["status"] == "expired"
    # idempotent: a second run (another host) finds nothing more for this order
    world.run(lambda s: jobs.expire_due(s, now=expires + timedelta(seconds=2)))
    dispatch()
    subjects = [m["Subject"] for m in world.mailbox.to("bob@acme.test") if oid in m["Subject"]]
    assert subjects.count(f"[demo] Order {oid} expired") == 1
    assert subjects.count(f"[demo] Order {oid} cancelled") == 1


def test_a8_bulk_group_settings_follow_group_rules(api, order_id):
    pending = submit(api, order_id("A8"), "bob", 800, type="bulk").json
    assert pending["status"] == "pending"
    assert pending["decision"]["payer"]["id"] == "acme"


def test_a9_invited_member_has_no_group_relation(api, order_id):
    decision = api.post_json("/api/v1/evaluate", {"buyer": "gus", "total": 800}).json
    assert decision["buyer"]["group"] is None
    assert decision["outcome"] == "approved"


def test_a10_approver_inbox_shows_only_orders_they_may_approve(api, order_id):
    oid = order_id("A10")
    submit(api, oid, "bob", 700)
    ann = api.get("/api/v1/approvals", {"approver": "ann", "q": oid}).json
    cid = api.get("/api/v1/approvals", {"approver": "cid", "q": oid}).json
    assert [item["order"] for item in ann["items"]] == [oid]
    assert cid["items"] == []
    assert ann["counts"]["pending"] >= 1


def test_f1_diff_of_stored_versions_with_recorded_orders(api, order_id, world, tmp_path, capsys):
    """F1 from the database.

    `approvalrules diff --ini ... demo/acme@N demo/acme@M --replay-recorded`.
    """
    from approvalrules.cli import main as cli

    for total in (300, 700, 900, 1500):
        submit(api, order_id("F1"), "bob", total)
    raised = (
        (ROOT / "rules" / "acme.yaml").read_text().replace("total: {gt: 500}", "total: {gt: 1000}")
    )

    def publish(session):
        old = versions.active_version(session, "demo", "acme").number
        new = versions.publish(session, "demo", "acme", author="qa", text=raised).number
        return old, new

    old, new = world.run(publish)
    try:
        ini = tmp_path / "t.ini"
        ini.write_text(f"[app:main]\nuse = egg:approvalrules\nsqlalchemy.url = {world.url}\n")
        code = cli(
            [
                "diff",
                "--ini",
                str(ini),
                f"demo/acme@{old}",
                f"demo/acme@{new}",
                "--no-color",
                "--replay-recorded",
            ]
        )
        out = capsys.readouterr().out
        assert code == 1
        assert "orders over 500 up to 1000 by Marketing members: pending -> approved" in out
        assert "replay:" in out and "pending -> approved" in out.split("replay:")[1]
    finally:
        world.run(lambda session: versions.rollback(session, "demo", "acme", old, author="qa"))


def test_a10_visibility_master_all_viewer_group_approver_eligible(api, order_id):
    bob, eve = order_id("A10b"), order_id("A10e")
    submit(api, bob, "bob", 900)  # Marketing, pending for master and Ann
    submit(api, eve, "eve", 60)  # Ops, pending for master, Cid and Dee

    def sees(viewer):
        items = api.get("/api/v1/orders", {"viewer": viewer, "per_page": 200}).json["items"]
        return {i["id"] for i in items} & {bob, eve}

    assert sees("acme-master") == {bob, eve}  # the master sees all group orders
    assert sees("val") == {bob}  # a viewer sees its group's orders without approving
    assert sees("ann") == {bob}  # approvers see the orders they may approve
    assert sees("cid") == {eve}
    assert sees("bob") == {bob}  # everyone sees their own
    val_approves = api.post_json(
        f"/api/v1/approvals/{api.get(f'/api/v1/orders/{bob}').json['approval']['id']}/approve",
        {"approver": "val"},
        status=403,
    )
    assert val_approves.json["error"]["code"] == "not_eligible"
    assert api.get("/api/v1/orders", status=422).json["error"]["code"] == "missing_viewer"
