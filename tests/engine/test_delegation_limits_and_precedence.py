"""The engine: delegation, approver limits with fall-back, deny/bypass precedence,
AND of approver groups, currency conversion."""

from __future__ import annotations

import copy
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approvalrules.engine import check_directory
from approvalrules.engine.directory import Directory, records_from_dict
from approvalrules.errors import DirectoryError, DocumentError

from .conftest import (
    BASE_DIRECTORY,
    NOW,
    make_directory,
    make_policy,
    only_problem,
    problems_of,
    ruleset,
    to_yaml,
)

MANAGER_STEP = {
    "name": "mgr",
    "when": {"total": {"gt": 100}},
    "approvers": {"any_of": [{"role": "manager"}]},
}


def _dir(delegations=(), **changes) -> dict:
    data = copy.deepcopy(BASE_DIRECTORY)
    data.update(changes)
    if delegations:
        data["delegations"] = list(delegations)
    return data


def _approvers(decision, index=0) -> list[str]:
    return [a.account for a in decision.steps[index].approvers]


def _d(delegator, delegate, valid_from="2026-01-01", valid_until="2026-01-31", **extra) -> dict:
    return {
        "delegator": delegator,
        "delegate": delegate,
        "valid_from": valid_from,
        "valid_until": valid_until,
        **extra,
    }


# ------------------------------------------------------------ delegation


def test_delegate_is_eligible_with_why_while_valid():
    policy = make_policy(ruleset(approval={"steps": [MANAGER_STEP]}))
    directory = make_directory(_dir([_d("mgr-sales", "lou", valid_until="2026-12-24")]))
    decision = policy.evaluate({"buyer": "sam", "total": 500}, directory, now=NOW)
    assert _approvers(decision) == ["mgr-ops", "mgr-sales", "lou"]
    lou = decision.steps[0].approvers[-1]
    assert lou.why == ("delegate of mgr-sales until 2026-12-24",)
    assert lou.role_label == "Company User"
    assert [r.account for r in decision.notifications[1].recipients] == [
        "mgr-ops",
        "mgr-sales",
        "lou",
    ]


@pytest.mark.parametrize(
    "now, eligible",
    [
        ("2025-12-31T23:59:59Z", False),
        ("2026-01-01T00:00:00Z", True),
        ("2026-01-31T23:59:59Z", True),
        ("2026-02-01T00:00:00Z", False),
        # the UTC date of `now` decides, whatever offset it is written with
        ("2026-01-31T23:30:00-03:00", False),  # 2026-02-01 in UTC: expired
        ("2026-01-01T01:00:00+02:00", False),  # 2025-12-31 in UTC: not yet
        ("2025-12-31T22:30:00-03:00", True),  # 2026-01-01 in UTC
        ("2026-02-01T00:30:00+01:00", True),  # 2026-01-31 in UTC
    ],
)
def test_delegation_period_is_inclusive_utc_dates(now, eligible):
    policy = make_policy(ruleset(approval={"steps": [MANAGER_STEP]}))
    directory = make_directory(_dir([_d("mgr-sales", "lou")]))
    assert (
        "lou" in _approvers(policy.evaluate({"buyer": "sam", "total": 500}, directory, now=now))
    ) is eligible


def test_delegation_limited_to_a_step_or_company():
    steps = [
        MANAGER_STEP,
        {
            "name": "boss",
            "when": {"total": {"gt": 100}},
            "approvers": {"any_of": [{"role": "manager"}]},
        },
    ]
    policy = make_policy(ruleset(approval={"steps": steps}))
    directory = make_directory(
        _dir(
            [_d("mgr-sales", "lou", step="boss"), _d("mgr-ops", "olga", company="other")],
            companies={**BASE_DIRECTORY["companies"], "other": {"name": "Other"}},
        )
    )
    decision = policy.evaluate({"buyer": "sam", "total": 500}, directory, now=NOW)
    assert _approvers(decision, 0) == ["mgr-ops", "mgr-sales"]
    assert _approvers(decision, 1) == ["mgr-ops", "mgr-sales", "lou"]


