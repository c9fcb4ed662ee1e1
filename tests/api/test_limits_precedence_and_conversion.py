"""The engine end to end through the storefront API: approver limits with
fall-back to the parent company, deny and bypass rules, AND of approver groups (all_of),
currency conversion.

Tenant ``demo``'s rule set ``beyond`` (rules/beyond.yaml, rules/directories/beyond.yaml:
Beyond Ltd, a subsidiary of Beyond Holding) as loaded; these tests only submit fresh
orders and approve them, so the shared data stays as it is.  The overlap of two all_of
groups runs in tenant ``beyond`` (tests/api/beyond/beyond-dual.yaml).
"""

from __future__ import annotations

from .test_acceptance_a import approve, submit


def codes(decision) -> list[str]:
    return [r["code"] for r in decision["reasons"]]


def reason(decision, code) -> dict:
    return next(r for r in decision["reasons"] if r["code"] == code)


def step_approvers(api, request_id) -> list[tuple[str, list[str]]]:
    detail = api.get(f"/api/v1/approvals/{request_id}").json
    return [(s["name"], [a["account"] for a in s["approvers"]]) for s in detail["steps"]]


# ------------------------------------------------- approver limits with fall-back


def test_no_manager_covers_the_total_the_parent_companys_approver_approves(api, order_id):
    oid = order_id("FB")
    body = submit(api, oid, "una", 8000).json
    decision = body["decision"]
    assert decision["outcome"] == "pending"
    assert "escalated_to_parent" in codes(decision)
    escalated = reason(decision, "escalated_to_parent")
    assert (
        escalated["details"] == {"step": "manager", "company": "holding"}
        and "escalated to holding" in escalated["message"]
    )
    hana = decision["steps"][0]["approvers"]
    assert [a["account"] for a in hana] == ["hana"]
    assert hana[0]["why"][0].startswith(
        "approver of parent company holding: no approver of beyond covers"
    )
    request_id = body["approval"]["id"]
    # the subsidiary's managers (limit 5,000) cannot approve 8,000
    refused = approve(api, request_id, "jon", status=403).json["error"]
    assert refused["code"] == "not_eligible" and refused["details"]["eligible"] == ["hana"]
    assert approve(api, request_id, "hana").json["status"] == "approved"
    assert api.get(f"/api/v1/orders/{oid}").json["status"] == "approved"


def test_within_the_managers_limit_there_is_no_fall_back(api, order_id):
    body = submit(api, order_id("FB"), "una", 4000).json
    assert "escalated_to_parent" not in codes(body["decision"])
    assert "hana" not in body["approval"]["steps"][0]["approvers"]
    assert {"jon", "kim"} <= set(body["approval"]["steps"][0]["approvers"])


def test_above_the_parents_approvers_its_admin_is_the_last_resort(api, order_id):
    body = submit(api, order_id("FB"), "una", 60000).json
    decision = body["decision"]
    assert decision["outcome"] == "pending" and "escalated_to_parent" in codes(decision)
    manager = decision["steps"][0]
    assert [a["account"] for a in manager["approvers"]] == ["hugo"]
    assert manager["approvers"][0]["why"][0].startswith("admin of parent company holding")
    assert (
        approve(api, body["approval"]["id"], "hana", status=403).json["error"]["code"]
        == "not_eligible"
    )
    assert approve(api, body["approval"]["id"], "hugo").json["current_step"] == 1


# ----------------------------------------------------------- deny and bypass


def test_a_deny_rule_blocks_with_its_reason_even_for_a_bypassed_buyer(api, order_id):
    for buyer in ("una", "tilda"):
        oid = order_id("DENY")
        response = submit(
            api, oid, buyer, 100, lines=[{"sku": "KNIFE", "category": "weapons", "quantity": 1}]
        )
        decision = response.json["decision"]
        assert decision["outcome"] == "blocked" and "bypassed" not in codes(decision)
        denied = reason(decision, "denied")
        assert denied["message"] == "weapons may not be ordered through this store" and denied[
            "details"
        ] == {"rule": "no-weapons"}
        assert response.json.get("approval") is None
        assert api.get(f"/api/v1/orders/{oid}").json["status"] == "blocked"


def test_bypass_rules_approve_without_steps(api, order_id):
    # by role and condition: a trusted buyer's 1,500
    oid = order_id("BYP")
    body = submit(api, oid, "tilda", 1500).json
    decision = body["decision"]
    assert decision["outcome"] == "approved" and decision["steps"] == []
    assert reason(decision, "bypassed")["details"] == {"rule": "trusted-small"}
    assert (
        body.get("approval") is None
        and api.get(f"/api/v1/orders/{oid}").json["status"] == "approved"
    )
    # by condition only: a single sample line
    sample = submit(
        api, order_id("BYP"), "una", 900, lines=[{"sku": "SAMPLE", "quantity": 1}]
    ).json["decision"]
    assert sample["outcome"] == "approved" and reason(sample, "bypassed")["details"] == {
        "rule": "samples"
    }
    # above the bypass's condition the steps apply
    over = submit(api, order_id("BYP"), "tilda", 2500).json
    assert over["decision"]["outcome"] == "pending" and "bypassed" not in codes(over["decision"])
    assert [s["name"] for s in over["approval"]["steps"]] == ["manager"]


