#!/usr/bin/env python
"""Benchmark: how fast does a compiled Policy decide, next to other ways of writing the same rules?

Not a test.  Run from the checkout::

    .venv/bin/pip install -e '.[bench]'   # rule-engine, panzi-json-logic, business-rules,
                                          # cedarpy, opa-eval
    .venv/bin/python bench/evaluate.py [--orders N] [--quick] [--profile]

What it does (details in bench/README.md):

* generates, from a seeded random, a directory (one company, 30 accounts in
  roles and groups, some assignments), a 20-step and a 50-step rule set as
  YAML text, and N synthetic orders (default 10,000, 1-30 lines each),
  pre-built as ``approvalrules.engine.Order`` objects so parsing is not timed;
* times our compiled policy with the trace on (``policy.evaluate`` alone, and
  ``evaluate`` + ``decision.as_dict()``) and the same rules written as
  (a) hand-written Python, (b) rule-engine, (c) JsonLogic (panzi-json-logic),
  (d) business-rules, (e) Cedar via cedarpy, (f) Rego via opa-eval (regorus);
  each call timed with ``time.perf_counter_ns`` (median, p99) plus a bulk
  loop (decisions/s, and its CPU time per call);
* cross-checks, for every order, that every peer matched exactly the steps
  ours matched and selected the same approvers;
* times condition matching alone (which steps match: no approver selection,
  no trace) for every peer and for our compiled step predicates, same orders,
  same timing, cross-checked the same way;
* times validate + compile of a generated 1,000-step rule set;
* prints both tables and the targets with PASS/MISS (ahead of every peer,
  with our ratio to each, in both tables).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from approvalrules.engine import (  # noqa: E402
    Order,
    check_ruleset,
    compile_policy,
    compile_ruleset,
    load_directory,
)

SEED = 20260115
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
COMPANY = "bench-co"

TARGET_RATE = 100_000  # decisions/s, 20-step set, trace on
TARGET_FLOOR = 2.5  # ours at most 2.5x the time of (a)
TARGET_AHEAD = 1.0  # ours ahead of every peer (b)-(f), full decision and matching alone
TARGET_COMPILE_MS = 200.0  # validate + compile of 1,000 steps

# --------------------------------------------------------------- the world

ROLES = {
    "master": {
        "label": "Master",
        "permissions": ["place_orders", "approve_orders", "view_group_orders"],
    },
    "manager": {
        "label": "Manager",
        "permissions": ["place_orders", "approve_orders"],
        "settings": {"approval_limit": 25000},
    },
    "approver": {
        "label": "Approver",
        "permissions": ["place_orders", "approve_orders"],
        "settings": {"approval_limit": 5000},
    },
    "finance": {"label": "Finance", "permissions": ["place_orders", "approve_orders"]},
    "buyer": {"label": "Buyer", "permissions": ["place_orders"]},
    "requisitioner": {"label": "Requisitioner", "permissions": ["place_orders"]},
}
APPROVING_ROLES = ("master", "manager", "approver", "finance")
GROUPS = {
    "marketing": {"label": "Marketing", "settings": {"payer": "company"}},
    "ops": {"label": "Operations"},
    "it": {"label": "IT", "settings": {"approval_limit": 10000}},
    "facilities": {"label": "Facilities"},
    "sales": {"label": "Sales", "settings": {"payer": "company"}},
}
ORDER_TYPES = (
    "regular",
    "bulk",
    "subscription",
    "quote",
)  # quotes appear in conditions, never as orders (they are blocked)
CATEGORIES = (
    "paper",
    "toner",
    "furniture",
    "it-hardware",
    "software",
    "cleaning",
    "catering",
    "safety",
    "tools",
    "packaging",
    "print",
    "travel",
)
SKUS = tuple(f"SKU-{i:04d}" for i in range(300))
TOTAL_THRESHOLDS = (100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000)
QTY_SUM_THRESHOLDS = (100, 200, 400, 800)
LINE_QTY_THRESHOLDS = (5, 10, 20, 50, 100)


def sku_category(rng_seed: int = SEED) -> dict[str, str]:
    rng = random.Random(rng_seed + 1)
    return {sku: rng.choice(CATEGORIES) for sku in SKUS}


def build_directory(seed: int = SEED) -> tuple[dict, list[str]]:
    """A directory fixture and the ids of accounts that may order.

    One company, 30 accounts, assignments."""
    rng = random.Random(seed)
    accounts: dict[str, dict] = {}
    ids = [f"acct-{i:02d}" for i in range(30)]
    role_weights = [
        ("manager", 4),
        ("approver", 6),
        ("finance", 2),
        ("buyer", 8),
        ("requisitioner", 8),
    ]
    roles_pool = [r for r, w in role_weights for _ in range(w)]
    for index, aid in enumerate(ids):
        if index < 2:
            membership = {"company": COMPANY, "role": "master", "master": True}
        else:
            membership = {
                "company": COMPANY,
                "role": rng.choice(roles_pool),
                "group": rng.choice(sorted(GROUPS)),
            }
        accounts[aid] = {
            "name": f"Account {index}",
            "email": f"{aid}@bench.test",
            "memberships": [membership],
        }
    # a few per-membership overrides, one inactive approver, one that may not approve
    approvers = [a for a in ids if accounts[a]["memberships"][0]["role"] in APPROVING_ROLES]
    for aid in rng.sample(approvers[2:], 3):
        accounts[aid]["memberships"][0]["settings"] = {
            "approval_limit": rng.choice([1000, 7500, 50000])
        }
    inactive = approvers[-1]
    accounts[inactive]["active"] = False
    no_approve = approvers[-2]
    accounts[no_approve]["memberships"][0].setdefault("settings", {})["may_approve"] = False
    assignments = []
    buyers_pool = [a for a in ids if a != inactive]
    for approver in rng.sample(approvers, 6):
        for account in rng.sample([b for b in buyers_pool if b != approver], 2):
            entry = {"approver": approver, "account": account, "company": COMPANY}
            if rng.random() < 0.4:
                entry["limit"] = rng.choice([2500, 10000, 30000])
            assignments.append(entry)
    data = {
        "companies": {
            COMPANY: {
                "name": "Bench Co",
                "groups": {g: {"name": spec["label"]} for g, spec in GROUPS.items()},
            }
        },
        "accounts": accounts,
        "assignments": assignments,
    }
    return data, [a for a in ids if a != inactive]


# -------------------------------------------------------------- rule sets


def _names(rng: random.Random, pool, single_p: float = 0.5):
    if rng.random() < single_p:
        return rng.choice(pool)
    return rng.sample(list(pool), 2)


def _leaf(rng: random.Random, key: str):
    if key == "total":
        form = rng.random()
        if form < 0.55:
            return {"gt": rng.choice(TOTAL_THRESHOLDS[3:])}
        if form < 0.75:
            return {"gte": rng.choice(TOTAL_THRESHOLDS[2:])}
        if form < 0.9:
            low, high = sorted(rng.sample(TOTAL_THRESHOLDS, 2))
            return {"gte": low, "lt": high}
        return {"lte": rng.choice(TOTAL_THRESHOLDS[:4])}
    if key == "order_type":
        return _names(rng, ORDER_TYPES, 0.7)
    if key == "buyer_role":
        return _names(rng, tuple(ROLES), 0.6)
    if key == "buyer_group":
        return _names(rng, tuple(GROUPS), 0.7)
    if key == "quantity":
        return {rng.choice(["gt", "gte"]): rng.choice(QTY_SUM_THRESHOLDS)}
    if key == "lines":
        form = rng.choices(range(6), [3, 1, 3, 1, 1, 1])[0]
        if form == 0:
            return {"sku": rng.sample(SKUS, rng.randint(2, 8))}
        if form == 1:
            return {"category": rng.choice(CATEGORIES)}
        if form == 2:
            return {
                "category": rng.choice(CATEGORIES),
                "quantity": {"gte": rng.choice(LINE_QTY_THRESHOLDS[1:])},
            }
        if form == 3:
            return {"quantity": {rng.choice(["gt", "gte"]): rng.choice(LINE_QTY_THRESHOLDS[2:])}}
        if form == 4:
            return {
                "sku": rng.sample(SKUS, rng.randint(5, 20)),
                "quantity": {"lt": rng.choice(LINE_QTY_THRESHOLDS)},
            }
        return {
            "category": _names(rng, CATEGORIES, 0.3),
            "quantity": {"gte": 2, "lte": rng.choice(LINE_QTY_THRESHOLDS)},
        }
    raise AssertionError(key)


LEAF_KEYS = ("total", "order_type", "buyer_role", "buyer_group", "quantity", "lines")


def gen_condition(rng: random.Random, depth: int = 0) -> dict:
    """A structured condition: 1-3 keys; all/any/not nest down to depth 2."""
    keys = ["total", "order_type", "buyer_role", "buyer_group", "quantity", "lines"]
    weights = [6, 3, 3, 4, 1, 4]
    if depth < 2:
        keys += ["all", "any", "not"]
        weights += [1, 2, 1]
    count = rng.choice([1, 2, 2, 3]) if depth == 0 else rng.choice([1, 1, 2])
    chosen: list[str] = []
    if depth == 0:
        # like real approval steps: gated by an amount, a group or a product condition
        chosen.append(rng.choices(["total", "buyer_group", "lines"], [6, 3, 2])[0])
    while len(chosen) < count:
        key = rng.choices(keys, weights)[0]
        if key not in chosen:
            chosen.append(key)
    cond: dict[str, Any] = {}
    for key in chosen:
        if key in ("all", "any"):
            cond[key] = [gen_condition(rng, depth + 1) for _ in range(rng.randint(2, 3))]
        elif key == "not":
            sub = gen_condition(rng, 2)  # a plain mapping of leaves
            cond[key] = sub
        else:
            cond[key] = _leaf(rng, key)
    return cond


def gen_selectors(rng: random.Random, approver_ids: list[str]) -> list[dict]:
    menu = [
        lambda: {"role": "manager", "relation": "same_group"},
        lambda: {"relation": "group_master"},
        lambda: {"role": ["manager", "finance"]},
        lambda: {"relation": "assigned"},
        lambda: {"role": "approver", "relation": "unassigned"},
        lambda: {"accounts": sorted(rng.sample(approver_ids, 2))},
        lambda: {"role": "finance", "relation": "company"},
        lambda: {"role": ["approver", "manager"], "relation": "same_group"},
    ]
    return [rng.choice(menu)() for _ in range(rng.choice([1, 1, 2, 2, 3]))]


def build_ruleset(n_steps: int, directory: dict, seed: int = SEED) -> tuple[str, dict]:
    rng = random.Random(seed * 1000 + n_steps)
    approver_ids = sorted(
        a
        for a, spec in directory["accounts"].items()
        if spec["memberships"][0]["role"] in APPROVING_ROLES
    )
    steps = []
    for i in range(n_steps):
        step: dict[str, Any] = {"name": f"s{i:04d}", "when": gen_condition(rng)}
        step["approvers"] = {"any_of": gen_selectors(rng, approver_ids)}
        if rng.random() < 0.2:
            step["required"] = 2
        if rng.random() < 0.25:
            step["scope"] = "own_group"
        if rng.random() < 0.1:
            step["self_approval"] = True
        steps.append(step)
    data = {
        "ruleset": f"bench-{n_steps}",
        "description": f"generated by bench/evaluate.py, seed {seed}",
        "currency": "USD",
        "roles": ROLES,
        "groups": GROUPS,
        "approval": {
            "scope": "universal",
            "self_approval": False,
            "expiry": {"after": "P7D"},
            "steps": steps,
        },
    }
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=200)
    return text, data


# ------------------------------------------------------------------ orders


def build_order_dicts(n: int, buyers: list[str], seed: int = SEED) -> list[dict]:
    """``n`` synthetic orders as plain mappings (1-30 lines each), from a seeded random."""
    rng = random.Random(seed + 7)
    categories = sku_category(seed)
    types = ["regular"] * 14 + ["bulk"] * 3 + ["subscription"] * 3
    orders = []
    for i in range(n):
        lines = []
        for _ in range(rng.randint(1, 30)):
            sku = rng.choice(SKUS)
            qty = rng.randint(1, 12) if rng.random() < 0.85 else rng.randint(13, 150)
            lines.append({"sku": sku, "category": categories[sku], "quantity": qty})
        total = Decimal(str(round(rng.lognormvariate(7.0, 1.6), 2))).quantize(Decimal("0.01"))
        orders.append(
            {
                "id": f"o{i:05d}",
                "buyer": rng.choice(buyers),
                "total": str(total),
                "type": rng.choice(types),
                "lines": lines,
            }
        )
    return orders


def build_orders(n: int, buyers: list[str], seed: int = SEED) -> list[Order]:
    """The orders of :func:`build_order_dicts`, parsed, so parsing is not timed."""
    return [Order.from_dict(order) for order in build_order_dicts(n, buyers, seed)]


# ------------------------------------------- shared approver selection (a)-(f)


@dataclass(frozen=True, slots=True)
class Cand:
    account: str
    role: str
    group: str | None
    master: bool
    limit: Decimal | None


@dataclass(frozen=True, slots=True)
class StepSpec:
    name: str
    selectors: tuple  # (roles frozenset|None, relation, accounts frozenset|None)
    self_approval: bool
    own_group: bool


class HandApprovers:
    """Approver selection written directly: the same rules as the engine's, no trace.

    The candidate pool (active accounts whose role may approve and whose
    settings allow it, with their effective approval limit) is resolved once
    per company and cached, as a hand-written service would; the buyer's
    membership and assignments are looked up in the directory per order.
    """

    def __init__(self, data: dict, directory):
        self.directory = directory
        roles = data["roles"]
        groups = data.get("groups") or {}
        approval = data["approval"]
        self.steps = []
        for spec in approval["steps"]:
            sels = []
            for sel in spec["approvers"]["any_of"]:
                role = sel.get("role")
                sels.append(
                    (
                        frozenset(role if isinstance(role, list) else [role]) if role else None,
                        sel.get("relation", "company"),
                        frozenset(sel["accounts"]) if sel.get("accounts") else None,
                    )
                )
            self.steps.append(
                StepSpec(
                    spec["name"],
                    tuple(sels),
                    spec.get("self_approval", approval.get("self_approval", False)),
                    spec.get("scope", approval.get("scope", "universal")) == "own_group",
                )
            )
        self._roles = roles
        self._groups = groups
        self._pools: dict[str, tuple[Cand, ...]] = {}

    def pool(self, company: str) -> tuple[Cand, ...]:
        pool = self._pools.get(company)
        if pool is None:
            out = []
            for m in self.directory.memberships_of_company(company):
                role = self._roles.get(m.role)
                if (
                    m.status != "active"
                    or role is None
                    or "approve_orders" not in role["permissions"]
                ):
                    continue
                account = self.directory.account(m.account_id)
                if account is None or not account.active:
                    continue
                layers = [
                    role.get("settings") or {},
                    (self._groups.get(m.group) or {}).get("settings") or {} if m.group else {},
                    m.settings or {},
                ]
                may_approve, limit = True, None
                for layer in layers:
                    may_approve = layer.get("may_approve", may_approve)
                    if "approval_limit" in layer:
                        limit = (
                            None
                            if layer["approval_limit"] is None
                            else Decimal(str(layer["approval_limit"]))
                        )
                if may_approve:
                    out.append(Cand(m.account_id, m.role, m.group, m.master, limit))
            pool = self._pools[company] = tuple(out)
        return pool

    def select(
        self, matched, buyer: str, membership, total: Decimal
    ) -> tuple[tuple[str, ...], ...]:
        if not matched:
            return ()
        company = membership.company_id
        group = membership.group if membership.status == "active" else None
        pool = self.pool(company)
        assigned = None
        has_assignments = None
        result = []
        for index in matched:
            step = self.steps[index]
            out = []
            for c in pool:
                if c.account == buyer and not step.self_approval:
                    continue
                if step.own_group and not c.master and (group is None or c.group != group):
                    continue
                ok = False
                for roles, relation, accounts in step.selectors:
                    if roles is not None and c.role not in roles:
                        continue
                    if accounts is not None and c.account not in accounts:
                        continue
                    if relation == "company":
                        ok = True
                    elif relation == "same_group":
                        ok = group is not None and c.group == group
                    elif relation == "group_master":
                        ok = c.master
                    else:
                        if assigned is None:
                            rows = self.directory.assignments_for(buyer, company)
                            assigned = {a.approver_id: a for a in rows if a.step is None}
                            has_assignments = bool(rows)
                        if relation == "assigned":
                            a = assigned.get(c.account)
                            ok = a is not None and (a.limit is None or total <= a.limit)
                        else:  # unassigned
                            ok = not has_assignments
                    if ok:
                        break
                if not ok:
                    continue
                if c.limit is not None and total > c.limit:
                    continue
                out.append(c.account)
            result.append(tuple(out))
        return tuple(result)


# ---------------------------------------------------------- translations


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _line_native(spec: dict) -> bool:
    """A lines leaf that a set/number fact can answer without looking at lines together."""
    if len(spec) != 1:
        return False
    key, value = next(iter(spec.items()))
    return key in ("sku", "category") or (key == "quantity" and len(value) == 1)


PY_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=="}


def to_python(cond: dict) -> str:
    """(a) a Python expression over o (Order), role, group, qty."""
    parts = []
    for key, value in cond.items():
        if key == "all":
            parts.append("(" + " and ".join(to_python(c) for c in value) + ")")
        elif key == "any":
            parts.append("(" + " or ".join(to_python(c) for c in value) + ")")
        elif key == "not":
            parts.append(f"(not {to_python(value)})")
        elif key in ("total", "quantity"):
            subject = "o.total" if key == "total" else "qty"
            parts.append(
                " and ".join(f"{subject} {PY_OPS[op]} {bound}" for op, bound in value.items())
            )
        elif key in ("order_type", "buyer_role", "buyer_group"):
            subject = {"order_type": "o.type", "buyer_role": "role", "buyer_group": "group"}[key]
            values = _as_list(value)
            parts.append(
                f"{subject} == {values[0]!r}"
                if len(values) == 1
                else f"{subject} in {set(values)!r}"
            )
        elif key == "lines":
            tests = []
            if "sku" in value:
                tests.append(f"l.sku in {set(_as_list(value['sku']))!r}")
            if "category" in value:
                tests.append(f"l.category in {set(_as_list(value['category']))!r}")
            for op, bound in (value.get("quantity") or {}).items():
                tests.append(f"l.quantity {PY_OPS[op]} {bound}")
            parts.append(f"any({' and '.join(tests)} for l in o.lines)")
        else:
            raise AssertionError(key)
    return "(" + " and ".join(parts) + ")"


RE_OPS = PY_OPS


def to_rule_engine(cond: dict) -> str:
    """(b) rule-engine text over a dict.

    Fields: total, type, role, group, quantity, lines[{sku, category, quantity}]."""
    parts = []
    for key, value in cond.items():
        if key == "all":
            parts.append("(" + " and ".join(to_rule_engine(c) for c in value) + ")")
        elif key == "any":
            parts.append("(" + " or ".join(to_rule_engine(c) for c in value) + ")")
        elif key == "not":
            parts.append(f"(not {to_rule_engine(value)})")
        elif key in ("total", "quantity"):
            parts.append(" and ".join(f"{key} {RE_OPS[op]} {bound}" for op, bound in value.items()))
        elif key in ("order_type", "buyer_role", "buyer_group"):
            subject = {"order_type": "type", "buyer_role": "role", "buyer_group": "group"}[key]
            parts.append(f"{subject} in {json.dumps(_as_list(value))}")
        elif key == "lines":
            tests = []
            if "sku" in value:
                tests.append(f"l['sku'] in {json.dumps(_as_list(value['sku']))}")
            if "category" in value:
                tests.append(f"l['category'] in {json.dumps(_as_list(value['category']))}")
            for op, bound in (value.get("quantity") or {}).items():
                tests.append(f"l['quantity'] {RE_OPS[op]} {bound}")
            parts.append(f"[l for l in lines if {' and '.join(tests)}]")
        else:
            raise AssertionError(key)
    return "(" + " and ".join(parts) + ")"


JL_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=="}


def to_jsonlogic(cond: dict) -> dict:
    """(c) JsonLogic over a dict.

    Fields: {total (cents), type, role, group, quantity, lines[{sku, category, quantity}]}."""
    parts = []
    for key, value in cond.items():
        if key == "all":
            parts.append({"and": [to_jsonlogic(c) for c in value]})
        elif key == "any":
            parts.append({"or": [to_jsonlogic(c) for c in value]})
        elif key == "not":
            parts.append({"!": [to_jsonlogic(value)]})
        elif key in ("total", "quantity"):
            scale = 100 if key == "total" else 1
            parts.extend({JL_OPS[op]: [{"var": key}, bound * scale]} for op, bound in value.items())
        elif key in ("order_type", "buyer_role", "buyer_group"):
            subject = {"order_type": "type", "buyer_role": "role", "buyer_group": "group"}[key]
            parts.append({"in": [{"var": subject}, _as_list(value)]})
        elif key == "lines":
            tests = []
            if "sku" in value:
                tests.append({"in": [{"var": "sku"}, _as_list(value["sku"])]})
            if "category" in value:
                tests.append({"in": [{"var": "category"}, _as_list(value["category"])]})
            for op, bound in (value.get("quantity") or {}).items():
                tests.append({JL_OPS[op]: [{"var": "quantity"}, bound]})
            parts.append(
                {"some": [{"var": "lines"}, tests[0] if len(tests) == 1 else {"and": tests}]}
            )
        else:
            raise AssertionError(key)
    return parts[0] if len(parts) == 1 else {"and": parts}


BR_OPS = {
    "gt": "greater_than",
    "gte": "greater_than_or_equal_to",
    "lt": "less_than",
    "lte": "less_than_or_equal_to",
    "eq": "equal_to",
}
BR_NEG = {"gt": "lte", "gte": "lt", "lt": "gte", "lte": "gt"}


class BusinessRulesTranslator:
    """(d) business-rules has all/any but no not: negation is pushed down to the leaves (De Morgan).

    Variables: total, quantity (numeric); order_type, buyer_role, buyer_group,
    line_skus, line_categories (select_multiple); max_line_qty, min_line_qty
    (numeric); and one boolean variable ``line_leaf_N`` per lines-leaf that
    needs several attributes of the same line (business-rules has no
    quantifier over records: the variable's method scans the lines).
    """

    def __init__(self):
        self.line_leaves: list[dict] = []

    def _line_var(self, spec: dict) -> str:
        if spec not in self.line_leaves:
            self.line_leaves.append(spec)
        return f"line_leaf_{self.line_leaves.index(spec)}"

    def translate(self, cond: dict, neg: bool = False) -> dict:
        parts = []
        for key, value in cond.items():
            if key in ("all", "any"):
                subs = [self.translate(c, neg) for c in value]
                combinator = key if not neg else ("any" if key == "all" else "all")
                parts.append({combinator: subs})
            elif key == "not":
                parts.append(self.translate(value, not neg))
            elif key in ("total", "quantity"):
                leaves = [
                    {"name": key, "operator": BR_OPS[BR_NEG[op] if neg else op], "value": bound}
                    for op, bound in value.items()
                ]
                parts.append(leaves[0] if len(leaves) == 1 else {("any" if neg else "all"): leaves})
            elif key in ("order_type", "buyer_role", "buyer_group"):
                op = "shares_no_elements_with" if neg else "shares_at_least_one_element_with"
                parts.append({"name": key, "operator": op, "value": _as_list(value)})
            elif key == "lines":
                if _line_native(value):
                    k, v = next(iter(value.items()))
                    if k in ("sku", "category"):
                        op = (
                            "shares_no_elements_with" if neg else "shares_at_least_one_element_with"
                        )
                        parts.append(
                            {
                                "name": "line_skus" if k == "sku" else "line_categories",
                                "operator": op,
                                "value": _as_list(v),
                            }
                        )
                    else:
                        ((op, bound),) = v.items()
                        # any line > q  <=>  max > q ;  any line < q  <=>  min < q
                        name = "max_line_qty" if op in ("gt", "gte") else "min_line_qty"
                        parts.append(
                            {
                                "name": name,
                                "operator": BR_OPS[BR_NEG[op] if neg else op],
                                "value": bound,
                            }
                        )
                else:
                    parts.append(
                        {
                            "name": self._line_var(value),
                            "operator": "is_false" if neg else "is_true",
                            "value": None,
                        }
                    )
            else:
                raise AssertionError(key)
        if len(parts) == 1:
            return parts[0]
        return {("any" if neg else "all"): parts}


CEDAR_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=="}


class CedarTranslator:
    """(e) one Cedar permit policy per step.

    Over principal (Account entity: role, group) and a context record.
    Context: total (cents, Long), type, quantity (Long), skus and cats (Sets),
    maxq/minq (Long) and one boolean ``line_N`` per lines-leaf that needs
    several attributes of the same line: Cedar has no quantifiers, so those
    leaves are computed in Python per order, inside the timed call.
    """

    def __init__(self):
        self.line_leaves: list[dict] = []

    def translate(self, cond: dict) -> str:
        parts = []
        for key, value in cond.items():
            if key == "all":
                parts.append("(" + " && ".join(self.translate(c) for c in value) + ")")
            elif key == "any":
                parts.append("(" + " || ".join(self.translate(c) for c in value) + ")")
            elif key == "not":
                parts.append(f"!{self.translate(value)}")
            elif key in ("total", "quantity"):
                scale = 100 if key == "total" else 1
                parts.extend(
                    f"context.{key} {CEDAR_OPS[op]} {bound * scale}" for op, bound in value.items()
                )
            elif key in ("order_type", "buyer_role", "buyer_group"):
                subject = {
                    "order_type": "context.type",
                    "buyer_role": "principal.role",
                    "buyer_group": "principal.group",
                }[key]
                parts.append(f"{json.dumps(_as_list(value))}.contains({subject})")
            elif key == "lines":
                if _line_native(value):
                    k, v = next(iter(value.items()))
                    if k in ("sku", "category"):
                        parts.append(
                            f"context.{'skus' if k == 'sku' else 'cats'}.containsAny("
                            f"{json.dumps(_as_list(v))})"
                        )
                    else:
                        ((op, bound),) = v.items()
                        subject = "context.maxq" if op in ("gt", "gte") else "context.minq"
                        parts.append(f"{subject} {CEDAR_OPS[op]} {bound}")
                else:
                    if value not in self.line_leaves:
                        self.line_leaves.append(value)
                    parts.append(f"context.line_{self.line_leaves.index(value)}")
            else:
                raise AssertionError(key)
        return "(" + " && ".join(parts) + ")"


REGO_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "=="}


def _rego_names(subject: str, value) -> str:
    values = _as_list(value)
    if len(values) == 1:
        return f"{subject} == {json.dumps(values[0])}"
    return f"{subject} in {{{', '.join(json.dumps(v) for v in values)}}}"


class RegoTranslator:
    """(f) one Rego policy: a partial set rule ``steps contains N if {...}`` per step.

    Input: total (cents), type, quantity (sum of lines), lines[{sku, category,
    quantity}], buyer. ``role`` and ``group`` are rules over ``data.accounts``
    (the directory's accounts, loaded once as the evaluator's data), looked up
    by ``input.buyer`` inside Rego. A step's keys are the lines of its rule
    body (Rego ANDs them); ``all`` is inlined into the body; ``any`` becomes a
    helper rule with one body per alternative (Rego's OR) and ``not`` a helper
    rule used as ``not cN`` (``not`` takes one expression). A lines condition
    is a helper rule ``lineN if { some l in input.lines; ... }``: Rego has an
    existential quantifier, so every condition the generator writes is
    expressed in Rego itself, nothing is computed in Python per call.
    """

    def __init__(self):
        self.helpers: list[str] = []
        self._count = 0
        self._lines: dict[str, str] = {}

    def _helper(self, bodies: list[list[str]]) -> str:
        name = f"c{self._count}"
        self._count += 1
        for body in bodies:
            self.helpers.append(f"{name} if {{\n    " + "\n    ".join(body) + "\n}")
        return name

    def _line_rule(self, spec: dict) -> str:
        key = json.dumps(spec, sort_keys=True)
        name = self._lines.get(key)
        if name is None:
            name = self._lines[key] = f"line{len(self._lines)}"
            tests = ["some l in input.lines"]
            if "sku" in spec:
                tests.append(_rego_names("l.sku", spec["sku"]))
            if "category" in spec:
                tests.append(_rego_names("l.category", spec["category"]))
            for op, bound in (spec.get("quantity") or {}).items():
                tests.append(f"l.quantity {REGO_OPS[op]} {bound}")
            self.helpers.append(f"{name} if {{\n    " + "\n    ".join(tests) + "\n}")
        return name

    def body(self, cond: dict) -> list[str]:
        out: list[str] = []
        for key, value in cond.items():
            if key == "all":
                for sub in value:
                    out.extend(self.body(sub))
            elif key == "any":
                out.append(self._helper([self.body(sub) for sub in value]))
            elif key == "not":
                out.append("not " + self._helper([self.body(value)]))
            elif key in ("total", "quantity"):
                scale = 100 if key == "total" else 1
                out.extend(
                    f"input.{key} {REGO_OPS[op]} {bound * scale}" for op, bound in value.items()
                )
            elif key in ("order_type", "buyer_role", "buyer_group"):
                subject = {"order_type": "input.type", "buyer_role": "role", "buyer_group": "group"}
                out.append(_rego_names(subject[key], value))
            elif key == "lines":
                out.append(self._line_rule(value))
            else:
                raise AssertionError(key)
        return out

    def policy(self, steps: list[dict]) -> str:
        rules = []
        for i, step in enumerate(steps):
            body = "\n    ".join(self.body(step["when"]))
            rules.append(f"# {step['name']}\nsteps contains {i} if {{\n    {body}\n}}")
        head = [
            "package bench",
            "",
            "import rego.v1",
            "",
            "# the buyer's role and group, from the directory loaded once as data",
            "role := data.accounts[input.buyer].role",
            "",
            "group := data.accounts[input.buyer].group",
        ]
        return "\n".join(head) + "\n\n" + "\n\n".join(rules + self.helpers) + "\n"


def line_leaf_function(spec: dict) -> Callable:
    """A Python predicate over a tuple of Line for one lines-leaf (used by (d) and (e))."""
    skus = frozenset(_as_list(spec["sku"])) if "sku" in spec else None
    cats = frozenset(_as_list(spec["category"])) if "category" in spec else None
    import operator

    ops = {
        "gt": operator.gt,
        "gte": operator.ge,
        "lt": operator.lt,
        "lte": operator.le,
        "eq": operator.eq,
    }
    checks = [(ops[op], bound) for op, bound in (spec.get("quantity") or {}).items()]

    def test(lines) -> bool:
        for line in lines:
            if skus is not None and line.sku not in skus:
                continue
            if cats is not None and line.category not in cats:
                continue
            if all(fn(line.quantity, b) for fn, b in checks):
                return True
        return False

    return test


# ----------------------------------------------------------------- engines


@dataclass
class Engine:
    key: str
    name: str
    what: str
    run: Callable[[Order], Any]  # the timed call
    result: Callable[
        [Order, Any], tuple
    ]  # (matched step indices, approvers per matched step), untimed
    #: condition matching alone (the second table): order -> matched step indices, timed
    match: Callable[[Order], tuple] | None = None
    match_what: str = ""


def engine_ours(policy, directory, index_of: dict[str, int], with_dict: bool) -> Engine:
    def result(order, decision):
        matched = tuple(
            index_of[t.rule[len("approval.steps.") :]]
            for t in decision.trace
            if t.result == "matched" and t.rule.startswith("approval.steps.")
        )
        assert decision.outcome in ("approved", "pending"), (
            order.id,
            decision.outcome,
            decision.reason_codes(),
        )
        return matched, tuple(tuple(a.account for a in s.approvers) for s in decision.steps)

    if with_dict:

        def run(order):
            d = policy.evaluate(order, directory, now=NOW)
            d.as_dict()
            return d

        what = (
            "policy.evaluate(order, directory, now=...) then decision.as_dict() (trace included: "
            "renders every step's explanation)"
        )
        return Engine("ours+dict", "ours: evaluate + as_dict()", what, run, result)

    def run(order):
        return policy.evaluate(order, directory, now=NOW)

    what = (
        "policy.evaluate(order, directory, now=...): the full Decision (blocking checks, limits, "
        "steps, approvers, payer, notifications) with its trace"
    )
    return Engine(
        "ours",
        "ours: evaluate (trace on)",
        what,
        run,
        result,
        match=ours_matcher(policy, directory, index_of),
        match_what=(
            "the compiled step predicates alone (CompiledStep.predicate, the generated code "
            "evaluate runs): the buyer's membership per order, a new conditions.Facts per order "
            "(derived facts such as the quantity sum computed lazily, as in evaluate), one call "
            "per step; no blocking checks, limits, trace or Decision"
        ),
    )


_NO_EXCEEDED: frozenset = frozenset()


def ours_matcher(policy, directory, index_of: dict[str, int]) -> Callable[[Order], tuple]:
    """Only our compiled step conditions: what ``Policy.evaluate`` runs per step, minus the rest.

    ``evaluate`` builds one ``conditions.Facts`` per order and calls each step's generated
    predicate on it (``_Evaluation._steps``); this does the same, with the buyer's role and
    group from the directory, and nothing else. The generated rule sets have no ``exceeds``
    condition, so the set of exceeded limits is empty, as evaluate's is for these orders.
    """
    from approvalrules.engine.conditions import Facts

    predicates = tuple((index_of[s.name], s.predicate) for s in policy.steps)
    currency = policy.currency
    empty = _NO_EXCEEDED

    def match(order):
        m = directory.membership(order.buyer)
        facts = Facts(
            order.total,
            order.currency or currency,
            order.type,
            order.lines,
            order.buyer,
            m.role,
            m.group if m.active else None,
            m.attributes,
            empty,
        )
        return tuple(i for i, p in predicates if p(facts))

    return match


def _passthrough(order, value):
    return value


def _uses_sum_quantity(cond: dict) -> bool:
    for key, value in cond.items():
        if key == "quantity":
            return True
        if key in ("all", "any") and any(_uses_sum_quantity(c) for c in value):
            return True
        if key == "not" and _uses_sum_quantity(value):
            return True
    return False


def engine_hand(data: dict, directory, approvers: HandApprovers) -> Engine:
    steps = data["approval"]["steps"]
    uses_qty = any(_uses_sum_quantity(s["when"]) for s in steps)
    source = ["from decimal import Decimal", ""]
    for i, step in enumerate(steps):
        source.append(f"def step_{i}(o, role, group, qty):  # {step['name']}")
        source.append(f"    return {to_python(step['when'])}")
        source.append("")
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(source), "<hand-written steps>", "exec"), namespace)
    funcs = tuple(namespace[f"step_{i}"] for i in range(len(steps)))
    pairs = tuple(enumerate(funcs))
    select = approvers.select

    def run(order):
        m = directory.membership(order.buyer)
        group = m.group if m.status == "active" else None
        qty = sum(line.quantity for line in order.lines) if uses_qty else None
        matched = tuple(i for i, f in pairs if f(order, m.role, group, qty))
        return matched, select(matched, order.buyer, m, order.total)

    def match(order):
        m = directory.membership(order.buyer)
        group = m.group if m.status == "active" else None
        qty = sum(line.quantity for line in order.lines) if uses_qty else None
        return tuple(i for i, f in pairs if f(order, m.role, group, qty))

    engine = Engine(
        "a",
        "(a) hand-written Python",
        "one Python function per step (generated source, as a person would write it: comparisons, "
        "set membership, any() over lines) + the shared approver selection; buyer membership "
        "looked up per order; no trace, no Decision",
        run,
        _passthrough,
        match=match,
        match_what="the buyer's membership, the quantity sum, one call per step function",
    )
    engine.source = "\n".join(source)  # type: ignore[attr-defined]
    return engine


def engine_rule_engine(
    data: dict, directory, approvers: HandApprovers, orders: list[Order]
) -> tuple[Engine, Callable]:
    import rule_engine

    context = rule_engine.Context(default_value=None)
    rules = tuple(
        (i, rule_engine.Rule(to_rule_engine(s["when"]), context=context))
        for i, s in enumerate(data["approval"]["steps"])
    )
    select = approvers.select

    def prepare(order):  # native input, built outside the timed loop (like Order for ours)
        return {
            "total": order.total,
            "type": order.type,
            "quantity": sum(line.quantity for line in order.lines),
            "lines": [
                {"sku": line.sku, "category": line.category, "quantity": line.quantity}
                for line in order.lines
            ],
        }

    prepared = {id(o): prepare(o) for o in orders}

    def run(order):
        m = directory.membership(order.buyer)
        thing = dict(prepared[id(order)])
        thing["role"] = m.role
        thing["group"] = m.group if m.status == "active" else None
        matched = tuple(i for i, r in rules if r.matches(thing))
        return matched, select(matched, order.buyer, m, order.total)

    def match(order):
        m = directory.membership(order.buyer)
        thing = dict(prepared[id(order)])
        thing["role"] = m.role
        thing["group"] = m.group if m.status == "active" else None
        return tuple(i for i, r in rules if r.matches(thing))

    engine = Engine(
        "b",
        "(b) rule-engine",
        "one rule_engine.Rule per step condition, parsed once; rule.matches(dict) per step (lines "
        "as a list of dicts, line conditions as comprehensions with item access l['sku'] — "
        "attribute access on dicts is ~2x slower in rule-engine) + the shared approver selection; "
        "order dict pre-built, buyer role/group added per order",
        run,
        _passthrough,
        match=match,
        match_what="the buyer's membership, a copy of the pre-built dict with role and group, "
        "rule.matches per step",
    )
    return engine, prepare


def engine_jsonlogic(
    data: dict, directory, approvers: HandApprovers, orders: list[Order]
) -> Engine:
    from json_logic import jsonLogic

    logics = tuple((i, to_jsonlogic(s["when"])) for i, s in enumerate(data["approval"]["steps"]))
    select = approvers.select

    def prepare(order):
        return {
            "total": int(order.total * 100),
            "type": order.type,
            "quantity": int(sum(line.quantity for line in order.lines)),
            "lines": [
                {"sku": line.sku, "category": line.category, "quantity": int(line.quantity)}
                for line in order.lines
            ],
        }

    prepared = {id(o): prepare(o) for o in orders}

    def run(order):
        m = directory.membership(order.buyer)
        thing = dict(prepared[id(order)])
        thing["role"] = m.role
        thing["group"] = m.group if m.status == "active" else None
        matched = tuple(i for i, logic in logics if jsonLogic(logic, thing))
        return matched, select(matched, order.buyer, m, order.total)

    def match(order):
        m = directory.membership(order.buyer)
        thing = dict(prepared[id(order)])
        thing["role"] = m.role
        thing["group"] = m.group if m.status == "active" else None
        return tuple(i for i, logic in logics if jsonLogic(logic, thing))

    return Engine(
        "c",
        "(c) JsonLogic (panzi)",
        "one JsonLogic expression per step (dicts built once; money in integer cents; line "
        "conditions with `some`); json_logic.jsonLogic(logic, data) per step + the shared approver "
        "selection; data dict pre-built, buyer role/group added per order",
        run,
        _passthrough,
        match=match,
        match_what="the buyer's membership, a copy of the pre-built dict with role and group, "
        "jsonLogic per step",
    )


def engine_business_rules(data: dict, directory, approvers: HandApprovers) -> Engine:
    from business_rules import run_all
    from business_rules.actions import BaseActions, rule_action
    from business_rules.fields import FIELD_NUMERIC
    from business_rules.variables import (
        BaseVariables,
        boolean_rule_variable,
        numeric_rule_variable,
        select_multiple_rule_variable,
    )

    tr = BusinessRulesTranslator()
    rules = []
    for i, s in enumerate(data["approval"]["steps"]):
        rules.append(
            {
                "conditions": tr.translate(s["when"]),
                "actions": [{"name": "match", "params": {"step": i}}],
            }
        )

    class OrderVariables(BaseVariables):
        def __init__(self, order, role, group):
            self.order, self.role, self.group = order, role, group

        @numeric_rule_variable
        def total(self):
            return self.order.total

        @numeric_rule_variable
        def quantity(self):
            return sum(line.quantity for line in self.order.lines)

        @select_multiple_rule_variable()
        def order_type(self):
            return [self.order.type]

        @select_multiple_rule_variable()
        def buyer_role(self):
            return [self.role]

        @select_multiple_rule_variable()
        def buyer_group(self):
            return [self.group] if self.group else []

        @select_multiple_rule_variable()
        def line_skus(self):
            return [line.sku for line in self.order.lines]

        @select_multiple_rule_variable()
        def line_categories(self):
            return [line.category for line in self.order.lines if line.category]

        @numeric_rule_variable
        def max_line_qty(self):
            return max(line.quantity for line in self.order.lines)

        @numeric_rule_variable
        def min_line_qty(self):
            return min(line.quantity for line in self.order.lines)

    for n, spec in enumerate(tr.line_leaves):
        test = line_leaf_function(spec)

        def method(self, test=test):
            return test(self.order.lines)

        method.__name__ = f"line_leaf_{n}"
        setattr(OrderVariables, method.__name__, boolean_rule_variable(method))

    class Matches(BaseActions):
        def __init__(self):
            self.matched = []

        @rule_action(params={"step": FIELD_NUMERIC})
        def match(self, step):
            self.matched.append(step)

    select = approvers.select

    def run(order):
        m = directory.membership(order.buyer)
        group = m.group if m.status == "active" else None
        actions = Matches()
        run_all(rules, OrderVariables(order, m.role, group), actions, stop_on_first_trigger=False)
        matched = tuple(actions.matched)
        return matched, select(matched, order.buyer, m, order.total)

    def match(order):
        m = directory.membership(order.buyer)
        group = m.group if m.status == "active" else None
        actions = Matches()
        run_all(rules, OrderVariables(order, m.role, group), actions, stop_on_first_trigger=False)
        return tuple(actions.matched)

    return Engine(
        "d",
        "(d) business-rules",
        f"run_all(rules, variables, actions) per order: one rule per step, action `match` records "
        f"it; `not` pushed down to leaves (no `not` in business-rules); {len(tr.line_leaves)} "
        f"multi-attribute line conditions are boolean variables whose methods scan the lines (no "
        f"quantifier over records) + the shared approver selection",
        run,
        _passthrough,
        match=match,
        match_what="the buyer's membership, run_all over every rule (same variables and actions)",
    )


def engine_cedar(
    data: dict, directory_data: dict, directory, approvers: HandApprovers, orders: list[Order]
) -> Engine:
    import cedarpy

    tr = CedarTranslator()
    texts = [
        f'@id("{s["name"]}")\npermit(principal, action, resource) when {{ '
        f"{tr.translate(s['when'])} }};"
        for s in data["approval"]["steps"]
    ]
    policies = cedarpy.PolicySet.from_str("\n".join(texts))
    entities_json = []
    for aid, spec in directory_data["accounts"].items():
        m = spec["memberships"][0]
        entities_json.append(
            {
                "uid": {"type": "Account", "id": aid},
                "attrs": {"role": m["role"], "group": m.get("group") or ""},
                "parents": [],
            }
        )
    entities = cedarpy.Entities.from_json_str(json.dumps(entities_json))
    leaf_tests = tuple(
        (f"line_{n}", line_leaf_function(spec)) for n, spec in enumerate(tr.line_leaves)
    )
    select = approvers.select
    is_authorized = cedarpy.is_authorized

    def prepare(order):
        qs = [int(line.quantity) for line in order.lines]
        return {
            "total": int(order.total * 100),
            "type": order.type,
            "quantity": sum(qs),
            "skus": sorted({line.sku for line in order.lines}),
            "cats": sorted({line.category for line in order.lines if line.category}),
            "maxq": max(qs),
            "minq": min(qs),
        }

    prepared = {id(o): prepare(o) for o in orders}

    def run(order):
        context = dict(prepared[id(order)])
        lines = order.lines
        for name, test in leaf_tests:
            context[name] = test(lines)
        request = {
            "principal": f'Account::"{order.buyer}"',
            "action": 'Action::"submit"',
            "resource": f'Order::"{order.id}"',
            "context": context,
        }
        response = is_authorized(request, policies, entities)
        matched = tuple(
            sorted(int(r[6:]) for r in response.diagnostics.reasons)
        )  # "policyN", N = step index
        m = directory.membership(order.buyer)
        return matched, select(matched, order.buyer, m, order.total)

    def match(order):
        context = dict(prepared[id(order)])
        lines = order.lines
        for name, test in leaf_tests:
            context[name] = test(lines)
        request = {
            "principal": f'Account::"{order.buyer}"',
            "action": 'Action::"submit"',
            "resource": f'Order::"{order.id}"',
            "context": context,
        }
        response = is_authorized(request, policies, entities)
        return tuple(sorted(int(r[6:]) for r in response.diagnostics.reasons))

    engine = Engine(
        "e",
        "(e) Cedar (cedarpy)",
        f"one permit policy per step in a PolicySet parsed once, Account entities (role, group) "
        f"parsed once; one is_authorized(request, policy_set, entities) per order, the satisfied "
        f"policies (diagnostics.reasons) are the matched steps; context pre-built per order (total "
        f"in cents, type, sets of SKUs/categories, max/min line quantity) plus "
        f"{len(tr.line_leaves)} multi-attribute line conditions computed in Python per call (Cedar "
        f"has no quantifiers) + the shared approver selection",
        run,
        _passthrough,
        match=match,
        match_what="the context (with the Python line conditions) and one is_authorized per "
        "order; role and group come from the entities, so no membership look-up",
    )
    engine.source = "\n".join(texts)  # type: ignore[attr-defined]
    return engine


def rego_policy(data: dict) -> str:
    """The Rego text of a generated rule set's step conditions (see RegoTranslator)."""
    return RegoTranslator().policy(data["approval"]["steps"])


def engine_rego(
    data: dict, directory_data: dict, directory, approvers: HandApprovers, orders: list[Order]
) -> Engine:
    import tempfile

    import opa_eval

    text = rego_policy(data)
    accounts = {}
    for aid in directory_data["accounts"]:
        m = directory.membership(aid)
        accounts[aid] = {"role": m.role, "group": m.group if m.active else None}
    with tempfile.TemporaryDirectory() as tmp:  # OpaEval reads the policy from a file, once
        path = Path(tmp) / f"bench-{len(data['approval']['steps'])}.rego"
        path.write_text(text)
        policy = opa_eval.OpaEval(
            str(path), data_json=json.dumps({"accounts": accounts}), query="data.bench.steps"
        )
    evaluate = policy.evaluate_parsed
    select = approvers.select

    def prepare(order):  # the input JSON text, built outside the timed loop
        return json.dumps(
            {
                "buyer": order.buyer,
                "total": int(order.total * 100),
                "type": order.type,
                "quantity": int(sum(line.quantity for line in order.lines)),
                "lines": [
                    {"sku": line.sku, "category": line.category, "quantity": int(line.quantity)}
                    for line in order.lines
                ],
            },
            separators=(",", ":"),
        )

    prepared = {id(o): prepare(o) for o in orders}

    def run(order):
        matched = tuple(sorted(evaluate(prepared[id(order)])))  # the set, as a JSON array
        m = directory.membership(order.buyer)
        return matched, select(matched, order.buyer, m, order.total)

    def match(order):
        return tuple(sorted(evaluate(prepared[id(order)])))

    engine = Engine(
        "f",
        "(f) Rego (opa-eval/regorus)",
        "one Rego policy (a partial set rule `steps contains N` per step; any/not as helper "
        "rules, line conditions as `some l in input.lines` rules) compiled once by "
        "opa_eval.OpaEval with the accounts' role and group as data; one "
        "evaluate_parsed(input_json) per order returns the set of matched steps; the input JSON "
        "text (total in cents, type, quantity, lines) pre-built per order, role and group looked "
        "up in data by Rego; every generated condition is expressed in Rego itself (nothing "
        "computed in Python per call, unlike (d) and (e)); + the shared approver selection",
        run,
        _passthrough,
        match=match,
        match_what="one evaluate_parsed(input_json) per order, role and group from data inside "
        "Rego, so no membership look-up",
    )
    engine.source = text  # type: ignore[attr-defined]
    return engine


# ------------------------------------------------------------- measuring


@dataclass
class Measure:
    rate: float  # decisions/s in the bulk loop
    median_us: float
    p99_us: float
    mean_us: float
    results: list
    bulk_orders: int
    #: CPU time of this process per call in the bulk loop (time.process_time_ns): unlike the
    #: wall clock, it does not count the time the process waited for a core on a shared machine
    cpu_us: float = 0.0


BULK_BUDGET_NS = 15e9  # the bulk loop of a very slow peer runs over a prefix of the orders


def measure(engine: Engine, orders: list[Order]) -> Measure:
    run, result = engine.run, engine.result
    for order in orders[: min(200, len(orders))]:  # warm-up
        run(order)
    perf = time.perf_counter_ns
    gc.collect()
    latencies = []
    results = []
    for order in orders:
        t0 = perf()
        out = run(order)
        t1 = perf()
        latencies.append(t1 - t0)
        results.append(result(order, out))  # untimed; the Decision is dropped here
    out = None
    spent = sum(latencies)
    bulk = (
        orders
        if spent <= BULK_BUDGET_NS
        else orders[: max(1000, int(len(orders) * BULK_BUDGET_NS / spent))]
    )
    gc.collect()
    cpu = time.process_time_ns
    c0 = cpu()
    t0 = perf()
    for order in bulk:
        run(order)
    elapsed = perf() - t0
    cpu_spent = cpu() - c0
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Measure(
        len(bulk) / (elapsed / 1e9),
        statistics.median(latencies) / 1000,
        p99 / 1000,
        elapsed / len(bulk) / 1000,
        results,
        len(bulk),
        cpu_spent / len(bulk) / 1000,
    )


def time_compile(n_steps: int, directory_data: dict, runs: int = 5) -> dict:
    text, _ = build_ruleset(n_steps, directory_data)
    totals, checks, compiles = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        checked = check_ruleset(text, f"bench-{n_steps}.yaml")
        t1 = time.perf_counter_ns()
        compile_policy(checked)
        t2 = time.perf_counter_ns()
        checks.append((t1 - t0) / 1e6)
        compiles.append((t2 - t1) / 1e6)
        totals.append((t2 - t0) / 1e6)
    return {
        "steps": n_steps,
        "bytes": len(text.encode()),
        "median_ms": statistics.median(totals),
        "check_ms": statistics.median(checks),
        "compile_ms": statistics.median(compiles),
        "runs": runs,
    }


def missing_peers() -> list[str]:
    missing = []
    for module, package in (
        ("rule_engine", "rule-engine"),
        ("json_logic", "panzi-json-logic"),
        ("business_rules", "business-rules"),
        ("cedarpy", "cedarpy"),
        ("opa_eval", "opa-eval"),
    ):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if not missing:
        import json_logic

        if not hasattr(json_logic, "jsonLogic"):  # json-logic-qubit installed over panzi's
            missing.append("panzi-json-logic (the json_logic module present is not panzi's)")
    return missing


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def run_set(
    n_steps: int, directory_data: dict, directory, orders: list[Order], only: set[str] | None
) -> dict:
    text, data = build_ruleset(n_steps, directory_data)
    policy = compile_ruleset(text, f"bench-{n_steps}.yaml")
    index_of = {s["name"]: i for i, s in enumerate(data["approval"]["steps"])}
    approvers = HandApprovers(data, directory)
    engines = [
        engine_ours(policy, directory, index_of, False),
        engine_ours(policy, directory, index_of, True),
        engine_hand(data, directory, approvers),
    ]
    engines.append(engine_rule_engine(data, directory, approvers, orders)[0])
    engines.append(engine_jsonlogic(data, directory, approvers, orders))
    engines.append(engine_business_rules(data, directory, approvers))
    engines.append(engine_cedar(data, directory_data, directory, approvers, orders))
    engines.append(engine_rego(data, directory_data, directory, approvers, orders))
    if only:
        engines = [e for e in engines if e.key in only or e.key.startswith("ours")]
    measures: dict[str, Measure] = {}
    for engine in engines:
        print(f"  [{n_steps} steps] {engine.name} ...", end="", flush=True)
        measures[engine.key] = measure(engine, orders)
        x = measures[engine.key]
        note = (
            f" (bulk loop over the first {x.bulk_orders:,} orders)"
            if x.bulk_orders < len(orders)
            else ""
        )
        print(f" {fmt_rate(x.rate)}/s{note}", flush=True)
    ours = measures["ours"].results
    checked = {}
    for engine in engines:
        if engine.key == "ours":
            continue
        theirs = measures[engine.key].results
        assert len(theirs) == len(ours)
        for order, a, b in zip(orders, ours, theirs, strict=True):
            assert a == b, (
                f"{engine.name} disagrees with ours on order {order.id}: ours {a}, theirs {b}"
            )
        checked[engine.key] = len(theirs)
    # the second table: condition matching alone (which steps match), same orders, same timing
    matchers = [
        Engine(
            e.key,
            "ours: step predicates" if e.key == "ours" else e.name,
            e.match_what,
            e.match,
            _passthrough,
        )
        for e in engines
        if e.match
    ]
    match_measures: dict[str, Measure] = {}
    match_checked = {}
    for engine in matchers:
        print(f"  [{n_steps} steps, matching alone] {engine.name} ...", end="", flush=True)
        x = match_measures[engine.key] = measure(engine, orders)
        print(f" {fmt_rate(x.rate)}/s", flush=True)
        for order, a, b in zip(orders, ours, x.results, strict=True):
            assert a[0] == b, (
                f"{engine.name}, matching alone, disagrees with ours on order {order.id}: "
                f"ours {a[0]}, theirs {b}"
            )
        match_checked[engine.key] = len(x.results)
    matched_counts = [len(r[0]) for r in ours]
    return {
        "steps": n_steps,
        "engines": engines,
        "measures": measures,
        "checked": checked,
        "matchers": matchers,
        "match_measures": match_measures,
        "match_checked": match_checked,
        "mean_matched": statistics.mean(matched_counts),
        "pending_share": sum(1 for c in matched_counts if c) / len(matched_counts),
        "policy": policy,
    }


CPU_NOTE = (
    "CPU µs and CPU vs ours: the bulk loop's CPU time (process_time_ns) per call, which does not "
    "count waiting for a core; on a shared machine compare these."
)


def table_header(rate_label: str) -> str:
    return (
        f"{'engine':<30} {rate_label:>12} {'median µs':>10} {'p99 µs':>10} {'time vs ours':>13}"
        f" {'CPU µs':>8} {'CPU vs ours':>12}"
    )


def table_row(name: str, x: Measure, ours: Measure) -> str:
    ratio = ours.rate / x.rate  # >1: slower than ours
    cpu_ratio = x.cpu_us / ours.cpu_us
    star = "*" if x.bulk_orders < len(x.results) else ""
    return (
        f"{name:<30} {fmt_rate(x.rate) + star:>12} {x.median_us:>10.1f} {x.p99_us:>10.1f}"
        f" {ratio:>12.2f}x {x.cpu_us:>8.1f} {cpu_ratio:>11.2f}x"
    )


def print_table(block: dict) -> None:
    m = block["measures"]
    ours = m["ours"]
    print()
    print(
        f"== {block['steps']}-step rule set: {len(ours.results):,} orders; on average "
        f"{block['mean_matched']:.1f} steps match, {block['pending_share']:.0%} of orders need "
        f"approval"
    )
    header = table_header("decisions/s")
    print(header)
    print("-" * len(header))
    for engine in block["engines"]:
        print(table_row(engine.name, m[engine.key], ours))
    print(
        "decisions/s and time vs ours: bulk loop, no per-call timer; median/p99: every call timed "
        "with perf_counter_ns."
    )
    print("time vs ours = that engine's time per decision / ours (evaluate, trace on).")
    print(CPU_NOTE)
    if any(m[e.key].bulk_orders < len(ours.results) for e in block["engines"]):
        print(
            f"* bulk loop over a prefix of the orders (~{BULK_BUDGET_NS / 1e9:.0f} s budget); "
            f"every order was still timed per call and cross-checked."
        )
    print(
        "cross-checked against ours, every order, matched steps and selected approvers equal: "
        + ", ".join(f"{k}: {v:,}" for k, v in block["checked"].items())
    )


def print_match_table(block: dict) -> None:
    m = block["match_measures"]
    ours = m["ours"]
    print()
    print(
        f"== {block['steps']}-step rule set, condition matching alone: which steps match for "
        f"{len(ours.results):,} orders (no approver selection, no trace, no Decision)"
    )
    header = table_header("matches/s")
    print(header)
    print("-" * len(header))
    for engine in block["matchers"]:
        print(table_row(engine.name, m[engine.key], ours))
    print("time vs ours = that engine's time per order / ours (the compiled step predicates).")
    print(CPU_NOTE)
    if any(x.bulk_orders < len(x.results) for x in m.values()):
        print(f"* bulk loop over a prefix of the orders (~{BULK_BUDGET_NS / 1e9:.0f} s budget).")
    print(
        "cross-checked against ours (evaluate's matched steps), every order, matched steps equal: "
        + ", ".join(f"{k}: {v:,}" for k, v in block["match_checked"].items())
    )


def ahead_targets(blocks: dict[int, dict]) -> list[tuple[str, str, bool | None]]:
    """ "Ahead of every peer" (b)-(f), in both tables: our rate / the peer's, PASS when > 1."""
    out = []
    tables = (
        ("full decision", "measures", "engines"),
        ("matching alone", "match_measures", "matchers"),
    )
    for n, block in sorted(blocks.items()):
        for table, measures_key, engines_key in tables:
            m = block[measures_key]
            ours = m["ours"].rate
            for engine in block[engines_key]:
                if engine.key not in ("b", "c", "d", "e", "f"):
                    continue
                ahead = ours / m[engine.key].rate
                ok = ahead > TARGET_AHEAD
                cpu_ahead = m[engine.key].cpu_us / m["ours"].cpu_us
                value = f"ours {ahead:.2f}x its rate, {cpu_ahead:.2f}x in CPU time"
                if not ok:
                    value += f" — BEHIND: {engine.name} is {1 / ahead:.2f}x faster than ours here"
                elif cpu_ahead < TARGET_AHEAD:
                    value += f" — BEHIND in CPU time: {engine.name} uses {cpu_ahead:.2f}x ours"
                out.append((f"ahead of {engine.name}, {n} steps, {table}", value, ok))
    return out


def targets(blocks: dict[int, dict], compile_info: dict) -> list[tuple[str, str, bool | None]]:
    out = []
    b20 = blocks.get(20)
    if b20:
        rate = b20["measures"]["ours"].rate
        out.append(
            (
                f">= {TARGET_RATE:,} decisions/s, 20-step set, trace on",
                f"{fmt_rate(rate)}/s",
                rate >= TARGET_RATE,
            )
        )
    for n, block in sorted(blocks.items()):
        m = block["measures"]
        ours = m["ours"].rate
        if "a" in m:
            ratio = m["a"].rate / ours
            out.append(
                (
                    f"within {TARGET_FLOOR}x of (a) hand-written, {n} steps",
                    f"{ratio:.2f}x (a)'s time",
                    ratio <= TARGET_FLOOR,
                )
            )
    out.extend(ahead_targets(blocks))
    ms = compile_info["median_ms"]
    out.append(
        (
            f"validate+compile {compile_info['steps']:,} steps < {TARGET_COMPILE_MS:.0f} ms",
            f"{ms:.1f} ms",
            ms < TARGET_COMPILE_MS,
        )
    )
    return out


def profile(policy, directory, orders: list[Order], top: int = 15, with_dict: bool = False) -> str:
    def work():
        for order in orders:
            d = policy.evaluate(order, directory, now=NOW)
            if with_dict:
                d.as_dict()

    work()  # warm
    prof = cProfile.Profile()
    prof.enable()
    work()
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs()
    out.write(
        f"--- cProfile, {len(orders):,} evaluations{' + as_dict()' if with_dict else ''}, by "
        f"cumulative time\n"
    )
    stats.sort_stats("cumulative").print_stats(top)
    out.write("--- by own time (tottime)\n")
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--orders", type=int, default=10_000, help="synthetic orders (default 10,000)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1,000 orders and 3 compile runs: a smoke run, numbers are noisier",
    )
    parser.add_argument("--steps", default="20,50", help="rule-set sizes to run (default 20,50)")
    parser.add_argument("--only", default="", help="peers to run, e.g. a,c (ours always runs)")
    parser.add_argument(
        "--profile", action="store_true", help="also print a cProfile of ours on the 20-step set"
    )
    parser.add_argument(
        "--dump",
        metavar="DIR",
        help="write the generated rule sets, directory and peer sources to DIR",
    )
    args = parser.parse_args(argv)
    n_orders = 1_000 if args.quick and args.orders == 10_000 else args.orders
    compile_runs = 3 if args.quick else 5

    missing = missing_peers()
    if missing:
        print("bench/evaluate.py: missing peer packages: " + ", ".join(missing), file=sys.stderr)
        print("install them with: .venv/bin/pip install -e '.[bench]'", file=sys.stderr)
        return 2

    directory_data, buyers = build_directory()
    directory = load_directory(
        yaml.safe_dump(directory_data, sort_keys=False), "bench-directory.yaml"
    )
    t0 = time.perf_counter()
    orders = build_orders(n_orders, buyers)
    lines = sum(len(o.lines) for o in orders)
    print(f"approvalrules bench/evaluate.py — seed {SEED}, Python {sys.version.split()[0]}")
    print(
        f"directory: 1 company, {len(directory_data['accounts'])} accounts, "
        f"{len(directory_data['assignments'])} assignments; {n_orders:,} orders "
        f"({lines / n_orders:.1f} lines on average), built in {time.perf_counter() - t0:.1f}s "
        f"(untimed)"
    )
    only = {k.strip() for k in args.only.split(",") if k.strip()} or None

    if args.dump:
        dump = Path(args.dump)
        dump.mkdir(parents=True, exist_ok=True)
        (dump / "directory.yaml").write_text(yaml.safe_dump(directory_data, sort_keys=False))
        for n in (int(s) for s in args.steps.split(",")):
            text, data = build_ruleset(n, directory_data)
            (dump / f"bench-{n}.yaml").write_text(text)
            hd = HandApprovers(data, directory)
            (dump / f"bench-{n}.hand.py").write_text(engine_hand(data, directory, hd).source)  # type: ignore[attr-defined]
            (dump / f"bench-{n}.cedar").write_text(
                engine_cedar(data, directory_data, directory, hd, orders[:1]).source
            )  # type: ignore[attr-defined]
            (dump / f"bench-{n}.rego").write_text(rego_policy(data))
            (dump / f"bench-{n}.rule-engine.txt").write_text(
                "\n".join(to_rule_engine(s["when"]) for s in data["approval"]["steps"]) + "\n"
            )
            (dump / f"bench-{n}.jsonlogic.json").write_text(
                json.dumps([to_jsonlogic(s["when"]) for s in data["approval"]["steps"]], indent=1)
            )
            tr = BusinessRulesTranslator()
            (dump / f"bench-{n}.business-rules.json").write_text(
                json.dumps([tr.translate(s["when"]) for s in data["approval"]["steps"]], indent=1)
            )
        print(f"generated inputs written to {dump}")

    blocks = {}
    for n in (int(s) for s in args.steps.split(",")):
        blocks[n] = run_set(n, directory_data, directory, orders, only)

    print("\nCompiling a 1,000-step rule set ...", flush=True)
    compile_info = time_compile(1000, directory_data, compile_runs)

    print(
        "\nWhat each engine does per decision (all get the same pre-built orders and the same "
        "MemoryDirectory):"
    )
    seen = set()
    for block in blocks.values():
        for engine in block["engines"]:
            if engine.key not in seen:
                seen.add(engine.key)
                print(f"  {engine.name}: {engine.what}")
    print(
        "  shared approver selection ((a)-(f)): per matched step, the company's approver "
        "candidates (pool resolved once per company and cached) filtered by self-approval, scope, "
        "selectors (role, accounts, relation assigned/unassigned/same_group/group_master/company, "
        "assignment limit) and the candidate's approval limit — the engine's rules, without trace "
        "or Decision."
    )

    print(
        "What each engine does in the second table, condition matching alone (same pre-built "
        "inputs, same timing; the result is the tuple of matched step indices):"
    )
    for engine in blocks[next(iter(blocks))]["matchers"]:
        print(f"  {engine.name}: {engine.what}")

    for block in blocks.values():
        print_table(block)
    for block in blocks.values():
        print_match_table(block)

    print(
        f"\n== validate + compile, {compile_info['steps']:,}-step rule set "
        f"({compile_info['bytes'] / 1024:.0f} KiB of YAML), median of {compile_info['runs']}: "
        f"{compile_info['median_ms']:.1f} ms (check_ruleset {compile_info['check_ms']:.1f} ms + "
        f"compile_policy {compile_info['compile_ms']:.1f} ms)"
    )

    print(
        "\n== targets (ours = policy.evaluate with the trace on; in 'matching alone', ours = the "
        "compiled step predicates)"
    )
    for label, value, ok in targets(blocks, compile_info):
        print(f"  {'PASS' if ok else 'MISS'}  {label}: {value}")

    if args.profile and 20 in blocks:
        print()
        sample = orders[: min(len(orders), 3000)]
        print(profile(blocks[20]["policy"], directory, sample))
        print(profile(blocks[20]["policy"], directory, sample, with_dict=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
