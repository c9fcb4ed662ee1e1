"""The behavioural diff's two promises, checked on random pairs of rule sets and random orders.

* Whenever the two versions decide an order differently, a reported change
  covers that order (its currency, total, order type, buyer and lines).
* Whenever a change is reported, its example order really is decided
  differently by the two versions.

Rule sets are drawn from steps (total, line count, quantity and line tests),
deny and bypass rules, maximums and a conversion rate; the directory is the
Acme fixture beside this file.  CI runs a modest number of examples; the
``slow`` variant runs many more.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st

from approvalrules import diff
from approvalrules.diff.decisions import DEFAULT_NOW, evaluate_summary
from approvalrules.engine import Order, compile_ruleset, load_directory
from approvalrules.engine.conditions import Facts, Line, compile_trees, parse

HERE = Path(__file__).resolve().parent
DIRECTORY = load_directory(
    (HERE / "directories" / "acme.yaml").read_text("utf-8"), "directories/acme.yaml"
)
BUYERS = ["acme-master", "ann", "bob", "cid", "dee", "eve"]
SKUS = ["A", "B", "other"]

amounts = st.integers(1, 60).map(lambda n: n * 50)  # 50 .. 3000: edges meet often
counts = st.integers(0, 5)

line_tests = st.one_of(
    st.builds(lambda n: {"line_count": {"gt": n}}, counts),
    st.builds(lambda n: {"line_count": {"lte": n}}, counts),
    st.builds(lambda q: {"quantity": {"gte": q}}, st.integers(1, 30)),
    st.builds(
        lambda sku, q: {"lines": {"sku": sku, "quantity": {"gt": q}}},
        st.sampled_from(["A", "B"]),
        st.integers(0, 10),
    ),
    st.builds(lambda sku: {"lines": {"sku": sku}}, st.sampled_from(["A", "B", ["A", "B"]])),
)
total_tests = st.one_of(
    st.builds(lambda a: {"total": {"gt": a}}, amounts),
    st.builds(lambda a, b: {"total": {"gte": min(a, b), "lt": max(a, b) + 1}}, amounts, amounts),
)
conditions = st.one_of(
    total_tests,
    line_tests,
    st.builds(lambda a, b: {**a, **b}, total_tests, line_tests),
    st.builds(lambda a, b: {"any": [a, b]}, total_tests, line_tests),
    st.builds(lambda a: {"not": a}, line_tests),
)
groups = st.sampled_from([None, "marketing", "ops"])


@st.composite
def rulesets(draw) -> str:
    """An Acme-like rule set as JSON text (YAML reads it as it is)."""
    steps = []
    for index in range(draw(st.integers(1, 3))):
        when = dict(draw(conditions))
        group = draw(groups)
        if group:
            when = {"all": [when, {"buyer_group": group}]}
        steps.append(
            {
                "name": f"s{index}",
                "when": when,
                "approvers": {"any_of": [{"role": "approver"}, {"role": "master"}]},
                "required": draw(st.integers(1, 2)),
            }
        )
    data = {
        "ruleset": "acme",
        "currency": "USD",
        "roles": {
            "master": {"label": "Master", "permissions": ["place_orders", "approve_orders"]},
            "approver": {"label": "Approver", "permissions": ["place_orders", "approve_orders"]},
            "requisitioner": {"label": "Requisitioner", "permissions": ["place_orders"]},
        },
        "groups": {"marketing": {"label": "Marketing"}, "ops": {"label": "Ops"}},
        "approval": {"steps": steps},
    }
    if draw(st.booleans()):
        data["limits"] = {"max_order_total": draw(amounts)}
    if draw(st.booleans()):
        data["deny"] = [{"name": "d", "when": draw(conditions), "reason": "denied by rule"}]
    if draw(st.booleans()):
        rule = {"name": "b", "when": draw(conditions)}
        if draw(st.booleans()):
            rule["roles"] = ["master"]
        data["bypass"] = [rule]
    if draw(st.booleans()):
        data["conversion"] = {"EUR": draw(st.sampled_from(["1.08", "1.1", "0.9", "1.25"]))}
    return json.dumps(data)


lines = st.lists(
    st.builds(
        lambda sku, q: Line(sku, None, Decimal(q)), st.sampled_from(SKUS), st.integers(1, 12)
    ),
    max_size=6,
).map(tuple)
orders = st.builds(
    lambda buyer, cents, currency, order_type, order_lines: Order(
        buyer=buyer,
        total=Decimal(cents) / 100,
        company="acme",
        currency=currency,
        type=order_type,
        lines=order_lines,
    ),
    st.sampled_from(BUYERS),
    st.integers(0, 400_000),
    st.sampled_from(["USD", "EUR"]),
    st.sampled_from(["regular", "bulk"]),
    lines,
)


def _in(range_: dict | None, value: Decimal) -> bool:
    if range_ is None:
        return True
    low, high = range_["low"], range_["high"]
    if low is not None and (
        value < Decimal(low) or (value == Decimal(low) and not range_["low_inclusive"])
    ):
        return False
    return not (
        high is not None
        and (value > Decimal(high) or (value == Decimal(high) and not range_["high_inclusive"]))
    )


def covers(change, order: Order, members: dict[str, list[str]], policy_currency: str) -> bool:
    """Whether the reported change stands for ``order``."""
    data = change.as_dict()
    if (data["currency"] or policy_currency) != (order.currency or policy_currency):
        return False
    if not _in(data["total"], order.total):
        return False
    if data["order_types"] is not None and order.type not in data["order_types"]:
        return False
    if not any(order.buyer in members[name] for name in data["classes"]):
        return False
    if change.lines is not None:
        lines_data = data["lines"]
        if not _in(lines_data["line_count"], Decimal(len(order.lines))):
            return False
        quantity = sum((line.quantity for line in order.lines), Decimal(0))
        if not _in(lines_data["quantity"], quantity):
            return False
        tests = compile_trees([parse({"lines": spec}) for spec in change.lines.specs])
        facts = _facts(order.lines)
        for (_, holds), test in zip(change.lines.tests, tests, strict=True):
            if test(facts) != holds:
                return False
    return True


def _facts(order_lines):
    return Facts(Decimal(0), None, "regular", order_lines, "", None, None, {}, frozenset())


def _example_order(change) -> Order:
    example = change.example
    return Order(
        buyer=example["buyer"],
        total=Decimal(example["total"]),
        company=example["company"],
        currency=example.get("currency"),
        type=example["type"],
        lines=tuple(
            Line(line["sku"], line["category"], Decimal(line["quantity"]))
            for line in example.get("lines", ())
        ),
    )


def check_pair(old_text: str, new_text: str, sample_orders: list[Order]) -> None:
    note(f"old: {old_text}")
    note(f"new: {new_text}")
    old, new = compile_ruleset(old_text, "old.yaml"), compile_ruleset(new_text, "new.yaml")
    report = diff.behavioural_diff(old, new, DIRECTORY)
    assert report.complete, report.unexplored
    members = {c.name: c.members for c in report.classes}
    for change in report.changes:
        order = _example_order(change)
        before = evaluate_summary(old, order, DIRECTORY, DEFAULT_NOW)
        after = evaluate_summary(new, order, DIRECTORY, DEFAULT_NOW)
        assert before != after, f"reported but no change at its example: {change.text}"
    accepted = set(diff.explored_currencies(old, new))
    for order in sample_orders:
        if order.currency not in accepted:
            continue  # refused by both versions; the diff explores what either one accepts
        before = evaluate_summary(old, order, DIRECTORY, DEFAULT_NOW)
        after = evaluate_summary(new, order, DIRECTORY, DEFAULT_NOW)
        if before != after:
            assert any(covers(c, order, members, old.currency) for c in report.changes), (
                f"{order} changes ({diff.change_text(before, after)}) but no band covers it: "
                f"{report.lines()}"
            )


PROFILE = dict(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

#: a pair the slow test found: four line tests on one SKU, two line counts and two
#: quantities make 528 combinations to try, more than the 512 scenarios allowed, although
#: they give far fewer distinct scenarios (the diff gave up on it: lines not explored)
_APPROVERS = {"any_of": [{"role": "approver"}, {"role": "master"}]}
_ROLES = {
    "master": {"label": "Master", "permissions": ["place_orders", "approve_orders"]},
    "approver": {"label": "Approver", "permissions": ["place_orders", "approve_orders"]},
    "requisitioner": {"label": "Requisitioner", "permissions": ["place_orders"]},
}
_BASE = {
    "ruleset": "acme",
    "currency": "USD",
    "roles": _ROLES,
    "groups": {"marketing": {"label": "Marketing"}, "ops": {"label": "Ops"}},
}


def _step(name: str, when: dict, required: int) -> dict:
    return {"name": name, "when": when, "approvers": _APPROVERS, "required": required}


MANY_LINE_COMBINATIONS = (
    json.dumps(
        {
            **_BASE,
            "approval": {
                "steps": [
                    _step("s0", {"line_count": {"gt": 0}}, 1),
                    _step("s1", {"lines": {"sku": "A", "quantity": {"gt": 0}}}, 1),
                    _step("s2", {"quantity": {"gte": 15}}, 2),
                ]
            },
            "limits": {"max_order_total": 2150},
            "deny": [{"name": "d", "when": {"quantity": {"gte": 11}}, "reason": "denied by rule"}],
        }
    ),
    json.dumps(
        {
            **_BASE,
            "approval": {
                "steps": [
                    _step("s0", {"total": {"gt": 500}}, 1),
                    _step("s1", {"lines": {"sku": "A"}}, 2),
                    _step("s2", {"lines": {"sku": "A", "quantity": {"gt": 8}}}, 1),
                ]
            },
            "deny": [
                {
                    "name": "d",
                    "when": {"lines": {"sku": "A", "quantity": {"gt": 9}}},
                    "reason": "denied by rule",
                }
            ],
            "bypass": [{"name": "b", "when": {"line_count": {"gt": 4}}}],
        }
    ),
)


@settings(max_examples=35, **PROFILE)
@given(rulesets(), rulesets(), st.lists(orders, min_size=20, max_size=20))
@example(*MANY_LINE_COMBINATIONS, [])
def test_reported_bands_cover_every_changed_order_and_only_real_changes(old, new, sample):
    check_pair(old, new, sample)


@settings(max_examples=25, **PROFILE)
@given(rulesets(), st.data())
def test_a_small_edit_is_found(old, data):
    """A pair that differs in one part: changed orders are likelier than between two random sets."""
    parsed = json.loads(old)
    parsed["approval"]["steps"][0]["when"] = data.draw(conditions)
    sample = data.draw(st.lists(orders, min_size=30, max_size=30))
    check_pair(old, json.dumps(parsed), sample)


@pytest.mark.slow
@settings(max_examples=400, **PROFILE)
@given(rulesets(), rulesets(), st.lists(orders, min_size=40, max_size=40))
def test_bands_cover_changes_many_examples(old, new, sample):
    check_pair(old, new, sample)