def test_delegate_never_gets_more_power_than_the_delegator():
    roles = copy.deepcopy(ruleset()["roles"])
    roles["manager"]["settings"] = {"approval_limit": 1000}
    policy = make_policy(
        ruleset(
            roles=roles,
            approval={
                "steps": [
                    {"name": "any", "approvers": {"any_of": [{"role": ["manager", "admin"]}]}}
                ]
            },
        )
    )
    directory = make_directory(_dir([_d("mgr-sales", "lou")]))
    small = policy.evaluate({"buyer": "sam", "total": 900}, directory, now=NOW)
    assert "lou" in _approvers(small)
    big = policy.evaluate({"buyer": "sam", "total": 5000}, directory, now=NOW)
    assert _approvers(big) == ["boss"]
    # the memo must not carry one evaluation's delegates into another
    assert "lou" not in _approvers(
        policy.evaluate({"buyer": "sam", "total": 900}, directory, now="2026-03-01T00:00:00Z")
    )
    assert "lou" in _approvers(policy.evaluate({"buyer": "sam", "total": 900}, directory, now=NOW))


def test_buyer_never_becomes_eligible_as_a_delegate_even_with_self_approval():
    policy = make_policy(ruleset(approval={"self_approval": True, "steps": [MANAGER_STEP]}))
    directory = make_directory(_dir([_d("mgr-sales", "sam")]))
    decision = policy.evaluate({"buyer": "sam", "total": 500}, directory, now=NOW)
    assert "sam" not in _approvers(decision)
    assert any(
        t.result == "excluded" and "sam" in t.why and "delegate" in t.why for t in decision.trace
    )


def test_delegation_chain_is_bounded_to_three_hops():
    chain = [_d("mgr-sales", "lou"), _d("lou", "olga"), _d("olga", "boss"), _d("boss", "mgr-ops")]
    policy = make_policy(
        ruleset(
            approval={
                "steps": [
                    {
                        "name": "s",
                        "when": {"total": {"gt": 100}},
                        "approvers": {"any_of": [{"accounts": ["mgr-sales"]}]},
                    }
                ]
            }
        )
    )
    decision = policy.evaluate({"buyer": "sam", "total": 500}, make_directory(_dir(chain)), now=NOW)
    assert _approvers(decision) == ["mgr-sales", "lou", "olga", "boss"]
    assert any(t.result == "skipped" and "mgr-ops" in t.why for t in decision.trace)


def test_delegate_must_be_an_active_member_of_the_company():
    data = _dir([_d("mgr-sales", "lou")])
    data["accounts"]["lou"]["active"] = False
    policy = make_policy(ruleset(approval={"steps": [MANAGER_STEP]}))
    decision = policy.evaluate({"buyer": "sam", "total": 500}, make_directory(data), now=NOW)
    assert "lou" not in _approvers(decision)


@pytest.mark.parametrize(
    "delegations, loop",
    [
        ([_d("lou", "lou")], "lou -> lou"),
        ([_d("lou", "sam"), _d("sam", "lou")], "lou -> sam -> lou"),
        (
            [_d("boss", "lou"), _d("lou", "sam"), _d("sam", "olga"), _d("olga", "lou")],
            "lou -> sam -> olga -> lou",
        ),
    ],
)
def test_delegation_loops_are_refused(delegations, loop):
    with pytest.raises(DirectoryError) as info:
        make_directory(_dir(delegations))
    assert info.value.code == "delegation_loop"
    assert loop in str(info.value)


def test_delegation_fixture_is_checked():
    with pytest.raises(DirectoryError) as info:
        make_directory(_dir([_d("lou", "nobody")]))
    assert info.value.code == "unknown_account"
    with pytest.raises(DirectoryError) as info:
        make_directory(_dir([_d("lou", "sam", valid_from="2026-02-01", valid_until="2026-01-01")]))
    assert info.value.code == "invalid_delegation"
    with pytest.raises(DocumentError) as missing:
        check_directory(
            to_yaml(_dir([{"delegator": "lou", "delegate": "sam", "valid_from": "2026-01-01"}]))
        )
    assert [(p.code, p.path) for p in missing.value.problems] == [("missing_key", "delegations[0]")]
    assert "'valid_until' is a required property" in missing.value.problems[0].message
    # a delegation scoped to a company and a step passes the check and loads with its scope
    scoped = check_directory(to_yaml(_dir([_d("lou", "sam", company="acme", step="mgr")])))
    (delegation,) = records_from_dict(scoped.data)["delegations"]
    assert (delegation.delegator_id, delegation.delegate_id) == ("lou", "sam")
    assert (delegation.company_id, delegation.step) == ("acme", "mgr")