# ------------------------------------------------------- AND of approver groups


def test_all_of_needs_one_approval_from_each_group(api, order_id):
    oid = order_id("AND")
    body = submit(api, oid, "una", 12000).json
    request_id = body["approval"]["id"]
    steps = step_approvers(api, request_id)
    assert [name for name, _ in steps] == ["manager", "dual-control/1", "dual-control/2"]
    assert steps[0][1] == ["hana"] and "maxine" in steps[1][1] and steps[2][1] == ["bert"]
    assert approve(api, request_id, "hana").json["current_step"] == 1
    # the admin group's approver cannot decide the finance group's sub-step
    assert approve(api, request_id, "bert", status=403).json["error"]["code"] == "not_eligible"
    after_finance = approve(api, request_id, "maxine").json
    assert after_finance["status"] == "pending" and after_finance["current_step"] == 2
    # nor can finance decide the admin group's
    assert approve(api, request_id, "maxine", status=403).json["error"]["code"] == "not_eligible"
    assert api.get(f"/api/v1/orders/{oid}").json["status"] == "pending"
    assert approve(api, request_id, "bert").json["status"] == "approved"
    history = api.get(f"/api/v1/approvals/{request_id}").json["history"]
    assert [(h["step"], h["by"]) for h in history if h["action"] == "approve"] == [
        ("manager", "hana"),
        ("dual-control/1", "maxine"),
        ("dual-control/2", "bert"),
    ]
    assert api.get(f"/api/v1/orders/{oid}").json["status"] == "approved"


def test_one_person_counts_for_one_all_of_group_only(beyond, order_id):
    body = submit(beyond, order_id("AND2"), "dana", 12000).json
    request_id = body["approval"]["id"]
    assert step_approvers(beyond, request_id) == [
        ("dual-control/1", ["fay", "finn"]),
        ("dual-control/2", ["abe", "fay", "finn"]),
    ]
    assert approve(beyond, request_id, "fay").json["current_step"] == 1
    refused = approve(beyond, request_id, "fay", status=409).json["error"]
    assert refused["code"] == "already_approved_in_group"
    assert refused["details"] == {"step": "dual-control/2", "approved": "dual-control/1"}
    detail = beyond.get(f"/api/v1/approvals/{request_id}").json
    assert detail["status"] == "pending" and detail["current_step"] == 1
    # another finance person (eligible in the second group too) completes it
    assert approve(beyond, request_id, "finn").json["status"] == "approved"


def test_after_a_reversal_earlier_approvals_no_longer_bind(beyond, order_id):
    request_id = submit(beyond, order_id("AND3"), "dana", 12000).json["approval"]["id"]
    approve(beyond, request_id, "fay")
    assert approve(beyond, request_id, "finn").json["status"] == "approved"
    # a reversal starts a new generation: who approved which group before no longer counts
    reversed_ = beyond.post_json(
        f"/api/v1/approvals/{request_id}/reverse", {"approver": "abe"}
    ).json
    assert reversed_["status"] == "pending" and reversed_["current_step"] == 0
    assert approve(beyond, request_id, "finn").json["current_step"] == 1
    assert (
        approve(beyond, request_id, "finn", status=409).json["error"]["code"]
        == "already_approved_in_group"
    )
    assert approve(beyond, request_id, "fay").json["status"] == "approved"


# ------------------------------------------------------------ currency conversion


def test_a_listed_currency_is_converted_before_every_comparison(api, order_id):
    oid = order_id("CUR")
    body = submit(api, oid, "una", 1000, currency="EUR").json
    decision = body["decision"]
    assert codes(decision)[0] == "currency_converted"
    converted = reason(decision, "currency_converted")
    assert converted["message"] == "1000 EUR converted to 1080.00 USD at 1.08"
    assert converted["details"]["currency"] == "EUR" and converted["details"]["priced_in"] == "USD"
    assert decision["outcome"] == "pending" and [s["name"] for s in body["approval"]["steps"]] == [
        "manager"
    ]
    order = api.get(f"/api/v1/orders/{oid}").json
    assert order["currency"] == "EUR" and order["total"] == "1000"
    # 462.96 EUR is 500.00 USD (half-even): not over 500, approved
    small = submit(api, order_id("CUR"), "una", "462.96", currency="EUR").json["decision"]
    assert small["outcome"] == "approved" and "currency_converted" in codes(small)
    # 80,000 GBP = 101,600 USD: over the maximum of 100,000
    big = submit(api, order_id("CUR"), "una", 80000, currency="GBP").json["decision"]
    assert big["outcome"] == "blocked" and {
        "currency_converted",
        "max_order_total_exceeded",
    } <= set(codes(big))


def test_an_unlisted_currency_is_refused(api, order_id):
    oid = order_id("CUR")
    response = submit(api, oid, "una", 100, currency="JPY")
    decision = response.json["decision"]
    assert decision["outcome"] == "blocked" and codes(decision) == ["currency_not_supported"]
    assert (
        "prices orders in USD and converts EUR, GBP, not JPY"
        in reason(decision, "currency_not_supported")["message"]
    )
    assert response.json.get("approval") is None
    assert api.get(f"/api/v1/orders/{oid}").json["status"] == "blocked"
