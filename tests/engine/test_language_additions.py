"""The language's calendar and per-recipient e-mail: order-date conditions, the buyer-has-an-
approver condition, validity windows on steps, limits and budgets, fixed expiry dates, and the
e-mail flags split by recipient."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from approvalrules.engine.conditions import date_edges, describe, uses_key
from approvalrules.engine.dates import Validity, deadline, time_zone, with_validity
from approvalrules.engine.timeouts import fixed_deadline, request_expiry

from .conftest import (
    BASE_DIRECTORY,
    NOW,
    make_directory,
    make_policy,
    problems_of,
    ruleset,
    to_yaml,
    with_account,
)

MANAGERS = {"any_of": [{"role": "manager"}]}


def _step(**fields):
    return {"name": "review", "approvers": MANAGERS, **fields}


def _names(decision):
    return [s.name for s in decision.steps]


# ------------------------------------------------------------ order_date


def test_order_date_condition_reads_the_date_of_now_in_utc(directory):
    policy = make_policy(
        ruleset(approval={"steps": [_step(when={"order_date": {"gte": "2026-03-01"}})]})
    )
    order = {"buyer": "sam", "total": 10}
    assert _names(policy.evaluate(order, directory, now="2026-02-28T23:59:59Z")) == []
    assert _names(policy.evaluate(order, directory, now="2026-03-01T00:00:00Z")) == ["review"]
    # 23:30 at -03:00 is already March 1st in UTC
    assert _names(policy.evaluate(order, directory, now="2026-02-28T23:30:00-03:00")) == ["review"]


def test_order_date_uses_the_rule_sets_time_zone(directory):
    policy = make_policy(
        ruleset(
            time_zone="Europe/Berlin",
            approval={"steps": [_step(when={"order_date": {"gte": "2026-03-01"}})]},
        )
    )
    order = {"buyer": "sam", "total": 10}
    # 23:30 UTC on Feb 28th is 00:30 on March 1st in Berlin
    assert _names(policy.evaluate(order, directory, now="2026-02-28T23:30:00Z")) == ["review"]
    assert _names(policy.evaluate(order, directory, now="2026-02-28T22:59:00Z")) == []


def test_ordered_at_is_the_order_date_when_decided_again(directory):
    policy = make_policy(
        ruleset(approval={"steps": [_step(when={"order_date": {"lte": "2026-01-31"}})]})
    )
    order = {"buyer": "sam", "total": 10}
    later = datetime(2026, 2, 10, tzinfo=UTC)
    submitted = datetime(2026, 1, 30, tzinfo=UTC)
    assert _names(policy.evaluate(order, directory, now=later)) == []
    assert _names(policy.evaluate(order, directory, now=later, ordered_at=submitted)) == ["review"]


def test_order_date_in_words_and_in_the_trace(directory):
    when = {"order_date": {"gte": "2026-01-01", "lt": "2026-07-01"}}
    assert describe(when) == "order date on or after 2026-01-01 and before 2026-07-01"
    policy = make_policy(ruleset(approval={"steps": [_step(when=when)]}))
    decision = policy.evaluate({"buyer": "sam", "total": 10}, directory, now=NOW)
    matched = [t for t in decision.trace if t.rule == "approval.steps.review"][0]
    assert matched.result == "matched"
    assert "(order date 2026-01-15)" in matched.as_dict()["why"]
    assert date_edges(when) == {
        datetime(2026, 1, 1).date(),
        datetime(2026, 7, 1).date(),
    }
    # gt and lte change at the start of the next day, eq at both ends of its day
    assert date_edges(
        {"any": [{"order_date": {"lte": "2026-06-30"}}, {"order_date": {"eq": "2026-02-28"}}]}
    ) == {
        datetime(2026, 7, 1).date(),
        datetime(2026, 2, 28).date(),
        datetime(2026, 3, 1).date(),
    }


def test_order_date_in_deny_rule(directory):
    policy = make_policy(
        ruleset(
            deny=[
                {
                    "name": "inventory",
                    "when": {"order_date": {"gte": "2026-12-28", "lte": "2026-12-31"}},
                    "reason": "no orders during the year-end inventory",
                }
            ]
        )
    )
    order = {"buyer": "sam", "total": 10}
    assert policy.evaluate(order, directory, now="2026-12-29T10:00:00Z").outcome == "blocked"
    assert policy.evaluate(order, directory, now="2027-01-01T10:00:00Z").outcome == "approved"


# ------------------------------------------------------- buyer_has_approver


def _assigned_directory():
    return make_directory(
        assignments=[{"approver": "mgr-sales", "account": "sam", "company": "acme"}]
    )


@pytest.mark.parametrize(
    ("buyer", "outcome"), [("sam", "pending"), ("lou", "approved"), ("olga", "approved")]
)
def test_buyer_has_approver_true_only_for_buyers_with_an_assignment(buyer, outcome):
    policy = make_policy(
        ruleset(
            approval={
                "steps": [
                    _step(
                        when={"buyer_has_approver": True},
                        approvers={"any_of": [{"relation": "assigned"}]},
                    )
                ]
            }
        )
    )
    decision = policy.evaluate({"buyer": buyer, "total": 10}, _assigned_directory(), now=NOW)
    assert decision.outcome == outcome


def test_buyer_has_approver_false_and_its_words():
    policy = make_policy(ruleset(approval={"steps": [_step(when={"buyer_has_approver": False})]}))
    directory = _assigned_directory()
    assert policy.evaluate({"buyer": "sam", "total": 10}, directory, now=NOW).outcome == "approved"
    assert policy.evaluate({"buyer": "lou", "total": 10}, directory, now=NOW).outcome == "pending"
    assert describe({"buyer_has_approver": True}) == "buyer has an assigned approver"
    assert describe({"not": {"buyer_has_approver": False}}) == "not buyer has no assigned approver"
    assert uses_key(
        {"any": [{"total": {"gt": 1}}, {"buyer_has_approver": True}]}, "buyer_has_approver"
    )


def test_buyer_has_approver_counts_only_the_orders_company():
    data = {
        "companies": {"acme": {"name": "Acme"}, "beta": {"name": "Beta"}},
        "accounts": {
            "sam": {
                "name": "Sam",
                "memberships": [
                    {"company": "acme", "role": "user", "default": True},
                    {"company": "beta", "role": "user"},
                ],
            },
            "boss": {"name": "Boss", "memberships": [{"company": "beta", "role": "manager"}]},
        },
        "assignments": [{"approver": "boss", "account": "sam", "company": "beta"}],
    }
    directory = make_directory(data)
    policy = make_policy(ruleset(approval={"steps": [_step(when={"buyer_has_approver": True})]}))
    assert policy.evaluate({"buyer": "sam", "total": 5}, directory, now=NOW).outcome == "approved"
    on_beta = {"buyer": "sam", "company": "beta", "total": 5}
    assert policy.evaluate(on_beta, directory, now=NOW).outcome == "pending"


# ---------------------------------------------------------- validity windows


def test_step_validity_window_is_inclusive_and_traced(directory):
    policy = make_policy(
        ruleset(
            approval={
                "steps": [
                    _step(
                        when={"total": {"gt": 100}},
                        valid_from="2026-04-01",
                        valid_until="2026-06-30",
                    )
                ]
            }
        )
    )
    order = {"buyer": "sam", "total": 500}
    assert _names(policy.evaluate(order, directory, now="2026-03-31T23:59:00Z")) == []
    assert _names(policy.evaluate(order, directory, now="2026-04-01T00:00:00Z")) == ["review"]
    assert _names(policy.evaluate(order, directory, now="2026-06-30T23:59:00Z")) == ["review"]
    late = policy.evaluate(order, directory, now="2026-07-01T00:00:00Z")
    assert _names(late) == []
    traced = [t for t in late.trace if t.rule == "approval.steps.review"][0]
    assert traced.result == "not_matched"
    assert (
        "order date on or after 2026-04-01 and on or before 2026-06-30: no (order date 2026-07-01)"
        in (traced.as_dict()["why"])
    )
    assert policy.steps[0].validity == Validity(
        datetime(2026, 4, 1).date(), datetime(2026, 6, 30).date()
    )
    assert "order date on or after 2026-04-01" in policy.steps[0].condition_text


def test_with_validity_keeps_a_when_that_tests_the_date_too():
    window = Validity(valid_until=datetime(2026, 6, 30).date())
    joined = with_validity({"order_date": {"gte": "2026-01-01"}}, window)
    assert joined == {
        "all": [{"order_date": {"lte": "2026-06-30"}}, {"order_date": {"gte": "2026-01-01"}}]
    }
    assert with_validity(None, window) == {"order_date": {"lte": "2026-06-30"}}
    assert with_validity({"total": {"gt": 1}}, None) == {"total": {"gt": 1}}


def test_order_limit_and_budget_apply_only_within_their_validity(directory):
    policy = make_policy(
        ruleset(
            limits={
                "order_limit": {
                    "amount": 1000,
                    "on_exceed": "block",
                    "valid_from": "2026-02-01",
                },
                "budgets": [
                    {
                        "name": "spring",
                        "period": "month",
                        "amount": 500,
                        "on_exceed": "block",
                        "valid_from": "2026-03-01",
                        "valid_until": "2026-05-31",
                    }
                ],
            }
        )
    )
    big = {"buyer": "sam", "total": 2000}
    january = policy.evaluate(big, directory, now="2026-01-20T10:00:00Z")
    assert january.outcome == "approved"
    skipped = {t.rule: t for t in january.trace if t.result == "skipped"}
    assert (
        "not in force on 2026-01-20 (valid from 2026-02-01)"
        in (skipped["limits.order_limit"].as_dict()["why"])
    )
    assert (
        "valid from 2026-03-01 until 2026-05-31"
        in (skipped["limits.budgets.spring"].as_dict()["why"])
    )
    assert policy.evaluate(big, directory, now="2026-02-20T10:00:00Z").reason_codes() == [
        "order_limit_exceeded"
    ]
    mid = {"buyer": "sam", "total": 800}
    assert policy.evaluate(mid, directory, now="2026-02-20T10:00:00Z").outcome == "approved"
    assert policy.evaluate(mid, directory, now="2026-04-20T10:00:00Z").reason_codes() == [
        "budget_exceeded"
    ]
    assert policy.evaluate(mid, directory, now="2026-06-01T10:00:00Z").outcome == "approved"
    assert policy.budgets[0].in_force(datetime(2026, 5, 31).date())


# ------------------------------------------------------------ fixed expiry


def test_fixed_expiry_date_is_the_end_of_that_day_in_the_zone(directory):
    rules = ruleset(
        time_zone="Europe/Berlin",
        approval={"expiry": {"date": "2026-03-31"}, "steps": [_step()]},
    )
    decision = make_policy(rules).evaluate({"buyer": "sam", "total": 10}, directory, now=NOW)
    # midnight after March 31st in Berlin (CEST, +02:00) is 22:00 UTC
    assert decision.expires_at == datetime(2026, 3, 31, 22, 0, tzinfo=UTC)
    assert decision.as_dict()["expires_at"] == "2026-03-31T22:00:00Z"


def test_expiry_after_and_date_together_the_earlier_wins(directory):
    rules = ruleset(approval={"expiry": {"after": "P7D", "date": "2026-01-18"}, "steps": [_step()]})
    policy = make_policy(rules)
    order = {"buyer": "sam", "total": 10}
    # submitted on the 15th: the date (end of the 18th) comes before 7 days
    assert policy.evaluate(order, directory, now=NOW).expires_at == datetime(
        2026, 1, 19, tzinfo=UTC
    )
    # submitted on the 5th: 7 days (the 12th) comes first
    early = policy.evaluate(order, directory, now="2026-01-05T12:00:00Z")
    assert early.expires_at == datetime(2026, 1, 12, 12, tzinfo=UTC)
    assert policy.expiry_deadline == datetime(2026, 1, 19, tzinfo=UTC)


def test_step_expiry_date_applies_when_that_step_does(directory):
    rules = ruleset(
        approval={
            "expiry": {"after": "P30D"},
            "steps": [
                _step(),
                {
                    "name": "finance",
                    "when": {"total": {"gt": 1000}},
                    "approvers": {"any_of": [{"role": "admin"}]},
                    "expiry": {"date": "2026-01-20T17:00:00+01:00"},
                },
            ],
        }
    )
    policy = make_policy(rules)
    small = policy.evaluate({"buyer": "sam", "total": 10}, directory, now=NOW)
    assert small.expires_at == datetime(2026, 2, 14, 12, tzinfo=UTC)
    large = policy.evaluate({"buyer": "sam", "total": 5000}, directory, now=NOW)
    assert large.expires_at == datetime(2026, 1, 20, 16, tzinfo=UTC)
    assert policy.step("finance").expiry_deadline == datetime(2026, 1, 20, 16, tzinfo=UTC)
    assert dict(policy.step_deadlines) == {"finance": datetime(2026, 1, 20, 16, tzinfo=UTC)}


def test_expiry_helpers():
    utc_end = deadline("2026-06-30", UTC)
    assert utc_end == datetime(2026, 7, 1, tzinfo=UTC)
    assert deadline("2026-06-30", time_zone("America/New_York")) == datetime(
        2026, 7, 1, 4, tzinfo=UTC
    )
    submitted = datetime(2026, 6, 1, tzinfo=UTC)
    assert request_expiry(submitted, None, None) is None
    assert request_expiry(submitted, None, None, [utc_end, None]) == utc_end
    assert fixed_deadline(None, [None]) is None
    assert fixed_deadline(utc_end, [datetime(2026, 6, 2, tzinfo=UTC)]) == datetime(
        2026, 6, 2, tzinfo=UTC
    )


# ------------------------------------------------------------ validation


def _codes(rules):
    return [(p.code, p.path) for p in problems_of(to_yaml(rules))]


def test_unknown_time_zone_is_refused_with_what_to_write():
    problems = problems_of("ruleset: t\ntime_zone: Mars/Olympus\n")
    assert [(p.code, p.line) for p in problems] == [("unknown_time_zone", 2)]
    assert "Europe/Berlin" in problems[0].message


def test_dates_that_do_not_exist_are_refused():
    codes = _codes(
        ruleset(
            limits={
                "budgets": [
                    {"name": "b", "period": "month", "amount": 1, "valid_from": "2026-02-30"}
                ]
            },
            approval={
                "expiry": {"date": "2026-13-01"},
                "steps": [_step(when={"order_date": {"gt": "2026-04-31"}})],
            },
        )
    )
    assert ("invalid_date", "limits.budgets[0].valid_from") in codes
    assert ("invalid_date", "approval.expiry.date") in codes
    assert ("invalid_date", "approval.steps[0].when") in codes


def test_validity_that_ends_before_it_starts_is_refused():
    problems = problems_of(
        "ruleset: t\nlimits:\n  order_limit:\n    amount: 10\n    valid_from: 2026-05-01\n"
        "    valid_until: 2026-04-01\n"
    )
    assert [(p.code, p.line) for p in problems] == [("invalid_validity", 6)]
    assert "before valid_from" in problems[0].message


def test_expiry_needs_after_or_date_and_steps_take_only_a_date():
    problems = problems_of("ruleset: t\napproval:\n  expiry: {then: cancel}\n")
    assert [(p.code, p.line) for p in problems] == [("missing_key", 3)]
    assert "`after`" in problems[0].message and "`date`" in problems[0].message
    step = (
        "ruleset: t\nroles: {x: {label: X}}\napproval:\n  steps:\n"
        "    - {name: a, approvers: {any_of: [{role: x}]}, expiry: {after: P1D}}\n"
    )
    assert ("unknown_key", "approval.steps[0].expiry.after") in [
        (p.code, p.path) for p in problems_of(step)
    ]


# ------------------------------------------------------------ e-mail per recipient


def _email_policy(**notifications):
    return make_policy(
        ruleset(
            approval={"steps": [_step()]},
            **({"notifications": notifications} if notifications else {}),
        )
    )


def _channels(decision, event):
    note = [n for n in decision.notifications if n.event == event][0]
    return {r.account: r.channel for r in note.recipients}


def _with_settings(account, settings):
    """The base directory with ``settings`` on ``account``'s membership."""
    spec = dict(BASE_DIRECTORY["accounts"][account])
    spec["memberships"] = [{**spec["memberships"][0], "settings": settings}]
    return make_directory(with_account(account, spec))