def test_records_only_name_delegations_when_there_are_some():
    """The store's loader does not know delegations yet; fixtures without them load as before."""
    assert "delegations" not in records_from_dict(BASE_DIRECTORY)
    assert len(records_from_dict(_dir([_d("lou", "sam")]))["delegations"]) == 1


def test_directory_without_delegation_facts_has_none():
    class Minimal(Directory):
        company = account = memberships_of_account = memberships_of_company = groups_of_company = (
            lambda self, *a: None
        )
        account_ids = lambda self: ()  # noqa: E731
        assignments_for = assignments_by = lambda self, *a: ()  # noqa: E731

    assert Minimal().delegations_of("joe") == ()
    assert make_directory().delegations_of("boss") == ()


# property test: a delegate never gets more power than the delegator had, and the buyer never
# approves through delegation

ACCOUNTS = sorted(BASE_DIRECTORY["accounts"])
DAYS = [f"2026-01-{d:02d}" for d in (1, 10, 15, 20, 31)]


@st.composite
def delegation_lists(draw):
    out, edges = [], set()
    for _ in range(draw(st.integers(0, 6))):
        a, b = draw(st.sampled_from(ACCOUNTS)), draw(st.sampled_from(ACCOUNTS))
        start, end = sorted([draw(st.sampled_from(DAYS)), draw(st.sampled_from(DAYS))])
        if a == b or (b, a) in edges:
            continue
        candidate = edges | {(a, b)}
        # keep only acyclic graphs (loops are refused at load)
        if _has_cycle(candidate):
            continue
        edges = candidate
        extra = {}
        if draw(st.booleans()):
            extra["step"] = draw(st.sampled_from(["mgr", "all", "nope"]))
        out.append(_d(a, b, start, end, **extra))
    return out


def _has_cycle(edges) -> bool:
    graph: dict = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    seen, stack = set(), set()

    def visit(n):
        if n in stack:
            return True
        if n in seen:
            return False
        seen.add(n)
        stack.add(n)
        found = any(visit(m) for m in graph.get(n, ()))
        stack.discard(n)
        return found

    return any(visit(n) for n in list(graph))


PROPERTY_ROLES = copy.deepcopy(ruleset()["roles"])
PROPERTY_ROLES["manager"]["settings"] = {"approval_limit": 1000}
PROPERTY_POLICIES = [
    make_policy(
        ruleset(
            roles=PROPERTY_ROLES,
            approval={
                "self_approval": self_approval,
                "steps": [
                    MANAGER_STEP,
                    {
                        "name": "all",
                        "when": {"total": {"gt": 500}},
                        "approvers": {
                            "all_of": [
                                {"any_of": [{"role": "manager", "relation": "same_group"}]},
                                {"any_of": [{"role": "admin"}]},
                            ]
                        },
                    },
                ],
            },
        )
    )
    for self_approval in (False, True)
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    delegations=delegation_lists(),
    buyer=st.sampled_from(["sam", "olga", "lou", "mgr-sales", "mgr-ops", "boss"]),
    total=st.sampled_from([50, 200, 600, 1000, 1001, 5000]),
    day=st.sampled_from(DAYS),
    self_approval=st.sampled_from([0, 1]),
)
def test_property_delegation_adds_no_power_and_no_self_approval(
    delegations, buyer, total, day, self_approval
):
    policy = PROPERTY_POLICIES[self_approval]
    order = {"buyer": buyer, "total": total}
    now = day + "T12:00:00Z"
    without = policy.evaluate(order, make_directory(_dir()), now=now)
    directory = make_directory(_dir(delegations))
    with_ = policy.evaluate(order, directory, now=now)
    # same steps apply; delegation only adds approvers
    assert [s.name for s in with_.steps] == [s.name for s in without.steps]
    assert with_.outcome == without.outcome or (
        without.outcome == "pending" and with_.outcome == "pending"
    )
    for before, after in zip(without.steps, with_.steps, strict=True):
        base = {a.account for a in before.approvers}
        got = {a.account: a for a in after.approvers}
        assert base <= set(got)
        # every added approver is reached from an eligible delegator through active delegations
        for account, approver in got.items():
            if account in base:
                continue
            assert any(w.startswith("delegate of ") for w in approver.why)
            reach = set(base)
            for _ in range(3):
                reach |= {
                    d["delegate"]
                    for d in delegations
                    if d["delegator"] in reach
                    and d["valid_from"] <= day <= d["valid_until"]
                    and d.get("step") in (None, after.name, after.name.split("/")[0])
                }
            assert account in reach
        # self-approval is never gained through delegation
        if buyer in got:
            assert buyer in base and self_approval


