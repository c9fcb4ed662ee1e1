"""The approver inbox names whose order of how much, refuses unknown statuses, and a rejected
step says rejected."""

from __future__ import annotations

from types import SimpleNamespace

from approvalrules.views.api import step_state
from approvalrules.views.openapi_parts import STEP_STATES


def test_inbox_items_carry_buyer_company_and_total(api, order_id):
    oid = order_id("inbox")
    api.post_json("/api/v1/orders", {"id": oid, "buyer": "bob", "total": "812.5"})
    found = api.get("/api/v1/approvals", {"approver": "ann", "q": oid}).json
    (item,) = found["items"]
    assert item["order"] == oid
    assert (item["buyer"], item["company"]) == ("bob", "acme")
    assert (item["total"], item["currency"]) == ("812.5", "USD")


def test_an_unknown_status_is_refused_with_400_naming_the_values(api):
    response = api.get("/api/v1/approvals", {"status": "foo"}, status=400)
    error = response.json["error"]
    assert error["code"] == "invalid_parameter"
    assert "status" in error["message"] and "pending" in error["message"]
    assert api.get("/api/v1/approvals", {"status": "rejected"}).status_int == 200


def test_the_step_a_request_was_rejected_in_says_rejected(api, order_id):
    oid = order_id("rejected")
    request_id = api.post_json("/api/v1/orders", {"id": oid, "buyer": "bob", "total": 900}).json[
        "approval"
    ]["id"]
    rejected = api.post_json(
        f"/api/v1/approvals/{request_id}/reject", {"approver": "ann", "comment": "no"}
    ).json
    assert rejected["status"] == "rejected"
    assert [s["state"] for s in rejected["steps"]] == ["rejected"]
    brief = api.get(f"/api/v1/orders/{oid}").json["approval"]
    assert [s["state"] for s in brief["steps"]] == ["rejected"]


def test_step_states_of_open_and_closed_requests():
    def states(status, current, count=3):
        request = SimpleNamespace(status=status, current_step=current)
        return [step_state(request, i) for i in range(count)]

    assert states("pending", 1) == ["done", "current", "waiting"]
    assert states("rejected", 1) == ["done", "rejected", "not_reached"]
    assert states("expired", 0) == ["expired", "not_reached", "not_reached"]
    assert states("withdrawn", 2) == ["done", "done", "withdrawn"]
    assert states("approved", 2) == ["done", "done", "done"]
    every = {
        s
        for status in ("pending", "rejected", "expired", "withdrawn", "approved")
        for current in range(3)
        for s in states(status, current)
    }
    assert every <= set(STEP_STATES)
