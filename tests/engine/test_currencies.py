"""Thresholds per currency: per-currency amounts, their validation, the
directory's amounts in another priced currency, and the behavioural diff per currency."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approvalrules.diff import behavioural_diff
from approvalrules.engine.currencies import amount_positions, in_currency
from approvalrules.errors import OrderError

from .conftest import BASE_DIRECTORY, NOW, make_directory, make_policy, problems_of, ruleset

STEP = {
    "name": "mgr",
    "when": {"total": {"gt": {"USD": 500, "EUR": 450}}},
    "approvers": {"any_of": [{"role": "manager"}]},
}


def multi(**fields) -> dict:
    data = ruleset(
        currencies=["EUR"],
        limits={"max_order_total": {"USD": 10000, "EUR": 9000}},
        approval={"steps": [copy.deepcopy(STEP)]},
    )
    data.update(fields)
    return data


def decide(policy, total, currency=None, buyer="sam", directory=None):
    order = {"buyer": buyer, "total": total}
    if currency:
        order["currency"] = currency
    return policy.evaluate(order, directory or make_directory(), now=NOW)


# ------------------------------------------------------------ evaluation


def test_each_priced_currency_is_compared_with_its_own_amounts():
    policy = make_policy(multi())
    assert decide(policy, 480, "USD").outcome == "approved"
    assert decide(policy, 480, "EUR").outcome == "pending"
    assert decide(policy, 480).outcome == "approved"  # no currency: the rule set's own
    assert decide(policy, 9500, "USD").outcome == "pending"
    blocked = decide(policy, 9500, "EUR")
    assert blocked.outcome == "blocked" and "9000 EUR" in blocked.reasons[0].message


def test_a_euro_decision_states_the_euro_and_the_same_version():
    policy = make_policy(multi()).with_version(7)
    decision = decide(policy, 480, "EUR")
    assert decision.order.currency == "EUR"
    assert decision.ruleset["version"] == 7 and decision.ruleset["name"] == "t"
    assert any(t.rule == "currencies" and "EUR" in t.why for t in decision.trace)


def test_a_currency_neither_priced_nor_converted_is_blocked_naming_what_is():
    policy = make_policy(multi(conversion={"GBP": "1.27"}))
    decision = decide(policy, 10, "JPY")
    assert decision.outcome == "blocked"
    reason = decision.reasons[0]
    assert reason.code == "currency_not_supported"
    assert "USD, EUR and converts GBP, not JPY" in reason.message
    assert reason.details["priced"] == ["USD", "EUR"]


def test_a_converted_currency_uses_the_rule_sets_own_amounts():
    policy = make_policy(multi(conversion={"GBP": "1.25"}))
    # 400 GBP = 500.00 USD: not over 500 USD (the euro amount 450 plays no part)
    assert decide(policy, 400, "GBP").outcome == "approved"
    assert decide(policy, "400.01", "GBP").outcome == "pending"
    assert policy.pricing_currency("GBP") == "USD"
    assert policy.pricing_currency("EUR") == "EUR"
    assert policy.pricing_currency(None) == "USD"
    assert policy.pricing_currency("JPY") is None


def _limited(limit=1000) -> dict:
    data = copy.deepcopy(BASE_DIRECTORY)
    data["accounts"]["mgr-ops"]["memberships"][0]["settings"] = {"approval_limit": limit}
    return data


def test_directory_amounts_are_converted_into_a_priced_currency_with_its_rate():
    policy = make_policy(multi(conversion={"EUR": "1.25"}))
    directory = make_directory(_limited(1000))  # Otto: up to 1,000 USD = 800.00 EUR
    within = [a.account for a in decide(policy, 800, "EUR", directory=directory).steps[0].approvers]
    beyond = [
        a.account for a in decide(policy, "800.01", "EUR", directory=directory).steps[0].approvers
    ]
    assert "mgr-ops" in within and "mgr-ops" not in beyond
    # in dollars the limit is the directory's number itself
    assert "mgr-ops" in [
        a.account for a in decide(policy, 1000, "USD", directory=directory).steps[0].approvers
    ]


def test_assignment_amounts_are_converted_too():
    data = copy.deepcopy(BASE_DIRECTORY)
    data["assignments"] = [
        {"approver": "mgr-ops", "account": "sam", "company": "acme", "threshold": 1000}
    ]
    tiers = {"name": "tiers", "kind": "assignment_tiers"}
    policy = make_policy(multi(conversion={"EUR": "2"}, approval={"steps": [tiers]}))
    directory = make_directory(data)
    assert [s.name for s in decide(policy, 501, "EUR", directory=directory).steps] == ["tiers@500"]
    assert decide(policy, 500, "EUR", directory=directory).steps == ()


def test_a_directory_amount_with_no_rate_refuses_the_order_and_says_how_to_fix_it():
    policy = make_policy(multi())
    with pytest.raises(OrderError) as info:
        decide(policy, 600, "EUR", directory=make_directory(_limited(1000)))
    assert info.value.code == "currency_not_priced"
    assert (
        "approval_limit of mgr-ops" in info.value.message and "conversion.EUR" in info.value.message
    )
    # zero needs no rate, and dollar orders are unaffected
    assert decide(policy, 600, "EUR", directory=make_directory(_limited(0))).outcome == "pending"
    assert decide(policy, 600, "USD", directory=make_directory(_limited(1000))).outcome == "pending"


def test_budgets_per_currency_compare_in_the_orders_currency():
    budget = {
        "name": "monthly",
        "period": "month",
        "amount": {"USD": 1000, "EUR": 800},
        "on_exceed": "block",
    }
    policy = make_policy(multi(limits={"budgets": [budget]}))
    order = {"buyer": "sam", "total": 100, "currency": "EUR"}
    assert (
        policy.evaluate(order, make_directory(), now=NOW, budgets_spent={"monthly": 750}).outcome
        == "blocked"
    )
    assert (
        policy.evaluate(
            {**order, "currency": "USD"}, make_directory(), now=NOW, budgets_spent={"monthly": 750}
        ).outcome
        == "approved"
    )


def test_a_rule_set_with_one_currency_compiles_to_no_variants():
    policy = make_policy(ruleset(approval={"steps": [{**STEP, "when": {"total": {"gt": 500}}}]}))
    assert policy.variants == {} and policy.priced_currencies == ("USD",)
    # a map naming only the rule set's currency is allowed, and means that amount
    mapped = make_policy(
        ruleset(approval={"steps": [{**STEP, "when": {"total": {"gt": {"USD": 500}}}}]})
    )
    assert mapped.variants == {}
    assert decide(mapped, 500).outcome == "approved" and decide(mapped, 501).outcome == "pending"


def test_a_child_inherits_its_parents_currencies():
    parent = multi()
    parent["ruleset"] = "parent"
    from .conftest import to_yaml

    texts = {"parent": to_yaml(parent)}
    child = make_policy(
        ruleset(ruleset="child", extends="parent", roles=parent["roles"]), resolve=texts.get
    )
    assert child.priced_currencies == ("USD", "EUR")
    assert decide(child, 480, "EUR").outcome == "pending"


# ------------------------------------------------------------ validation


def test_a_plain_amount_in_a_rule_set_pricing_several_currencies_is_an_error():
    problems = problems_of(
        __import__("yaml").safe_dump(
            multi(settings={"approval_limit": 700, "no_approval_below": 0})
        )
    )
    codes = {p.code: p for p in problems}
    assert set(codes) == {"ambiguous_amount"}  # 0 is 0 in any money
    assert "settings.approval_limit" in codes["ambiguous_amount"].format()
    assert "{USD: 700, EUR: ...}" in codes["ambiguous_amount"].message


def test_an_amount_missing_a_priced_currency_or_naming_another_is_an_error():
    data = multi(limits={"max_order_total": {"USD": 10000, "GBP": 9000}})
    data["approval"]["steps"][0]["when"] = {"any": [{"total": {"gt": {"USD": 500}}}]}
    problems = problems_of(__import__("yaml").safe_dump(data))
    found = sorted((p.code, p.path) for p in problems)
    assert found == [
        ("missing_currency_amount", "approval.steps[0].when.any[0].total.gt"),
        ("missing_currency_amount", "limits.max_order_total"),
        ("unpriced_currency", "limits.max_order_total.GBP"),
    ]


def test_currencies_must_not_repeat_the_rule_sets_own():
    problems = problems_of(__import__("yaml").safe_dump(multi(currencies=["EUR", "USD"])))
    assert [p.code for p in problems] == ["invalid_currencies"]


def test_limit_checks_run_in_each_currency():
    data = multi(limits={"max_order_total": {"USD": 1000, "EUR": 400}})
    from .conftest import checked

    warnings = checked(data).warnings
    assert [w.message for w in warnings] == [
        "in EUR: step 'mgr' applies only above 450, but orders above 400 are blocked "
        "(limits.max_order_total)"
    ]


def test_in_currency_leaves_its_input_untouched_and_every_amount_plain():
    data = multi(settings={"approval_limit": {"USD": 700, "EUR": 650}})
    before = copy.deepcopy(data)
    view = in_currency(data, "EUR")
    assert data == before
    assert view["currency"] == "EUR" and "currencies" not in view
    assert all(not isinstance(container[key], dict) for _, container, key in amount_positions(view))
    assert view["settings"]["approval_limit"] == 650


# ------------------------------------------------------------ property


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    usd=st.integers(min_value=0, max_value=5000),
    eur=st.integers(min_value=0, max_value=5000),
    total=st.decimals(min_value=0, max_value=6000, places=2),
    currency=st.sampled_from(["USD", "EUR"]),
)
def test_a_multi_currency_rule_set_decides_like_the_single_currency_rule_set_of_that_currency(
    usd, eur, total, currency
):
    """Never a comparison across currencies: in each priced currency the decision is exactly
    that of a rule set written in that currency alone."""
    step = {**STEP, "when": {"total": {"gt": {"USD": usd, "EUR": eur}}}}
    data = multi(
        approval={"steps": [step]}, limits={"max_order_total": {"USD": 10000, "EUR": 9000}}
    )
    alone = ruleset(
        currency=currency,
        approval={
            "steps": [{**STEP, "when": {"total": {"gt": usd if currency == "USD" else eur}}}]
        },
        limits={"max_order_total": 10000 if currency == "USD" else 9000},
    )
    many, one = _cached(data), _cached(alone)
    a, b = decide(many, str(total), currency), decide(one, str(total), currency)
    assert (a.outcome, [s.name for s in a.steps]) == (b.outcome, [s.name for s in b.steps])


_POLICIES: dict = {}


def _cached(data):
    key = repr(data)
    if key not in _POLICIES:
        _POLICIES[key] = make_policy(data)
    return _POLICIES[key]


# ------------------------------------------------------------ diff


def test_the_behavioural_diff_explores_each_priced_currency_and_names_it():
    old = make_policy(multi())
    changed = multi()
    changed["approval"]["steps"][0]["when"] = {"total": {"gt": {"USD": 500, "EUR": 480}}}
    report = behavioural_diff(old, make_policy(changed), make_directory())
    texts = report.lines()
    assert texts and all(t.startswith("orders in EUR over 450 up to 480") for t in texts)
    assert {c.currency for c in report.changes} == {"EUR"}
    assert report.changes[0].as_dict()["example"]["order"]["currency"] == "EUR"
    assert behavioural_diff(old, make_policy(multi()), make_directory()).changes == []