# ------------------------------------------------------ limits with fall-back

PARENT = {
    "companies": {
        "holding": {"name": "Holding"},
        "acme": {"name": "Acme", "parent": "holding", "groups": {"sales": {"name": "Sales"}}},
    },
    "accounts": {
        "hana": {
            "name": "Hana",
            "memberships": [
                {"company": "holding", "role": "manager", "settings": {"approval_limit": 50000}}
            ],
        },
        "hugo": {
            "name": "Hugo",
            "memberships": [{"company": "holding", "role": "owner", "master": True}],
        },
        "mia": {
            "name": "Mia",
            "memberships": [{"company": "acme", "role": "manager", "group": "sales"}],
        },
        "sam": {
            "name": "Sam",
            "memberships": [
                {"company": "acme", "role": "user", "group": "sales"},
                {"company": "holding", "role": "manager", "default": False},
            ],
        },
    },
}


def _limited_policy(fallback="parent_company", required=1):
    roles = copy.deepcopy(ruleset()["roles"])
    roles["manager"]["settings"] = {"approval_limit": 5000}
    step = {
        "name": "mgr",
        "when": {"total": {"gt": 100}},
        "approvers": {"any_of": [{"role": "manager"}]},
        "required": required,
    }
    if fallback:
        step["fallback"] = fallback
    return make_policy(ruleset(roles=roles, approval={"steps": [step]}))


def test_without_fallback_the_step_dead_ends_as_before():
    decision = _limited_policy(None).evaluate(
        {"buyer": "sam", "total": 8000, "company": "acme"}, make_directory(PARENT), now=NOW
    )
    assert _approvers(decision) == []
    assert "insufficient_approvers" in decision.reason_codes()
    assert "escalated_to_parent" not in decision.reason_codes()


def test_fallback_goes_to_the_parents_approvers_and_says_so():
    policy = _limited_policy()
    directory = make_directory(PARENT)
    decision = policy.evaluate(
        {"buyer": "sam", "total": 8000, "company": "acme"}, directory, now=NOW
    )
    # sam is a manager of the holding too, but never approves its own order
    assert _approvers(decision) == ["hana"]
    assert decision.reason_codes() == ["escalated_to_parent", "approval_required"]
    assert decision.reasons[0].details == {"step": "mgr", "company": "holding"}
    assert any(
        t.rule == "approval.steps.mgr.fallback" and t.result == "matched" for t in decision.trace
    )
    assert "parent company holding" in decision.steps[0].approvers[0].why[0]
    # within the acme approver's limit there is no escalation (and the memo keeps them apart)
    small = policy.evaluate({"buyer": "sam", "total": 800, "company": "acme"}, directory, now=NOW)
    assert _approvers(small) == ["mia"] and "escalated_to_parent" not in small.reason_codes()
    again = policy.evaluate({"buyer": "sam", "total": 8000, "company": "acme"}, directory, now=NOW)
    assert again.as_dict() == decision.as_dict()


def test_fallback_then_the_parents_admins():
    decision = _limited_policy().evaluate(
        {"buyer": "sam", "total": 60000, "company": "acme"}, make_directory(PARENT), now=NOW
    )
    assert _approvers(decision) == ["hugo"]
    assert decision.steps[0].approvers[0].why[0].startswith("admin of parent company holding")


def test_fallback_with_nobody_up_the_hierarchy_is_traced():
    data = copy.deepcopy(PARENT)
    del data["accounts"]["hugo"]
    decision = _limited_policy().evaluate(
        {"buyer": "sam", "total": 60000, "company": "acme"}, make_directory(data), now=NOW
    )
    assert _approvers(decision) == [] and "insufficient_approvers" in decision.reason_codes()
    assert any(
        t.rule == "approval.steps.mgr.fallback" and t.result == "skipped" for t in decision.trace
    )


def test_fallback_tops_up_to_required():
    decision = _limited_policy(required=2).evaluate(
        {"buyer": "sam", "total": 800, "company": "acme"}, make_directory(PARENT), now=NOW
    )
    assert _approvers(decision) == ["mia", "hana"]


# -------------------------------------------------------- deny and bypass


