"""Evaluation semantics, one behaviour per test, on small inline rule sets and the base directory.

Base org (conftest.BASE_DIRECTORY): company acme, groups sales and ops;
boss (admin, master), mgr-sales / mgr-ops (managers), sam (user, sales),
olga (user, ops), lou (user, no group).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from approvalrules.engine import Order
from approvalrules.errors import OrderError

from .conftest import (
    BASE_DIRECTORY,
    NOW,
    make_directory,
    make_policy,
    ruleset,
    to_yaml,
    with_account,
)

MANAGERS = {"any_of": [{"role": "manager"}]}


def evaluate(rules: dict, order: dict, directory=None, **kwargs):
    policy = make_policy(rules)
    return policy.evaluate(
        order, directory or make_directory(), now=kwargs.pop("now", NOW), **kwargs
    )


def step(name="approve", when=None, approvers=None, **extra) -> dict:
    data = {"name": name}
    if when is not None:
        data["when"] = when
    data["approvers"] = approvers or MANAGERS
    data.update(extra)
    return data


def approvers_of(decision, index=0) -> list[str]:
    return [a.account for a in decision.steps[index].approvers]


def trace(decision, rule=None) -> list[dict]:
    entries = decision.as_dict()["trace"]
    return [t for t in entries if rule is None or t["rule"] == rule]


# ------------------------------------------------------------- approved


def test_no_steps_means_approved_with_confirmation():
    d = evaluate(ruleset(), {"buyer": "sam", "total": 10})
    assert d.outcome == "approved"
    assert d.reasons == () and d.steps == () and d.expires_at is None
    assert d.payer == {"kind": "buyer", "id": "sam"}
    assert [n.as_dict() for n in d.notifications] == [
        {"event": "order_confirmation", "recipients": [{"channel": "email", "account": "sam"}]}
    ]


# -------------------------------------------------------------- blocked


def test_role_without_place_orders_is_blocked():
    data = with_account(
        "vic", {"name": "Vic", "memberships": [{"company": "acme", "role": "viewer"}]}
    )
    d = evaluate(ruleset(), {"buyer": "vic", "total": 10}, make_directory(data))
    assert d.outcome == "blocked"
    assert d.reason_codes() == ["may_not_order"]
    assert d.reasons[0].message == "Viewer may not place orders"
    assert d.payer is None and d.notifications == ()
    assert trace(d, "roles.permissions.place_orders") == [
        {
            "rule": "roles.permissions.place_orders",
            "result": "failed",
            "why": "Viewer may not place orders",
        }
    ]


def test_may_order_false_on_the_membership_blocks():
    data = with_account(
        "sam",
        {
            "name": "Sam",
            "memberships": [
                {
                    "company": "acme",
                    "role": "user",
                    "group": "sales",
                    "settings": {"may_order": False},
                }
            ],
        },
    )
    d = evaluate(ruleset(), {"buyer": "sam", "total": 10}, make_directory(data))
    assert d.outcome == "blocked"
    assert d.reasons[0].code == "may_not_order"
    assert "may_order: false" in d.reasons[0].message
    assert trace(d, "settings.may_order")[0]["result"] == "failed"


def test_role_missing_from_the_rule_set_blocks():
    data = with_account("x", {"name": "X", "memberships": [{"company": "acme", "role": "intern"}]})
    d = evaluate(ruleset(), {"buyer": "x", "total": 10}, make_directory(data))
    assert d.reason_codes() == ["may_not_order"]
    assert d.reasons[0].message == "role 'intern' is not defined in rule set t"


def test_max_order_total_exceeded():
    d = evaluate(ruleset(limits={"max_order_total": "1000"}), {"buyer": "sam", "total": "1000.01"})
    assert d.outcome == "blocked"
    (reason,) = d.reasons
    assert reason.code == "max_order_total_exceeded"
    assert reason.message == "cart value too high: 1000.01 is above the maximum of 1000 USD"
    assert reason.details == {"maximum": "1000"}


def test_max_order_total_boundary_is_allowed():
    d = evaluate(ruleset(limits={"max_order_total": 1000}), {"buyer": "sam", "total": 1000})
    assert d.outcome == "approved"
    assert trace(d, "limits.max_order_total") == [
        {"rule": "limits.max_order_total", "result": "passed", "why": "1000 <= 1000"}
    ]


def test_membership_max_order_total_is_the_lower_of_both():
    rules = ruleset(limits={"max_order_total": 1000}, settings={"max_order_total": 300})
    assert evaluate(rules, {"buyer": "sam", "total": 301}).reason_codes() == [
        "max_order_total_exceeded"
    ]
    assert evaluate(rules, {"buyer": "sam", "total": 300}).outcome == "approved"


def test_restricted_products_name_the_lines():
    rules = ruleset(settings={"restricted_skus": ["GUN"], "restricted_categories": ["alcohol"]})
    order = {
        "buyer": "sam",
        "total": 50,
        "lines": [
            {"sku": "PEN", "quantity": 2},
            {"sku": "GUN"},
            {"sku": "WINE", "category": "alcohol"},
        ],
    }
    d = evaluate(rules, order)
    assert d.outcome == "blocked"
    (reason,) = d.reasons
    assert reason.code == "restricted_products"
    assert reason.message == "these lines may not be ordered: GUN (restricted), WINE (restricted)"
    assert reason.details == {
        "lines": [
            {"line": 1, "sku": "GUN", "why": "restricted"},
            {"line": 2, "sku": "WINE", "why": "restricted"},
        ]
    }


def test_favourites_only():
    rules = ruleset(settings={"favourites_only": True, "favourites": ["PEN"]})
    d = evaluate(rules, {"buyer": "sam", "total": 5, "lines": [{"sku": "PEN"}, {"sku": "INK"}]})
    assert d.reason_codes() == ["restricted_products"]
    assert d.reasons[0].details["lines"] == [{"line": 1, "sku": "INK", "why": "not in favourites"}]
    assert (
        evaluate(rules, {"buyer": "sam", "total": 5, "lines": [{"sku": "PEN"}]}).outcome
        == "approved"
    )


def test_future_ship_date():
    rules = ruleset(settings={"allow_future_ship_dates": False})
    d = evaluate(rules, {"buyer": "sam", "total": 5, "requested_date": "2026-01-16"})
    assert d.reason_codes() == ["future_ship_date_not_allowed"]
    assert "2026-01-16" in d.reasons[0].message
    assert (
        evaluate(rules, {"buyer": "sam", "total": 5, "requested_date": "2026-01-15"}).outcome
        == "approved"
    )
    assert (
        evaluate(ruleset(), {"buyer": "sam", "total": 5, "requested_date": "2030-01-01"}).outcome
        == "approved"
    )


def test_manual_ship_to():
    rules = ruleset(settings={"allow_manual_ship_to": False})
    assert evaluate(
        rules, {"buyer": "sam", "total": 5, "ship_to": {"manual": True}}
    ).reason_codes() == ["manual_ship_to_not_allowed"]
    assert (
        evaluate(rules, {"buyer": "sam", "total": 5, "ship_to": {"id": "HQ"}}).outcome == "approved"
    )


def test_cost_centre_required_and_checked():
    rules = ruleset(settings={"summary_invoicing": True, "cost_centres": ["CC1", "CC2"]})
    d = evaluate(rules, {"buyer": "sam", "total": 5})
    assert d.reason_codes() == ["cost_centre_required"]
    assert d.reasons[0].message == "summary invoicing needs a cost centre: one of CC1, CC2"
    d = evaluate(rules, {"buyer": "sam", "total": 5, "cost_centre": "CC9"})
    assert d.reason_codes() == ["unknown_cost_centre"]
    assert evaluate(rules, {"buyer": "sam", "total": 5, "cost_centre": "CC2"}).outcome == "approved"


def test_quote_cannot_be_submitted():
    assert evaluate(ruleset(), {"buyer": "sam", "total": 5, "type": "quote"}).reason_codes() == [
        "quote_not_approvable"
    ]


def test_other_currency_is_blocked():
    d = evaluate(ruleset(), {"buyer": "sam", "total": 5, "currency": "EUR"})
    assert d.reason_codes() == ["currency_not_supported"]
    assert (
        evaluate(ruleset(), {"buyer": "sam", "total": 5, "currency": "USD"}).outcome == "approved"
    )


def test_inactive_account_and_membership_are_blocked():
    data = with_account(
        "sam",
        {
            "name": "Sam",
            "active": False,
            "memberships": [{"company": "acme", "role": "user", "status": "inactive"}],
        },
    )
    d = evaluate(ruleset(), {"buyer": "sam", "total": 5}, make_directory(data))
    assert d.reason_codes()[:2] == ["account_inactive", "membership_inactive"]


def test_all_blocking_reasons_are_collected_in_order():
    rules = ruleset(
        limits={"max_order_total": 10},
        settings={"allow_manual_ship_to": False, "restricted_skus": ["X"]},
    )
    d = evaluate(
        rules, {"buyer": "sam", "total": 50, "lines": [{"sku": "X"}], "ship_to": {"manual": True}}
    )
    assert d.reason_codes() == [
        "restricted_products",
        "manual_ship_to_not_allowed",
        "max_order_total_exceeded",
    ]


def test_blocked_order_skips_steps_and_limits():
    rules = ruleset(
        limits={"max_order_total": 10, "order_limit": {"amount": 5}}, approval={"steps": [step()]}
    )
    d = evaluate(rules, {"buyer": "sam", "total": 50})
    assert d.outcome == "blocked" and d.steps == ()
    assert not [t for t in trace(d) if t["rule"].startswith(("approval.", "limits.order_limit"))]


# -------------------------------------------------------------- pending


def test_pending_lists_eligible_approvers_with_why():
    rules = ruleset(
        approval={
            "steps": [
                step(
                    "big",
                    {"total": {"gt": 500}},
                    {
                        "any_of": [
                            {"role": "manager", "relation": "same_group"},
                            {"relation": "group_master"},
                        ]
                    },
                )
            ]
        }
    )
    d = evaluate(rules, {"buyer": "sam", "total": 900})
    assert d.outcome == "pending"
    assert d.reason_codes() == ["approval_required"]
    assert d.reasons[0].message == "approval required: big"
    (s,) = d.steps
    assert s.as_dict() == {
        "name": "big",
        "required": 1,
        "condition": "total > 500",
        "approvers": [
            {
                "account": "boss",
                "name": "Boss",
                "role": "admin",
                "role_label": "Company Admin",
                "why": ["master of acme"],
            },
            {
                "account": "mgr-sales",
                "name": "Mia",
                "role": "manager",
                "role_label": "Company Manager",
                "why": ["Company Manager; in sam's group sales"],
            },
        ],
    }


def test_step_not_matched_leaves_order_approved():
    rules = ruleset(approval={"steps": [step("big", {"total": {"gt": 500}})]})
    d = evaluate(rules, {"buyer": "sam", "total": 500})
    assert d.outcome == "approved"
    assert trace(d, "approval.steps.big") == [
        {
            "rule": "approval.steps.big",
            "result": "not_matched",
            "why": "total > 500: no (total 500)",
        }
    ]


def test_required_count_and_insufficient_approvers():
    rules = ruleset(
        approval={
            "steps": [
                step(
                    "two",
                    required=2,
                    approvers={"any_of": [{"role": "manager", "relation": "same_group"}]},
                )
            ]
        }
    )
    d = evaluate(rules, {"buyer": "sam", "total": 10})
    assert d.steps[0].required == 2
    assert approvers_of(d) == ["mgr-sales"]
    assert d.reason_codes() == ["approval_required", "insufficient_approvers"]
    assert d.reasons[1].details == {"step": "two"}


def test_steps_apply_in_order_and_all_matching_steps_apply():
    rules = ruleset(
        approval={
            "steps": [
                step("first", {"total": {"gt": 100}}),
                step("never", {"total": {"gt": 10_000}}),
                step("second", {"buyer_group": "sales"}),
            ],
        },
        groups={"sales": {}, "ops": {}},
    )
    d = evaluate(rules, {"buyer": "sam", "total": 200})
    assert [s.name for s in d.steps] == ["first", "second"]
    assert [
        (t["rule"], t["result"]) for t in trace(d) if t["rule"].startswith("approval.steps")
    ] == [
        ("approval.steps.first", "matched"),
        ("approval.steps.never", "not_matched"),
        ("approval.steps.second", "matched"),
    ]


def test_no_approval_below():
    rules = ruleset(settings={"no_approval_below": 100}, approval={"steps": [step()]})
    d = evaluate(rules, {"buyer": "sam", "total": "99.99"})
    assert d.outcome == "approved"
    assert trace(d, "settings.no_approval_below") == [
        {
            "rule": "settings.no_approval_below",
            "result": "matched",
            "why": "99.99 < 100: no approval needed",
        }
    ]
    assert evaluate(rules, {"buyer": "sam", "total": 100}).outcome == "pending"


# ----------------------------------------------------- approver relations


ASSIGNMENT_DIR = {
    **BASE_DIRECTORY,
    "assignments": [{"approver": "mgr-ops", "account": "sam", "company": "acme"}],
}


def test_assigned_relation():
    rules = ruleset(approval={"steps": [step(approvers={"any_of": [{"relation": "assigned"}]})]})
    d = evaluate(rules, {"buyer": "sam", "total": 10}, make_directory(ASSIGNMENT_DIR))
    assert approvers_of(d) == ["mgr-ops"]
    assert d.steps[0].approvers[0].why == ("assigned to sam",)


def test_unassigned_pool_only_when_buyer_has_no_assignment():
    rules = ruleset(
        approval={
            "steps": [
                step(
                    approvers={
                        "any_of": [
                            {"relation": "assigned"},
                            {"role": "manager", "relation": "unassigned"},
                        ]
                    }
                )
            ]
        }
    )
    directory = make_directory(ASSIGNMENT_DIR)
    assert approvers_of(evaluate(rules, {"buyer": "sam", "total": 10}, directory)) == ["mgr-ops"]
    d = evaluate(rules, {"buyer": "olga", "total": 10}, directory)
    assert approvers_of(d) == ["mgr-ops", "mgr-sales"]
    assert d.steps[0].approvers[0].why == ("Company Manager; olga has no assigned approver",)


def test_assignment_limit_excludes_the_approver():
    data = {
        **BASE_DIRECTORY,
        "assignments": [{"approver": "mgr-ops", "account": "sam", "company": "acme", "limit": 500}],
    }
    rules = ruleset(approval={"steps": [step(approvers={"any_of": [{"relation": "assigned"}]})]})
    assert approvers_of(evaluate(rules, {"buyer": "sam", "total": 500}, make_directory(data))) == [
        "mgr-ops"
    ]
    d = evaluate(rules, {"buyer": "sam", "total": 501}, make_directory(data))
    assert approvers_of(d) == []
    assert "insufficient_approvers" in d.reason_codes()
    assert {
        "rule": "approval.steps.approve",
        "result": "excluded",
        "why": "mgr-ops: assigned to sam with a limit of 500, below 501",
    } in trace(d)


def test_step_restricted_assignment():
    data = {
        **BASE_DIRECTORY,
        "assignments": [
            {"approver": "mgr-ops", "account": "sam", "company": "acme", "step": "other"}
        ],
    }
    rules = ruleset(
        approval={
            "steps": [
                step("mine", approvers={"any_of": [{"relation": "assigned"}]}),
                step("other", approvers={"any_of": [{"relation": "assigned"}]}),
            ]
        }
    )
    d = evaluate(rules, {"buyer": "sam", "total": 1}, make_directory(data))
    assert [approvers_of(d, 0), approvers_of(d, 1)] == [[], ["mgr-ops"]]


def test_same_group_relation():
    rules = ruleset(approval={"steps": [step(approvers={"any_of": [{"relation": "same_group"}]})]})
    assert approvers_of(evaluate(rules, {"buyer": "olga", "total": 1})) == ["mgr-ops"]
    assert approvers_of(evaluate(rules, {"buyer": "lou", "total": 1})) == []


def test_group_master_relation():
    rules = ruleset(
        approval={"steps": [step(approvers={"any_of": [{"relation": "group_master"}]})]}
    )
    d = evaluate(rules, {"buyer": "olga", "total": 1})
    assert approvers_of(d) == ["boss"]
    assert d.steps[0].approvers[0].why == ("master of acme",)


def test_company_relation_is_the_default():
    rules = ruleset(
        approval={"steps": [step(approvers={"any_of": [{"role": ["manager", "admin"]}]})]}
    )
    d = evaluate(rules, {"buyer": "lou", "total": 1})
    assert approvers_of(d) == ["boss", "mgr-ops", "mgr-sales"]
    assert d.steps[0].approvers[1].why == ("Company Manager; member of acme",)


def test_named_accounts_selector():
    rules = ruleset(
        approval={"steps": [step(approvers={"any_of": [{"accounts": ["mgr-ops", "sam"]}]})]}
    )
    d = evaluate(rules, {"buyer": "lou", "total": 1})
    assert approvers_of(d) == ["mgr-ops"]  # sam lacks approve_orders
    assert d.steps[0].approvers[0].why == ("named approver; member of acme",)


def test_attribute_selector():
    data = json.loads(json.dumps(BASE_DIRECTORY))
    data["accounts"]["mgr-ops"]["memberships"][0]["attributes"] = {"region": "north"}
    rules = ruleset(
        approval={
            "steps": [step(approvers={"any_of": [{"attributes": {"region": ["north", "east"]}}]})]
        }
    )
    assert approvers_of(evaluate(rules, {"buyer": "lou", "total": 1}, make_directory(data))) == [
        "mgr-ops"
    ]


def test_own_group_scope():
    rules = ruleset(
        approval={
            "scope": "own_group",
            "steps": [step(approvers={"any_of": [{"role": ["manager", "admin"]}]})],
        }
    )
    assert approvers_of(evaluate(rules, {"buyer": "sam", "total": 1})) == ["boss", "mgr-sales"]
    assert approvers_of(evaluate(rules, {"buyer": "lou", "total": 1})) == ["boss"]


def test_step_scope_overrides_approval_scope():
    rules = ruleset(
        approval={
            "scope": "own_group",
            "steps": [step(approvers={"any_of": [{"role": "manager"}]}, scope="universal")],
        }
    )
    assert approvers_of(evaluate(rules, {"buyer": "sam", "total": 1})) == ["mgr-ops", "mgr-sales"]


def test_may_approve_false_and_inactive_members_are_not_candidates():
    data = json.loads(json.dumps(BASE_DIRECTORY))
    data["accounts"]["mgr-ops"]["memberships"][0]["settings"] = {"may_approve": False}
    data["accounts"]["boss"]["active"] = False
    rules = ruleset(
        approval={"steps": [step(approvers={"any_of": [{"role": ["manager", "admin"]}]})]}
    )
    assert approvers_of(evaluate(rules, {"buyer": "lou", "total": 1}, make_directory(data))) == [
        "mgr-sales"
    ]


# --------------------------------------------------------- self-approval


def test_self_approval_off_by_default():
    rules = ruleset(approval={"steps": [step()]})
    d = evaluate(rules, {"buyer": "mgr-sales", "total": 10})
    assert approvers_of(d) == ["mgr-ops"]
    assert {
        "rule": "approval.steps.approve",
        "result": "excluded",
        "why": "mgr-sales: the buyer may not approve its own order",
    } in trace(d)


def test_self_approval_on():
    rules = ruleset(approval={"self_approval": True, "steps": [step()]})
    assert approvers_of(evaluate(rules, {"buyer": "mgr-sales", "total": 10})) == [
        "mgr-ops",
        "mgr-sales",
    ]


def test_step_self_approval_overrides():
    rules = ruleset(approval={"self_approval": True, "steps": [step(self_approval=False)]})
    assert approvers_of(evaluate(rules, {"buyer": "mgr-sales", "total": 10})) == ["mgr-ops"]


# ------------------------------------------------------- approval limits


def test_approval_limit_excludes_with_trace():
    data = json.loads(json.dumps(BASE_DIRECTORY))
    data["accounts"]["mgr-ops"]["memberships"][0]["settings"] = {"approval_limit": 1000}
    rules = ruleset(approval={"steps": [step()]})
    assert approvers_of(evaluate(rules, {"buyer": "lou", "total": 1000}, make_directory(data))) == [
        "mgr-ops",
        "mgr-sales",
    ]
    d = evaluate(rules, {"buyer": "lou", "total": 1000.5}, make_directory(data))
    assert approvers_of(d) == ["mgr-sales"]
    assert {
        "rule": "approval.steps.approve",
        "result": "excluded",
        "why": "mgr-ops: approval limit 1000 is below 1000.5",
    } in trace(d)


def test_role_approval_limit_applies_to_every_member():
    roles = json.loads(json.dumps(ruleset()["roles"]))
    roles["manager"]["settings"] = {"approval_limit": "200"}
    rules = ruleset(
        roles=roles,
        approval={"steps": [step(approvers={"any_of": [{"role": ["manager", "admin"]}]})]},
    )
    assert approvers_of(evaluate(rules, {"buyer": "lou", "total": 300})) == ["boss"]


# ------------------------------------------------------ assignment tiers


TIER_DIR = {
    **BASE_DIRECTORY,
    "assignments": [
        {"approver": "mgr-sales", "account": "sam", "company": "acme", "threshold": 100},
        {"approver": "mgr-ops", "account": "sam", "company": "acme", "threshold": 100},
        {"approver": "boss", "account": "sam", "company": "acme", "threshold": 1000},
    ],
}


def test_assignment_tiers_one_level_per_exceeded_threshold():
    rules = ruleset(approval={"steps": [{"name": "tiers", "kind": "assignment_tiers"}]})
    directory = make_directory(TIER_DIR)
    assert evaluate(rules, {"buyer": "sam", "total": 100}, directory).outcome == "approved"
    d = evaluate(rules, {"buyer": "sam", "total": 500}, directory)
    assert [(s.name, s.required) for s in d.steps] == [("tiers@100", 1)]
    assert approvers_of(d) == ["mgr-ops", "mgr-sales"]
    d = evaluate(rules, {"buyer": "sam", "total": 5000}, directory)
    assert [s.name for s in d.steps] == ["tiers@100", "tiers@1000"]
    assert approvers_of(d, 1) == ["boss"]
    assert d.steps[1].condition == "total > 1000 (assignment threshold)"


def test_assignment_tiers_without_thresholds_are_skipped():
    rules = ruleset(approval={"steps": [{"name": "tiers", "kind": "assignment_tiers"}]})
    d = evaluate(rules, {"buyer": "olga", "total": 5000}, make_directory(TIER_DIR))
    assert d.outcome == "approved"
    assert {
        "rule": "approval.steps.tiers",
        "result": "skipped",
        "why": "no assignment threshold of olga is below 5000",
    } in trace(d)


# ------------------------------------------------------- order limit, budgets


def test_order_limit_require_approval():
    rules = ruleset(
        limits={"order_limit": {"amount": 1000}},
        approval={"steps": [step("over", {"exceeds": "order_limit"})]},
    )
    assert evaluate(rules, {"buyer": "sam", "total": 1000}).outcome == "approved"
    d = evaluate(rules, {"buyer": "sam", "total": 1001})
    assert d.outcome == "pending"
    assert d.reason_codes() == ["order_limit_exceeded", "approval_required"]
    assert [s.name for s in d.steps] == ["over"]


def test_order_limit_block():
    rules = ruleset(limits={"order_limit": {"amount": 1000, "on_exceed": "block"}})
    d = evaluate(rules, {"buyer": "sam", "total": 1001})
    assert d.outcome == "blocked" and d.reason_codes() == ["order_limit_exceeded"]


def test_budget_require_approval_uses_budgets_spent():
    rules = ruleset(
        limits={"budgets": [{"name": "monthly", "period": "month", "amount": 5000}]},
        approval={"steps": [step("budget", {"exceeds": "budget"})]},
    )
    assert (
        evaluate(rules, {"buyer": "sam", "total": 3000}, budgets_spent={"monthly": 2000}).outcome
        == "approved"
    )
    d = evaluate(rules, {"buyer": "sam", "total": 3000}, budgets_spent={"monthly": "2000.01"})
    assert d.outcome == "pending"
    assert d.reasons[0].code == "budget_exceeded"
    assert d.reasons[0].details == {"budget": "monthly", "remaining": "2999.99"}
    assert "month's remaining 2999.99 of 5000" in d.reasons[0].message


def test_budget_block():
    rules = ruleset(
        limits={
            "budgets": [{"name": "yearly", "period": "year", "amount": 100, "on_exceed": "block"}]
        }
    )
    d = evaluate(rules, {"buyer": "sam", "total": 101})
    assert d.outcome == "blocked" and d.reason_codes() == ["budget_exceeded"]
    assert trace(d, "limits.budgets.yearly")[0]["result"] == "failed"


# ------------------------------------------------------------------ hold


def test_hold_orders():
    rules = ruleset(
        groups={"sales": {"settings": {"hold_orders": True}}}, approval={"steps": [step()]}
    )
    d = evaluate(rules, {"buyer": "sam", "total": 10})
    assert d.outcome == "held" and d.reason_codes() == ["orders_held"] and d.steps == ()
    assert [n.event for n in d.notifications] == ["order_held"]
    assert d.payer == {"kind": "buyer", "id": "sam"}
    assert evaluate(rules, {"buyer": "olga", "total": 10}).outcome == "pending"


def test_a_lifted_hold_lets_the_rest_of_the_rules_decide():
    """The merchant let a held order proceed: its steps apply as if no hold had been set."""
    rules = ruleset(
        groups={"sales": {"settings": {"hold_orders": True}}}, approval={"steps": [step()]}
    )
    lifted = evaluate(rules, {"buyer": "sam", "total": 10}, hold_lifted=True)
    unheld = evaluate(rules, {"buyer": "olga", "total": 10})
    assert lifted.outcome == unheld.outcome == "pending"
    assert [s.name for s in lifted.steps] == ["approve"]
    assert "orders_held" not in lifted.reason_codes()
    assert any(
        t.rule == "settings.hold_orders" and t.result == "passed" and "lifted" in t.why
        for t in lifted.trace
    )


def test_blocking_wins_over_a_lifted_hold():
    rules = ruleset(settings={"hold_orders": True}, limits={"max_order_total": 5})
    assert evaluate(rules, {"buyer": "sam", "total": 10}, hold_lifted=True).outcome == "blocked"


def test_blocking_wins_over_hold():
    rules = ruleset(settings={"hold_orders": True}, limits={"max_order_total": 5})
    assert evaluate(rules, {"buyer": "sam", "total": 10}).outcome == "blocked"


# ------------------------------------------------------------------ bulk


def test_bulk_exclude_blocks_group_members_only():
    rules = ruleset(bulk_orders="exclude")
    d = evaluate(rules, {"buyer": "sam", "total": 10, "type": "bulk"})
    assert d.reason_codes() == ["bulk_orders_excluded"]
    assert evaluate(rules, {"buyer": "lou", "total": 10, "type": "bulk"}).outcome == "approved"
    assert evaluate(rules, {"buyer": "sam", "total": 10}).outcome == "approved"


def test_bulk_group_settings_apply_steps():
    rules = ruleset(
        groups={"sales": {"settings": {"payer": "company"}}}, approval={"steps": [step()]}
    )
    d = evaluate(rules, {"buyer": "sam", "total": 10, "type": "bulk", "payer": "buyer"})
    assert d.outcome == "pending"
    assert d.payer == {"kind": "company", "id": "acme"}


def test_bulk_settings_skip_approval_and_use_the_orders_payer():
    rules = ruleset(
        bulk_orders="bulk_settings",
        groups={"sales": {"settings": {"payer": "company"}}},
        approval={"steps": [step()]},
    )
    d = evaluate(rules, {"buyer": "sam", "total": 10, "type": "bulk", "payer": "buyer"})
    assert d.outcome == "approved" and d.steps == ()
    assert d.payer == {"kind": "buyer", "id": "sam"}
    assert trace(d, "bulk_orders")[0]["result"] == "matched"
    assert evaluate(rules, {"buyer": "sam", "total": 10, "type": "bulk"}).payer == {
        "kind": "company",
        "id": "acme",
    }
    assert evaluate(rules, {"buyer": "sam", "total": 10}).outcome == "pending"


# ----------------------------------------------------------------- payer


def test_payer_resolution_rule_set_role_group_membership():
    roles = json.loads(json.dumps(ruleset()["roles"]))
    roles["user"]["settings"] = {"payer": "company"}
    rules = ruleset(
        roles=roles, settings={"payer": "buyer"}, groups={"ops": {"settings": {"payer": "buyer"}}}
    )
    data = json.loads(json.dumps(BASE_DIRECTORY))
    data["accounts"]["lou"]["memberships"][0]["settings"] = {"payer": "buyer"}
    directory = make_directory(data)
    assert evaluate(rules, {"buyer": "mgr-sales", "total": 1}, directory).payer == {
        "kind": "buyer",
        "id": "mgr-sales",
    }  # rule set
    assert evaluate(rules, {"buyer": "sam", "total": 1}, directory).payer == {
        "kind": "company",
        "id": "acme",
    }  # role
    assert evaluate(rules, {"buyer": "olga", "total": 1}, directory).payer == {
        "kind": "buyer",
        "id": "olga",
    }  # group over role
    assert evaluate(rules, {"buyer": "lou", "total": 1}, directory).payer == {
        "kind": "buyer",
        "id": "lou",
    }  # membership over role


# --------------------------------------------------------- notifications


def test_pending_notifications():
    rules = ruleset(
        approval={
            "steps": [step(approvers={"any_of": [{"role": "manager", "relation": "same_group"}]})]
        }
    )
    d = evaluate(rules, {"buyer": "sam", "total": 10})
    assert [n.as_dict() for n in d.notifications] == [
        {"event": "order_submitted", "recipients": [{"channel": "email", "account": "sam"}]},
        {
            "event": "approval_requested",
            "recipients": [{"channel": "email", "account": "mgr-sales"}],
        },
    ]


def test_approver_without_email_gets_inbox():
    data = json.loads(json.dumps(BASE_DIRECTORY))
    data["accounts"]["mgr-sales"]["email_enabled"] = False
    rules = ruleset(approval={"steps": [step(approvers={"any_of": [{"relation": "same_group"}]})]})
    d = evaluate(rules, {"buyer": "sam", "total": 10}, make_directory(data))
    assert d.notifications[1].as_dict()["recipients"] == [
        {"channel": "inbox", "account": "mgr-sales"}
    ]


@pytest.mark.parametrize(
    "mode, buyer_email, expected",
    [
        ("approver_flag", True, "email"),
        ("approver_flag", False, "email"),
        ("both_flags", True, "email"),
        ("both_flags", False, "inbox"),
    ],
)
def test_both_flags_email_rule(mode, buyer_email, expected):
    data = json.loads(json.dumps(BASE_DIRECTORY))
    data["accounts"]["sam"]["memberships"][0]["settings"] = {"email": buyer_email}
    rules = ruleset(
        notifications={"approval_email": mode},
        approval={"steps": [step(approvers={"any_of": [{"relation": "same_group"}]})]},
    )
    d = evaluate(rules, {"buyer": "sam", "total": 10}, make_directory(data))
    submitted, requested = d.notifications
    assert submitted.recipients[0].channel == ("email" if buyer_email else "inbox")
    assert requested.recipients[0].channel == expected


def test_master_confirmation_for_group_members():
    rules = ruleset(notifications={"master_confirmation": True})
    d = evaluate(rules, {"buyer": "sam", "total": 10})
    assert [n.as_dict() for n in d.notifications] == [
        {"event": "order_confirmation", "recipients": [{"channel": "email", "account": "sam"}]},
        {
            "event": "master_confirmation",
            "recipients": [{"channel": "email", "account": "boss", "company": "acme"}],
        },
    ]
    assert [n.event for n in evaluate(rules, {"buyer": "lou", "total": 10}).notifications] == [
        "order_confirmation"
    ]
    assert [n.event for n in evaluate(ruleset(), {"buyer": "sam", "total": 10}).notifications] == [
        "order_confirmation"
    ]


# ------------------------------------------------------------------ expiry


def test_expires_at_only_when_pending():
    rules = ruleset(
        approval={"expiry": {"after": "P1DT6H"}, "steps": [step("big", {"total": {"gt": 100}})]}
    )
    d = evaluate(rules, {"buyer": "sam", "total": 101}, now="2026-03-01T10:30:00+01:00")
    assert d.expires_at == datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
    assert d.as_dict()["expires_at"] == "2026-03-02T15:30:00Z"
    assert evaluate(rules, {"buyer": "sam", "total": 100}).expires_at is None


def test_no_expiry_means_none():
    rules = ruleset(approval={"expiry": None, "steps": [step()]})
    d = evaluate(rules, {"buyer": "sam", "total": 1})
    assert d.outcome == "pending" and d.expires_at is None


# ------------------------------------------------------------------ labels


def test_role_labels_are_data():
    roles = {
        "requisitioner": {"label": "Einkäufer", "permissions": ["place_orders"]},
        "chef": {"label": "Abteilungsleiter", "permissions": ["approve_orders"]},
    }
    data = {
        "companies": {"c": {"name": "C"}},
        "accounts": {
            "r": {"name": "R", "memberships": [{"company": "c", "role": "requisitioner"}]},
            "h": {"name": "H", "memberships": [{"company": "c", "role": "chef"}]},
        },
    }
    rules = {
        "ruleset": "de",
        "roles": roles,
        "approval": {"steps": [step(approvers={"any_of": [{"role": "chef"}]})]},
    }
    d = evaluate(rules, {"buyer": "r", "total": 1}, make_directory(data))
    assert d.buyer["role_label"] == "Einkäufer"
    assert d.steps[0].approvers[0].role_label == "Abteilungsleiter"
    assert d.steps[0].approvers[0].why == ("Abteilungsleiter; member of c",)


# ------------------------------------------------------------------- trace


def test_trace_explains_each_part_of_a_condition():
    rules = ruleset(
        groups={"sales": {}, "ops": {}},
        approval={
            "steps": [
                step(
                    "a",
                    {"buyer_group": "ops", "total": {"gt": 50}, "order_type": ["regular", "bulk"]},
                ),
                step("b", {"any": [{"lines": {"category": "it"}}, {"quantity": {"gte": 10}}]}),
            ]
        },
    )
    d = evaluate(
        rules,
        {
            "buyer": "sam",
            "total": 60,
            "lines": [{"sku": "A", "quantity": 3}, {"sku": "B", "category": "it"}],
        },
    )
    assert trace(d, "approval.steps.a") == [
        {
            "rule": "approval.steps.a",
            "result": "not_matched",
            "why": (
                "buyer group is ops: no (group sales); total > 50: yes (total 60); "
                "order type is one of regular, bulk: yes (type regular)"
            ),
        }
    ]
    assert trace(d, "approval.steps.b") == [
        {
            "rule": "approval.steps.b",
            "result": "matched",
            "why": "(a line with category it or quantity >= 10): yes",
        }
    ]
    assert d.steps[0].condition == "(a line with category it or quantity >= 10)"


def test_trace_records_passes_as_well_as_failures():
    rules = ruleset(
        limits={
            "max_order_total": 100,
            "order_limit": {"amount": 50},
            "budgets": [{"name": "m", "period": "month", "amount": 500}],
        }
    )
    d = evaluate(rules, {"buyer": "sam", "total": 10})
    assert [(t["rule"], t["result"]) for t in trace(d)] == [
        ("roles.permissions.place_orders", "passed"),
        ("limits.max_order_total", "passed"),
        ("limits.order_limit", "passed"),
        ("limits.budgets.m", "passed"),
    ]
    assert trace(d, "limits.budgets.m")[0]["why"] == "10 fits the remaining 500"


def test_conditions_on_buyer_attributes_accounts_and_not():
    data = json.loads(json.dumps(BASE_DIRECTORY))
    data["accounts"]["sam"]["memberships"][0]["attributes"] = {"level": 2}
    rules = ruleset(
        approval={
            "steps": [
                step("attr", {"buyer_attributes": {"level": [2, 3]}}),
                step("acct", {"buyer_account": "olga"}),
                step("neg", {"not": {"buyer_role": "manager"}}),
                step("cnt", {"line_count": {"gte": 2}}),
                step("cur", {"currency": "USD"}),
            ]
        }
    )
    d = evaluate(rules, {"buyer": "sam", "total": 1, "lines": [{"sku": "A"}]}, make_directory(data))
    assert [s.name for s in d.steps] == ["attr", "neg", "cur"]


# -------------------------------------------------------------- the order


@pytest.mark.parametrize(
    "order, code, path",
    [
        ({"buyer": "sam", "total": 1, "colour": "red"}, "unknown_key", "order.colour"),
        ({"total": 1}, "missing_buyer", "order.buyer"),
        ({"buyer": "", "total": 1}, "missing_buyer", "order.buyer"),
        ({"buyer": "sam"}, "missing_total", "order.total"),
        ({"buyer": "sam", "total": "lots"}, "invalid_amount", "order.total"),
        ({"buyer": "sam", "total": True}, "invalid_amount", "order.total"),
        ({"buyer": "sam", "total": -1}, "negative_amount", "order.total"),
        ({"buyer": "sam", "total": "NaN"}, "invalid_amount", "order.total"),
        ({"buyer": "sam", "total": "9" * 5000}, "invalid_amount", "order.total"),
        ({"buyer": "sam", "total": 1, "currency": "USS"}, "unknown_currency", "order.currency"),
        ({"buyer": "sam", "total": 1, "type": "gift"}, "invalid_order_type", "order.type"),
        ({"buyer": "sam", "total": 1, "lines": {"sku": "A"}}, "invalid_lines", "order.lines"),
        ({"buyer": "sam", "total": 1, "lines": [{"qty": 1}]}, "invalid_line", "order.lines[0]"),
        (
            {"buyer": "sam", "total": 1, "lines": [{"sku": "A", "quantity": -2}]},
            "negative_amount",
            "order.lines[0].quantity",
        ),
        (
            {"buyer": "sam", "total": 1, "requested_date": "tomorrow"},
            "invalid_date",
            "order.requested_date",
        ),
        ({"buyer": "sam", "total": 1, "ship_to": "HQ"}, "invalid_ship_to", "order.ship_to"),
        ({"buyer": "sam", "total": 1, "cost_centre": 7}, "wrong_type", "order.cost_centre"),
        ({"buyer": "sam", "total": 1, "payer": "bank"}, "invalid_payer", "order.payer"),
    ],
)
def test_order_from_dict_errors(order, code, path):
    with pytest.raises(OrderError) as info:
        Order.from_dict(order)
    assert (info.value.code, info.value.path) == (code, path)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize("total", ["1e400", "1e-400"])
def test_order_total_with_huge_exponent_is_refused(total):
    with pytest.raises(OrderError) as info:
        Order.from_dict({"buyer": "sam", "total": total})
    assert info.value.path == "order.total"


@pytest.mark.parametrize("currency", [{}, ["USD"]])
def test_order_currency_of_the_wrong_type(currency):
    with pytest.raises(OrderError) as info:
        Order.from_dict({"buyer": "sam", "total": 1, "currency": currency})
    assert info.value.path == "order.currency"


def test_order_unknown_key_message_lists_allowed_fields():
    with pytest.raises(OrderError) as info:
        Order.from_dict({"buyer": "sam", "total": 1, "colour": "red"})
    assert (
        "unknown order field 'colour'; allowed: attributes, buyer, company, cost_centre"
        in info.value.message
    )


def test_order_not_a_mapping():
    with pytest.raises(OrderError) as info:
        Order.from_dict(["buyer", "sam"])
    assert info.value.code == "invalid_order"


def test_order_total_keeps_decimal_precision():
    assert Order.from_dict({"buyer": "a", "total": 0.1}).total == Decimal("0.1")
    assert Order.from_dict({"buyer": "a", "total": "999999.99"}).total == Decimal("999999.99")


def test_unknown_buyer_is_an_order_error():
    with pytest.raises(OrderError) as info:
        evaluate(ruleset(), {"buyer": "ghost", "total": 1})
    assert (info.value.code, info.value.path) == ("unknown_buyer", "order.buyer")


def test_buyer_not_member_of_named_company():
    data = json.loads(json.dumps(BASE_DIRECTORY))
    data["companies"]["other"] = {"name": "Other"}
    with pytest.raises(OrderError) as info:
        evaluate(ruleset(), {"buyer": "sam", "total": 1, "company": "other"}, make_directory(data))
    assert info.value.code == "not_a_member"


def test_buyer_with_several_companies_needs_a_default():
    data = json.loads(json.dumps(BASE_DIRECTORY))
    data["companies"]["other"] = {"name": "Other"}
    data["accounts"]["lou"]["memberships"].append({"company": "other", "role": "admin"})
    directory = make_directory(data)
    with pytest.raises(OrderError) as info:
        evaluate(ruleset(), {"buyer": "lou", "total": 1}, directory)
    assert info.value.code == "no_default_company"
    d = evaluate(ruleset(), {"buyer": "lou", "total": 1, "company": "other"}, directory)
    assert d.buyer["company"] == "other" and d.buyer["role"] == "admin"


# ------------------------------------------------------------------ extends


PARENT = ruleset(
    ruleset="parent",
    settings={"payer": "company"},
    approval={
        "expiry": {"after": "P3D"},
        "steps": [
            step("manager", {"total": {"gt": 100}}),
            step("finance", {"total": {"gt": 1000}}, {"any_of": [{"role": "admin"}]}, required=1),
        ],
    },
)


def child_policy(child: dict):
    texts = {"parent": to_yaml(PARENT)}
    return make_policy(child, resolve=texts.get)


def test_child_overrides_a_step_by_name_and_adds_one():
    child = {
        "ruleset": "child",
        "extends": "parent",
        "approval": {
            "steps": [
                step("manager", {"total": {"gt": 500}}),
                step("legal", {"lines": {"category": "contract"}}, {"any_of": [{"role": "admin"}]}),
            ]
        },
    }
    policy = child_policy(child)
    assert [s.name for s in policy.steps] == ["manager", "finance", "legal"]
    directory = make_directory()
    assert policy.evaluate({"buyer": "sam", "total": 300}, directory, now=NOW).outcome == "approved"
    d = policy.evaluate(
        {"buyer": "sam", "total": 600, "lines": [{"sku": "X", "category": "contract"}]},
        directory,
        now=NOW,
    )
    assert [s.name for s in d.steps] == ["manager", "legal"]
    assert d.payer == {"kind": "company", "id": "acme"}  # inherited settings
    assert d.expires_at == datetime(2026, 1, 18, 12, 0, tzinfo=UTC)  # inherited expiry
    assert d.ruleset["name"] == "child"


def test_child_inherits_roles_and_may_relabel_one():
    child = {"ruleset": "child", "extends": "parent", "roles": {"manager": {"label": "Team Lead"}}}
    policy = child_policy(child)
    assert policy.roles["manager"].label == "Team Lead"
    assert policy.roles["manager"].permissions == frozenset(
        {"place_orders", "approve_orders"}
    )  # merged from the parent
    assert set(policy.roles) == {"admin", "manager", "user", "viewer"}
    d = policy.evaluate({"buyer": "sam", "total": 200}, make_directory(), now=NOW)
    assert [a.role_label for a in d.steps[0].approvers] == ["Team Lead", "Team Lead"]


def test_child_replaces_lists_and_does_not_inherit_tests():
    parent = {
        **PARENT,
        "settings": {"restricted_skus": ["A", "B"]},
        "tests": [
            {"name": "p", "order": {"buyer": "sam", "total": 1}, "expect": {"outcome": "approved"}}
        ],
    }
    child = {"ruleset": "child", "extends": "parent", "settings": {"restricted_skus": ["C"]}}
    policy = make_policy(child, resolve={"parent": to_yaml(parent)}.get)
    assert policy.settings["restricted_skus"] == ("C",)
    assert "tests" not in policy.data


# ------------------------------------------------------------ determinism


def test_as_dict_is_deterministic_and_json():
    rules = ruleset(
        approval={
            "expiry": {"after": "P7D"},
            "steps": [
                step("a", {"total": {"gt": 1}}),
                step("b", approvers={"any_of": [{"relation": "group_master"}]}),
            ],
        }
    )
    policy = make_policy(rules)
    order = {"id": "o-1", "buyer": "sam", "total": "12.50", "lines": [{"sku": "A", "quantity": 2}]}
    first = policy.evaluate(order, make_directory(), now=NOW).as_dict()
    for _ in range(3):
        again = (
            make_policy(to_yaml(rules)).evaluate(dict(order), make_directory(), now=NOW).as_dict()
        )
        assert again == first
        assert json.dumps(again, sort_keys=False) == json.dumps(first, sort_keys=False)
    assert first["order"] == {"id": "o-1", "total": "12.5", "currency": "USD", "type": "regular"}
    assert first["ruleset"]["hash"] == make_policy(rules).text_hash


def test_policy_is_immutable():
    policy = make_policy(ruleset())
    with pytest.raises(AttributeError):
        policy.currency = "EUR"
    labelled = policy.with_version(3)
    assert (labelled.version, policy.version) == (3, None)
    assert (
        labelled.evaluate({"buyer": "sam", "total": 1}, make_directory(), now=NOW).ruleset[
            "version"
        ]
        == 3
    )


def test_master_confirmation_respects_the_masters_email_flag_and_activity():
    data = json.loads(json.dumps(BASE_DIRECTORY))
    data["accounts"]["boss"]["memberships"][0]["settings"] = {"email": False}
    rules = ruleset(notifications={"master_confirmation": True})
    d = evaluate(rules, {"buyer": "sam", "total": 10}, make_directory(data))
    assert d.notifications[1].recipients[0].channel == "inbox"
    data["accounts"]["boss"]["active"] = False
    d = evaluate(rules, {"buyer": "sam", "total": 10}, make_directory(data))
    assert [n.event for n in d.notifications] == ["order_confirmation"]
