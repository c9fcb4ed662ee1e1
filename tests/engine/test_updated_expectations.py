"""Rewriting failing embedded tests from today's decisions (the admin offers it, after review)."""

from __future__ import annotations

from approvalrules.engine import compile_policy
from approvalrules.engine.ruletests import run_tests, updated_expectations

from .conftest import checked, make_directory, ruleset

STEP = {
    "name": "sales",
    "when": {"buyer_group": "sales", "total": {"gt": 500}},
    "approvers": {"any_of": [{"role": "manager"}]},
}


def rules(threshold, tests):
    return ruleset(
        approval={"steps": [{**STEP, "when": {"total": {"gt": threshold}}}]}, tests=tests
    )


TESTS = [
    {
        "name": "sam 800 pending",
        "order": {"buyer": "sam", "total": 800},
        "expect": {
            "outcome": "pending",
            "steps": [{"name": "sales", "required": 1}],
            "approvers": ["mgr-ops", "mgr-sales"],
            "not_approvers": ["sam"],
        },
    },
    {
        "name": "sam 100 approved",
        "order": {"buyer": "sam", "total": 100},
        "expect": {"outcome": "approved"},
    },
]


def test_failing_tests_get_the_decisions_of_today_and_keep_their_keys():
    validated = checked(rules(1000, TESTS))
    policy, directory = compile_policy(validated), make_directory()
    assert [r.passed for r in run_tests(validated, policy, directory)] == [False, True]

    updates = updated_expectations(validated, policy, directory)

    # only the failing test, with the keys it checked, now from an approved decision
    assert updates == {
        0: {"outcome": "approved", "steps": [], "approvers": [], "not_approvers": ["sam"]}
    }
    fixed = [dict(t) for t in TESTS]
    fixed[0] = {**fixed[0], "expect": updates[0]}
    revalidated = checked(rules(1000, fixed))
    results = run_tests(revalidated, compile_policy(revalidated), directory)
    assert all(r.passed for r in results)


def test_passing_tests_need_no_update():
    validated = checked(rules(500, TESTS))
    assert updated_expectations(validated, compile_policy(validated), make_directory()) == {}