PRECEDENCE = ruleset(
    deny=[
        {
            "name": "no-alcohol",
            "when": {"lines": {"category": "alcohol"}},
            "reason": "no alcohol on company money",
        }
    ],
    bypass=[
        {"name": "admins", "roles": ["admin"], "when": {"always": True}},
        {"name": "tiny", "when": {"total": {"lt": 150}}},
    ],
    approval={"steps": [MANAGER_STEP]},
)


def test_deny_blocks_with_its_reason_before_bypass():
    policy = make_policy(PRECEDENCE)
    decision = policy.evaluate(
        {"buyer": "boss", "total": 50, "lines": [{"sku": "WINE", "category": "alcohol"}]},
        make_directory(),
        now=NOW,
    )
    assert decision.outcome == "blocked"
    assert decision.reason_codes() == ["denied"]
    assert decision.reasons[0].message == "no alcohol on company money"
    assert decision.reasons[0].details == {"rule": "no-alcohol"}
    assert decision.payer is None and decision.notifications == ()


def test_bypass_by_role_and_by_condition_then_steps():
    policy = make_policy(PRECEDENCE)
    directory = make_directory()
    by_role = policy.evaluate({"buyer": "boss", "total": 5000}, directory, now=NOW)
    assert (by_role.outcome, by_role.reason_codes(), by_role.steps) == (
        "approved",
        ["bypassed"],
        (),
    )
    by_condition = policy.evaluate({"buyer": "sam", "total": 120}, directory, now=NOW)
    assert by_condition.outcome == "approved" and by_condition.reasons[0].details == {
        "rule": "tiny"
    }
    stepped = policy.evaluate({"buyer": "sam", "total": 500}, directory, now=NOW)
    assert stepped.outcome == "pending" and [
        t.result for t in stepped.trace if t.rule.startswith("bypass.")
    ] == ["not_matched", "not_matched"]


def test_blocking_checks_come_before_bypass():
    policy = make_policy({**PRECEDENCE, "limits": {"max_order_total": 1000}})
    decision = policy.evaluate({"buyer": "boss", "total": 5000}, make_directory(), now=NOW)
    assert decision.outcome == "blocked" and decision.reason_codes() == ["max_order_total_exceeded"]


def test_precedence_rules_are_checked():
    p = only_problem(
        to_yaml(ruleset(bypass=[{"name": "x", "roles": ["chef"], "when": {"always": True}}]))
    )
    assert (p.code, p.path) == ("undefined_role", "bypass[0].roles")
    p = only_problem(
        to_yaml(ruleset(deny=[{"name": "x", "when": {"buyer_group": "nope"}, "reason": "r"}]))
    )
    assert (p.code, p.path) == ("undefined_group", "deny[0].when")
    p = only_problem(
        to_yaml(ruleset(deny=[{"name": "x", "when": {"always": True}, "reason": "r"}] * 2))
    )
    assert (p.code, p.path) == ("duplicate_rule", "deny[1].name")
    p = only_problem(to_yaml(ruleset(deny=[{"name": "x", "when": {"always": True}}])))
    assert p.code == "missing_key"


# ---------------------------------------------------------- all_of groups


def test_all_of_expands_into_one_sub_step_per_group():
    step = {
        "name": "two",
        "when": {"total": {"gt": 100}},
        "approvers": {
            "all_of": [
                {"any_of": [{"role": "manager", "relation": "same_group"}]},
                {"any_of": [{"relation": "group_master"}]},
            ]
        },
    }
    policy = make_policy(ruleset(approval={"steps": [step]}))
    decision = policy.evaluate({"buyer": "sam", "total": 500}, make_directory(), now=NOW)
    assert [(s.name, s.required, [a.account for a in s.approvers]) for s in decision.steps] == [
        ("two/1", 1, ["mgr-sales"]),
        ("two/2", 1, ["boss"]),
    ]
    assert decision.reasons[0].message == "approval required: two/1, two/2"
    assert [r.account for r in decision.notifications[1].recipients] == ["mgr-sales"]
    assert sum(1 for t in decision.trace if t.rule == "approval.steps.two") == 1
    olga = policy.evaluate({"buyer": "olga", "total": 500}, make_directory(), now=NOW)
    assert _approvers(olga, 0) == ["mgr-ops"]


