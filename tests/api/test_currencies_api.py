"""Thresholds per currency through the API, on the sample rule set
rules/worldwide.yaml: USD and EUR priced natively, GBP converted, the rest refused."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from approvalrules.store.models import BudgetLedger, Order


def evaluate(api, total, currency=None, status=200):
    body = {"buyer": "wanda", "total": total}
    if currency:
        body["currency"] = currency
    return api.post_json("/api/v1/evaluate", body, status=status).json


def submit(api, order_id, total, currency):
    return api.post_json(
        "/api/v1/orders",
        {"id": order_id, "buyer": "wanda", "total": total, "currency": currency},
        status="*",
    )


def test_the_same_number_in_two_currencies_gets_two_decisions(api):
    dollars, euros = evaluate(api, 480, "USD"), evaluate(api, 480, "EUR")
    assert dollars["outcome"] == "approved"
    assert euros["outcome"] == "pending"
    assert [s["name"] for s in euros["steps"]] == ["approver"]
    assert euros["order"]["currency"] == "EUR"
    assert euros["ruleset"]["name"] == dollars["ruleset"]["name"] == "worldwide"
    assert euros["ruleset"]["version"] == dollars["ruleset"]["version"]


def test_directory_limits_are_converted_for_euro_orders(api):
    # Wes may approve up to 1,000 USD = 909.09 EUR at the rule set's rate of 1.10
    within = evaluate(api, 900, "EUR")["steps"][0]["approvers"]
    beyond = evaluate(api, 950, "EUR")["steps"][0]["approvers"]
    assert {a["account"] for a in within} == {"walt", "wes"}
    assert {a["account"] for a in beyond} == {"walt"}


def test_an_unpriced_currency_is_blocked_with_what_is_priced(api):
    decision = evaluate(api, 100, "JPY")
    assert decision["outcome"] == "blocked"
    reason = decision["reasons"][0]
    assert reason["code"] == "currency_not_supported"
    assert reason["details"] == {"currency": "JPY", "priced": ["USD", "EUR"], "converted": ["GBP"]}


def test_a_euro_order_goes_through_approval_priced_in_euros(api, order_id):
    oid = order_id("eur")
    response = submit(api, oid, 600, "EUR")
    assert response.status_int == 201, response.text
    assert response.json["status"] == "pending"
    request_id = response.json["approval"]["id"]
    approved = api.post_json(f"/api/v1/approvals/{request_id}/approve", {"approver": "wes"}).json
    assert approved["status"] == "approved"


def _ledger(world, order_external_id):
    with world.session() as session:
        order = session.scalar(select(Order).where(Order.external_id == order_external_id))
        return [
            (row.scope_key, row.amount, row.kind)
            for row in session.scalars(
                select(BudgetLedger).where(BudgetLedger.order_id == order.id)
            )
        ]


def test_budgets_draw_in_the_currency_the_order_was_priced_in(api, order_id, world):
    euro, pound, dollar = order_id("eur"), order_id("gbp"), order_id("usd")
    assert submit(api, euro, 100, "EUR").json["status"] == "approved"
    assert submit(api, pound, 100, "GBP").json["status"] == "approved"
    assert submit(api, dollar, 200, "USD").json["status"] == "approved"
    # euros draw euros from the euro ledger; pounds draw their dollar value from the dollar one
    assert _ledger(world, euro) == [("monthly:EUR/company", Decimal("100"), "draw")]
    assert _ledger(world, pound) == [("monthly/company", Decimal("127.00"), "draw")]
    assert _ledger(world, dollar) == [("monthly/company", Decimal("200"), "draw")]


def test_a_euro_evaluation_reads_the_euro_ledger(api, order_id, world):
    assert submit(api, order_id("eur"), 100, "EUR").json["status"] == "approved"
    with world.session() as session:
        rows = session.scalars(
            select(BudgetLedger).where(BudgetLedger.scope_key == "monthly:EUR/company")
        ).all()
        spent = sum(r.amount if r.kind == "draw" else -r.amount for r in rows)
    remaining = Decimal(4500) - spent
    assert spent >= 100
    codes = lambda decision: [r["code"] for r in decision["reasons"]]  # noqa: E731
    assert "budget_exceeded" not in codes(evaluate(api, str(remaining), "EUR"))
    over = evaluate(api, str(remaining + Decimal("0.01")), "EUR")
    assert "budget_exceeded" in codes(over)
    # the dollar budget is another ledger: the same number of dollars is within it
    assert "budget_exceeded" not in codes(evaluate(api, "3000", "USD"))
