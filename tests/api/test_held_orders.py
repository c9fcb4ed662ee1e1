"""Held orders through the API (ACCEPTANCE E4): the merchant's queue, letting an order proceed
(lifting the hold) and cancelling it; merchant keys only, audited, the buyer told."""

from __future__ import annotations

import webtest

from .test_escalation_review_and_edits import audit_actions, events_of


def held_order(api, oid: str, total: int = 100, cost_centre: str = "CC-100") -> dict:
    """XYZ on DEF5678: that account's record holds every order (rules/xyz-def5678.yaml)."""
    body = {"id": oid, "buyer": "xyz", "company": "def5678", "total": total}
    response = api.post_json("/api/v1/orders", {**body, "cost_centre": cost_centre})
    assert response.json["status"] == "held", response.json
    return response.json


def queue(api) -> list[str]:
    return [o["id"] for o in api.get("/api/v1/held-orders?per_page=200").json["items"]]


def test_a_held_order_is_queued_let_proceed_and_then_released_to_fulfilment(
    api, world, order_id, dispatch
):
    oid = order_id("E4b")
    held_order(api, oid)
    # before: the storefront cannot release a held order, and that stays so
    refused = api.post(f"/api/v1/orders/{oid}/released", status=409).json["error"]
    assert refused["code"] == "not_releasable"

    listed = next(o for o in api.get("/api/v1/held-orders?per_page=200").json["items"])
    assert oid in queue(api)
    assert {"status", "total", "currency", "buyer", "held_since", "reasons"} <= set(listed)
    mine = next(
        o for o in api.get("/api/v1/held-orders?per_page=200").json["items"] if o["id"] == oid
    )
    assert mine["buyer"] == {"account": "xyz", "name": "XYZ"} and mine["total"] == "100"
    assert [r["code"] for r in mine["reasons"]] == ["orders_held"]

    lifted = api.post_json(f"/api/v1/held-orders/{oid}/lift", {"comment": "Checked by phone."})
    # 100 is below DEF5678's no-approval-below 500: the rules approve it
    assert lifted.json["status"] == "approved"
    assert lifted.json["decision"]["outcome"] == "approved"
    assert [d["status"] for d in lifted.json["previous_decisions"]] == ["held"]
    assert lifted.json["previous_decisions"][0]["comment"] == "Checked by phone."
    assert oid not in queue(api)

    assert "order.hold_lifted" in audit_actions(world, oid)
    [event] = events_of(world, oid, "order_hold_lifted")
    assert event.payload["comment"] == "Checked by phone."
    assert [r["account"] for r in event.recipients] == ["xyz"]
    dispatch()
    [mail] = [
        m
        for m in world.mailbox.to("xyz@example.test")
        if "no longer on hold" in m["Subject"] and oid in m["Subject"]
    ]
    text = mail.get_payload(decode=True).decode()
    assert "let your order" in text and "approved" in text and "Checked by phone." in text
    # the storefront hears the order may go to fulfilment
    assert world.webhooks.events(oid, "order_approved")

    # now fulfilment may start; a second lift finds nothing held
    assert api.post(f"/api/v1/orders/{oid}/released").json["released_at"]
    again = api.post_json(f"/api/v1/held-orders/{oid}/lift", {}, status=409).json["error"]
    assert again["code"] == "not_held" and "approved" in again["message"]


def test_letting_a_large_held_order_proceed_opens_its_approval(api, world, order_id):
    oid = order_id("E4big")
    held_order(api, oid, total=1500, cost_centre="CC-200")
    lifted = api.post(f"/api/v1/held-orders/{oid}/lift").json
    # above 500 on DEF5678: Pat approves, as for any such order
    assert lifted["status"] == "pending"
    assert "pat" in lifted["approval"]["steps"][0]["approvers"]
    assert events_of(world, oid, "approval_requested")


def test_cancelling_a_held_order_tells_the_buyer_and_the_storefront(api, world, order_id, dispatch):
    oid = order_id("E4c")
    held_order(api, oid)
    cancelled = api.post_json(f"/api/v1/held-orders/{oid}/cancel", {"comment": "Duplicate."})
    assert cancelled.json["status"] == "cancelled"
    assert api.get(f"/api/v1/orders/{oid}").json["status"] == "cancelled"
    assert "order.hold_cancelled" in audit_actions(world, oid)
    [to_buyer] = events_of(world, oid, "order_hold_cancelled")
    assert (
        to_buyer.payload["comment"] == "Duplicate." and to_buyer.recipients[0]["account"] == "xyz"
    )
    [webhook] = events_of(world, oid, "order_cancelled")
    assert webhook.payload["reason"] == "hold_cancelled" and webhook.recipients == []
    dispatch()
    assert any(
        oid in m["Subject"] and "Duplicate." in m.get_payload(decode=True).decode()
        for m in world.mailbox.to("xyz@example.test")
        if "cancelled by the merchant" in m["Subject"]
    )
    refused = api.post(f"/api/v1/held-orders/{oid}/lift", status=409).json["error"]
    assert refused["code"] == "not_held"


def test_only_merchant_keys_decide_held_orders(world, api, order_id):
    oid = order_id("E4s")
    held_order(api, oid)
    shop = webtest.TestApp(
        world.app, extra_environ={"HTTP_AUTHORIZATION": f"Bearer {world.keys['storefront']}"}
    )
    for path in (f"/api/v1/held-orders/{oid}/lift", f"/api/v1/held-orders/{oid}/cancel"):
        error = shop.post(path, status=403).json["error"]
        assert error["code"] == "insufficient_scope"
    assert shop.get("/api/v1/held-orders", status=403).json["error"]["code"] == "insufficient_scope"
    assert api.get(f"/api/v1/orders/{oid}").json["status"] == "held"


def test_a_comment_too_long_and_an_unknown_order_are_refused(api, order_id):
    oid = order_id("E4x")
    held_order(api, oid)
    error = api.post_json(
        f"/api/v1/held-orders/{oid}/lift", {"comment": "x" * 5001}, status=422
    ).json["error"]
    assert error["code"] == "invalid_comment"
    assert api.get(f"/api/v1/orders/{oid}").json["status"] == "held"
    assert api.post("/api/v1/held-orders/nope/cancel", status=404).json["error"]["code"] == (
        "unknown_order"
    )


def test_another_tenant_cannot_see_or_decide_our_held_orders(api, other_api, order_id):
    oid = order_id("E4t")
    held_order(api, oid)
    assert oid not in queue(other_api)
    other_api.post(f"/api/v1/held-orders/{oid}/cancel", status=404)
    assert api.get(f"/api/v1/orders/{oid}").json["status"] == "held"