def test_all_of_schema_and_semantics():
    p = only_problem(
        to_yaml(
            ruleset(
                approval={
                    "steps": [
                        {"name": "s", "approvers": {"all_of": [{"any_of": [{"role": "chef"}]}]}}
                    ]
                }
            )
        )
    )
    assert (p.code, p.path) == (
        "undefined_role",
        "approval.steps[0].approvers.all_of[0].any_of[0].role",
    )
    assert problems_of(
        to_yaml(
            ruleset(
                approval={
                    "steps": [
                        {
                            "name": "s",
                            "approvers": {
                                "any_of": [{"role": "admin"}],
                                "all_of": [{"any_of": [{"role": "admin"}]}],
                            },
                        }
                    ]
                }
            )
        )
    )
    assert (
        only_problem(to_yaml(ruleset(approval={"steps": [{"name": "s", "approvers": {}}]}))).code
        == "missing_key"
    )


# --------------------------------------------------------------- currency

CONVERTING = ruleset(
    conversion={"EUR": 1.08, "GBP": "1.27"},
    limits={"max_order_total": 10000},
    approval={
        "steps": [
            {
                "name": "big",
                "when": {"total": {"gt": 500}},
                "approvers": {"any_of": [{"role": "admin"}]},
            }
        ]
    },
)


@pytest.mark.parametrize(
    "total, currency, converted, outcome",
    [
        ("462.96", "EUR", "500.00", "approved"),  # 499.9968 rounds to 500.00: not over 500
        ("463", "EUR", "500.04", "pending"),
        ("1000", "EUR", "1080.00", "pending"),
        ("0.005", "GBP", "0.01", "approved"),  # 0.00635 -> 0.01
        ("9000", "EUR", "9720.00", "pending"),
        ("8000", "GBP", "10160.00", "blocked"),
    ],
)
def test_conversion_before_every_comparison(total, currency, converted, outcome):
    decision = make_policy(CONVERTING).evaluate(
        {"buyer": "sam", "total": total, "currency": currency}, make_directory(), now=NOW
    )
    assert decision.outcome == outcome
    reason = decision.reasons[0]
    assert reason.code == "currency_converted"
    assert reason.details["total"] == Decimal(
        converted
    ).normalize().to_eng_string() or reason.details["total"] == format(
        Decimal(converted), "f"
    ).rstrip("0").rstrip(".")
    assert f"converted to {converted} USD" in reason.message
    # the decision keeps the order as sent
    assert decision.as_dict()["order"]["currency"] == currency and decision.as_dict()["order"][
        "total"
    ] == str(Decimal(total))


def test_rounding_is_half_even():
    policy = make_policy(ruleset(conversion={"EUR": "0.5"}))
    for total, converted in (
        ("0.01", "0.00"),
        ("0.03", "0.02"),
        ("0.05", "0.02"),
        ("0.07", "0.04"),
    ):
        decision = policy.evaluate(
            {"buyer": "sam", "total": total, "currency": "EUR"}, make_directory(), now=NOW
        )
        assert f"converted to {converted} USD" in decision.reasons[0].message


def test_unlisted_currency_is_still_refused_and_the_own_currency_is_not_converted():
    policy = make_policy(CONVERTING)
    refused = policy.evaluate(
        {"buyer": "sam", "total": 100, "currency": "JPY"}, make_directory(), now=NOW
    )
    assert refused.outcome == "blocked" and refused.reason_codes() == ["currency_not_supported"]
    own = policy.evaluate(
        {"buyer": "sam", "total": 100, "currency": "USD"}, make_directory(), now=NOW
    )
    assert "currency_converted" not in own.reason_codes()


def test_conversion_is_checked():
    assert only_problem(to_yaml(ruleset(conversion={"USD": 1}))).code == "invalid_conversion"
    assert only_problem(to_yaml(ruleset(conversion={"EUR": "0"}))).code == "invalid_conversion"
    assert problems_of(to_yaml(ruleset(conversion={"XXX": 1})))
    assert problems_of(to_yaml(ruleset(conversion={"EUR": -1})))


def test_currency_condition_sees_the_orders_currency():
    policy = make_policy(
        ruleset(
            conversion={"EUR": 1},
            approval={
                "steps": [
                    {
                        "name": "eur",
                        "when": {"currency": "EUR"},
                        "approvers": {"any_of": [{"role": "admin"}]},
                    }
                ]
            },
        )
    )
    assert (
        policy.evaluate(
            {"buyer": "sam", "total": 10, "currency": "EUR"}, make_directory(), now=NOW
        ).outcome
        == "pending"
    )
    assert (
        policy.evaluate({"buyer": "sam", "total": 10}, make_directory(), now=NOW).outcome
        == "approved"
    )