def test_email_to_approvers_off_stops_only_the_approvers_email():
    directory = _with_settings("sam", {"email_to_approvers": False})
    decision = _email_policy().evaluate({"buyer": "sam", "total": 10}, directory, now=NOW)
    assert _channels(decision, "order_submitted") == {"sam": "email"}
    assert set(_channels(decision, "approval_requested").values()) == {"inbox"}
    assert decision.buyer["email_to_approvers"] is False


def test_email_as_buyer_off_keeps_the_approvers_email():
    directory = _with_settings("sam", {"email_as_buyer": False})
    decision = _email_policy(approval_email="both_flags").evaluate(
        {"buyer": "sam", "total": 10}, directory, now=NOW
    )
    assert _channels(decision, "order_submitted") == {"sam": "inbox"}
    assert set(_channels(decision, "approval_requested").values()) == {"email"}


def test_email_as_approver_off_stops_that_approvers_email_only():
    directory = _with_settings("mgr-sales", {"email_as_approver": False})
    decision = _email_policy().evaluate({"buyer": "sam", "total": 10}, directory, now=NOW)
    assert _channels(decision, "approval_requested") == {"mgr-sales": "inbox", "mgr-ops": "email"}


def test_the_old_email_setting_still_switches_everything():
    # buyer e-mail off under both_flags: its own notices and its approvers' go to inboxes
    directory = _with_settings("sam", {"email": False})
    decision = _email_policy(approval_email="both_flags").evaluate(
        {"buyer": "sam", "total": 10}, directory, now=NOW
    )
    assert _channels(decision, "order_submitted") == {"sam": "inbox"}
    assert set(_channels(decision, "approval_requested").values()) == {"inbox"}
    # under approver_flag (the default) the buyer's switch does not reach the approvers
    default = _email_policy().evaluate({"buyer": "sam", "total": 10}, directory, now=NOW)
    assert set(_channels(default, "approval_requested").values()) == {"email"}
    # an approver's email: false still keeps it off approval e-mail
    off = _with_settings("mgr-ops", {"email": False})
    decision = _email_policy().evaluate({"buyer": "sam", "total": 10}, off, now=NOW)
    assert _channels(decision, "approval_requested") == {"mgr-sales": "email", "mgr-ops": "inbox"}


def test_explicit_flag_wins_over_email():
    directory = _with_settings("sam", {"email": False, "email_as_buyer": True})
    decision = _email_policy(approval_email="both_flags").evaluate(
        {"buyer": "sam", "total": 10}, directory, now=NOW
    )
    assert _channels(decision, "order_submitted") == {"sam": "email"}
    # email_to_approvers unset: under both_flags it follows the buyer's email (off)
    assert set(_channels(decision, "approval_requested").values()) == {"inbox"}
