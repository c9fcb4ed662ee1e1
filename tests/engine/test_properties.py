"""Hypothesis properties of the engine: determinism, monotone thresholds, no self-approval,
the max-order-total block, and a loader that only ever raises DocumentError."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approvalrules.engine import check_ruleset
from approvalrules.engine.load import load_document
from approvalrules.errors import DocumentError

from .conftest import BASE_DIRECTORY, BASE_ROLES, NOW, make_directory, make_policy, to_yaml

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

amounts = st.decimals(
    min_value=0, max_value=100_000, places=2, allow_nan=False, allow_infinity=False
)
DIRECTORY = make_directory()
BUYERS = sorted(BASE_DIRECTORY["accounts"])

relations = st.sampled_from(["assigned", "unassigned", "same_group", "group_master", "company"])
selectors = st.builds(
    lambda role, relation: {
        k: v for k, v in (("role", role), ("relation", relation)) if v is not None
    },
    st.sampled_from([None, "manager", "admin", ["manager", "admin"]]),
    relations,
)


@st.composite
def threshold_rulesets(draw):
    """A rule set whose steps fire on `total > threshold` (plus other non-total conditions)."""
    n = draw(st.integers(1, 5))
    steps = []
    for i in range(n):
        cond = {"total": {draw(st.sampled_from(["gt", "gte"])): str(draw(amounts))}}
        extra = draw(
            st.sampled_from(
                [
                    None,
                    {"buyer_group": "sales"},
                    {"order_type": "regular"},
                    {"buyer_role": ["user", "manager"]},
                ]
            )
        )
        if extra:
            cond = {**cond, **extra}
        steps.append(
            {
                "name": f"s{i}",
                "when": cond,
                "approvers": {"any_of": draw(st.lists(selectors, min_size=1, max_size=3))},
                "required": draw(st.integers(1, 2)),
            }
        )
    data = {
        "ruleset": "p",
        "roles": BASE_ROLES,
        "groups": {"sales": {}, "ops": {}},
        "approval": {"steps": steps},
    }
    if draw(st.booleans()):
        data["settings"] = {"no_approval_below": str(draw(amounts))}
    if draw(st.booleans()):
        data["limits"] = {"order_limit": {"amount": str(draw(amounts))}}
        data["approval"]["steps"].append(
            {
                "name": "over",
                "when": {"exceeds": "order_limit"},
                "approvers": {"any_of": [{"role": "admin"}]},
            }
        )
    return data


orders = st.fixed_dictionaries(
    {"buyer": st.sampled_from(BUYERS), "total": amounts.map(str)},
    optional={
        "type": st.sampled_from(["regular", "bulk", "subscription"]),
        "lines": st.lists(
            st.fixed_dictionaries(
                {"sku": st.sampled_from(["A", "B", "C"]), "quantity": st.integers(0, 50)}
            ),
            max_size=4,
        ),
    },
)


def decide(policy, order, directory=DIRECTORY):
    return policy.evaluate(order, directory, now=NOW)


@FAST
@given(threshold_rulesets(), orders)
def test_evaluation_is_deterministic(rules, order):
    policy = make_policy(rules)
    first = decide(policy, order).as_dict()
    assert decide(policy, dict(order)).as_dict() == first
    assert (
        decide(make_policy(to_yaml(rules) + "\n# same rules, new text\n"), order).as_dict()["steps"]
        == first["steps"]
    )
    assert json.dumps(first) == json.dumps(decide(policy, order).as_dict())


def _raise_threshold(rules: dict, which: int, by: Decimal) -> dict:
    raised = json.loads(json.dumps(rules))
    bumpable = []
    for s in raised["approval"]["steps"]:
        for op in ("gt", "gte"):
            if op in (s.get("when") or {}).get("total", {}):
                bumpable.append((s["when"]["total"], op))
    if "settings" in raised:
        bumpable.append((raised["settings"], "no_approval_below"))
    if "limits" in raised:
        bumpable.append((raised["limits"]["order_limit"], "amount"))
    holder, key = bumpable[which % len(bumpable)]
    holder[key] = str(Decimal(holder[key]) + by)
    return raised


@FAST
@given(
    threshold_rulesets(),
    st.integers(0, 20),
    amounts.filter(lambda a: a > 0),
    st.lists(orders, min_size=1, max_size=5),
)
def test_raising_a_threshold_never_turns_approved_into_pending(rules, which, by, some_orders):
    before = make_policy(rules)
    after = make_policy(_raise_threshold(rules, which, by))
    for order in some_orders:
        if decide(before, order).outcome == "approved":
            assert decide(after, order).outcome == "approved", (order, rules)


@st.composite
def directories_with_approving_buyer(draw):
    """Random members of one company; the buyer `b` always holds a role with approve_orders."""
    accounts = {
        "b": {
            "name": "B",
            "memberships": [
                {
                    "company": "c",
                    "role": draw(st.sampled_from(["manager", "admin"])),
                    **({"group": "g1"} if draw(st.booleans()) else {}),
                }
            ],
        },
    }
    for i in range(draw(st.integers(0, 5))):
        master = draw(st.booleans())
        m = {"company": "c", "role": draw(st.sampled_from(["manager", "admin", "user"]))}
        if master:
            m["master"] = True
        elif draw(st.booleans()):
            m["group"] = draw(st.sampled_from(["g1", "g2"]))
        accounts[f"a{i}"] = {"name": f"A{i}", "memberships": [m]}
    if draw(st.booleans()):
        accounts["b"]["memberships"][0].pop("group", None)
        accounts["b"]["memberships"][0]["master"] = True
    assignments = (
        [{"approver": "b", "account": "b", "company": "c", "threshold": "0"}]
        if draw(st.booleans())
        else []
    )
    return {
        "companies": {"c": {"name": "C", "groups": {"g1": {}, "g2": {}}}},
        "accounts": accounts,
        "assignments": assignments,
    }


@FAST
@given(
    directories_with_approving_buyer(),
    st.lists(selectors, min_size=1, max_size=4),
    st.sampled_from(["universal", "own_group"]),
    st.booleans(),
    amounts.map(str),
)
def test_without_self_approval_the_buyer_never_approves_its_own_order(
    data, any_of, scope, tiers, total
):
    steps = [{"name": "s", "approvers": {"any_of": any_of}}]
    if tiers:
        steps.append({"name": "t", "kind": "assignment_tiers"})
    rules = {
        "ruleset": "p",
        "roles": BASE_ROLES,
        "approval": {"self_approval": False, "scope": scope, "steps": steps},
    }
    d = decide(make_policy(rules), {"buyer": "b", "total": total}, make_directory(data))
    assert "b" not in {a.account for s in d.steps for a in s.approvers}
    for n in d.notifications:
        if n.event == "approval_requested":
            assert "b" not in {r.account for r in n.recipients}


@FAST
@given(threshold_rulesets(), orders, amounts, st.booleans(), st.booleans())
def test_max_order_total_blocks_whatever_else_matches(rules, order, maximum, hold, bulk_settings):
    rules = json.loads(json.dumps(rules))
    rules.setdefault("limits", {})["max_order_total"] = str(maximum)
    rules.setdefault("settings", {})["hold_orders"] = hold
    if bulk_settings:
        rules["bulk_orders"] = "bulk_settings"
    total = Decimal(order["total"])
    d = decide(make_policy(rules), order)
    if total > maximum:
        assert d.outcome == "blocked"
        assert "max_order_total_exceeded" in d.reason_codes()
        assert d.steps == () and d.payer is None and d.expires_at is None
    else:
        assert "max_order_total_exceeded" not in d.reason_codes()


# ------------------------------------------------------------ loader fuzz


def _only_document_errors(text):
    try:
        doc = load_document(text, "fuzz.yaml")
    except DocumentError as exc:
        assert exc.problems and all(p.format().startswith("fuzz.yaml") for p in exc.problems)
        return None
    with contextlib.suppress(DocumentError):
        check_ruleset(text, "fuzz.yaml")
    return doc


#: every code point, lone surrogates included: the loader must answer each with a DocumentError
yaml_alphabet = st.characters()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=yaml_alphabet, max_size=300))
def test_loader_raises_only_document_error_on_arbitrary_text(text):
    _only_document_errors(text)


SEED = (
    to_yaml(
        {
            "ruleset": "seed",
            "currency": "USD",
            "roles": {"m": {"label": "M", "permissions": ["approve_orders"]}},
            "limits": {
                "max_order_total": "1000",
                "budgets": [{"name": "b", "period": "month", "amount": 10}],
            },
            "approval": {
                "self_approval": False,
                "steps": [
                    {
                        "name": "s",
                        "when": {"total": {"gt": 5}},
                        "approvers": {"any_of": [{"role": "m"}]},
                    }
                ],
            },
        }
    )
    + "anchors: &a [1, *a]\n"
)
YAML_PIECES = [
    "[",
    "]",
    "{",
    "}",
    ":",
    "- ",
    "&x ",
    "*x",
    "!!python/object ",
    "no",
    "1:30",
    "2026-01-01",
    "\n  ",
    "'",
    '"',
    "#",
    "? ",
    "9" * 40,
    "<<: ",
    "---\n",
    "\t",
    "|\n",
    "%YAML 1.1\n",
]


@st.composite
def mutated_seed(draw):
    text = SEED
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from(YAML_PIECES) | st.text(alphabet=yaml_alphabet, max_size=5))
        if action == "insert":
            text = text[:pos] + piece + text[pos:]
        elif action == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 20)) :]
        else:
            text = text[:pos] + piece + text[pos + len(piece) :]
    return text


@settings(max_examples=200, deadline=None)
@given(mutated_seed())
def test_loader_raises_only_document_error_on_mutated_yaml(text):
    _only_document_errors(text)
