"""The behavioural diff: generated orders at every boundary of both versions, for every buyer class.

It needs no hand-written orders: it finds every total at which a decision can
change (step thresholds, limits, budgets, settings, assignment thresholds and
approval limits of both versions), puts orders just below, at and just above
each one, for every class of buyer in the directory and every order type,
evaluates them under both versions and merges the differences into readable
ranges ("orders over 500 up to 1000 by Marketing members: pending -> approved").
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ..engine import ORDER_TYPES, Directory, Order, Policy
from ..engine.conditions import And, Leaf, Not, Or, Visitor, parse, thresholds
from ..engine.currencies import MONEY_SETTINGS
from ..engine.directory import Membership
from .changes import BehaviourReport, report_changes
from .classes import BuyerClass, buyer_classes, enumerate_memberships
from .decisions import DEFAULT_NOW, Summary, change_text, evaluate_summary
from .grid import Grid, Sample, samples_around
from .screen import StepScreen, pruned

#: condition keys generated orders cannot exercise (they have no lines)
_LINE_KEYS = frozenset(["lines", "quantity", "line_count"])


def _boundaries(
    policies: tuple[Policy, Policy], steps: tuple[tuple, tuple], m: Membership, directory: Directory
) -> set[Decimal]:
    found: set[Decimal] = {Decimal(0)}
    for p, relevant in zip(policies, steps, strict=True):
        for s in relevant:
            found |= thresholds(s.condition, "total")
        if p.max_order_total is not None:
            found.add(p.max_order_total)
        if p.order_limit:
            found.add(p.order_limit[0])
        for b in p.budgets:
            found.add(b.amount)
        settings = p.effective_settings(m)
        for key in MONEY_SETTINGS:
            if settings.get(key) is not None:
                found.add(Decimal(settings[key]))
        for other in directory.memberships_of_company(m.company_id):
            limit = p.effective_settings(other).get("approval_limit")
            if limit is not None:
                found.add(Decimal(limit))
    for a in directory.assignments_for(m.account_id, m.company_id):
        for value in (a.threshold, a.limit):
            if value is not None:
                found.add(value)
    return found


def behavioural_diff(
    old_policy: Policy,
    new_policy: Policy,
    directory: Directory,
    *,
    now: Any = None,
    verify: bool = True,
) -> BehaviourReport:
    """What changes between two versions, found with generated orders.

    Orders at every boundary of both versions, for every class of buyer and
    order type, evaluated under both; the differences merged into ranges.

    Rule sets that price several currencies are explored once per priced
    currency (of either version), at that currency's own boundaries; each
    change then names its currency ("orders in EUR over 450 ...").
    """
    screen = StepScreen()
    currencies = list(dict.fromkeys(old_policy.priced_currencies + new_policy.priced_currencies))
    if len(currencies) == 1:
        return _Exploration(old_policy, new_policy, directory, now, screen).run(verify)
    started = time.perf_counter()
    reports = [
        _Exploration(old_policy, new_policy, directory, now, screen, currency=code).run(verify)
        for code in currencies
    ]
    changes = []
    for code, report in zip(currencies, reports, strict=True):
        for change in report.changes:
            change.currency = code
            change.text = change.text.replace("orders", f"orders in {code}", 1)
            change.example["currency"] = code
            changes.append(change)
    notes = list(dict.fromkeys(note for report in reports for note in report.notes))
    return BehaviourReport(
        changes,
        reports[0].classes,
        sum(r.evaluations for r in reports),
        notes,
        time.perf_counter() - started,
    )


def _in_currency(policy: Policy, currency: str | None) -> Policy:
    """The policy whose amounts an order in ``currency`` meets: itself or the variant pricing it."""
    return policy.variants.get(currency, policy) if currency else policy


class ConditionKeys(Visitor):
    """Every key a tree uses, combinators (``all``, ``any``, ``not``) included."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def visit_and(self, node: And) -> None:
        if node.written:
            self.keys.add("all")
        super().visit_and(node)

    def visit_or(self, node: Or) -> None:
        self.keys.add("any")
        super().visit_or(node)

    def visit_not(self, node: Not) -> None:
        self.keys.add("not")
        super().visit_not(node)

    def visit_leaf(self, node: Leaf) -> None:
        self.keys.add(node.key)


def _condition_keys(policies: Iterable[Policy]) -> set[str]:
    """Every key used in the policies' step conditions, combinators included."""
    visitor = ConditionKeys()
    for p in policies:
        for step in p.steps:
            parse(step.condition).accept(visitor)
    return visitor.keys


class _Exploration:
    """One behavioural diff in one currency (None: the rule sets' own)."""

    def __init__(
        self,
        old_policy: Policy,
        new_policy: Policy,
        directory: Directory,
        now: Any,
        screen: StepScreen,
        currency: str | None = None,
    ):
        self.policies = (old_policy, new_policy)
        self.directory = directory
        self.now = now or DEFAULT_NOW
        self.screen = screen
        self.currency = currency
        self.keys = _condition_keys(self.policies)
        self.type_specific = "order_type" in self.keys
        self.evaluations = 0

    def notes(self) -> list[str]:
        """What generated orders cannot show."""
        notes = []
        if self.keys & _LINE_KEYS:
            notes.append(
                "conditions on lines, quantity or line count are not explored by generated "
                "orders (they have no lines); replay recorded orders to cover them"
            )
        if any(p.budgets for p in self.policies):
            notes.append(
                "budgets: generated orders assume nothing has been spent in the current period"
            )
        return notes

    def run(self, verify: bool) -> BehaviourReport:
        """Every buyer class's grid, classes split where a member disagrees, turned into changes."""
        started = time.perf_counter()
        directory = self.directory
        classes = buyer_classes(*self.policies, directory)
        grids: dict[int, Grid] = {}
        by_account: dict[tuple[str, str], Membership] = {}
        for m in enumerate_memberships(directory):
            by_account[(m.account_id, m.company_id)] = m
        split: list[BuyerClass] = []
        for cls in classes:
            grid = self.grid(by_account[(cls.representative, cls.company)])
            grids[id(cls)] = grid
            if not verify or len(cls.members) == 1:
                continue
            # representatives stand for their class; check the others agree when that is cheap
            budget = 20_000
            cost = (len(cls.members) - 1) * len(grid.samples) * 2
            if cost > budget:
                continue
            reference = [change_text(*pair) for pair in grid.pairs["regular"]]
            for other in list(cls.members[1:]):
                om = by_account[(other, cls.company)]
                ogrid = self.grid(om, types=("regular",), bounds=grid.bounds)
                if [change_text(*pair) for pair in ogrid.pairs["regular"]] != reference:
                    cls.members.remove(other)
                    lone = _lone_class(cls, other, directory)
                    grids[id(lone)] = self.grid(om)
                    split.append(lone)
        classes = classes + split
        changes = report_changes(classes, grids)
        return BehaviourReport(
            changes, classes, self.evaluations, self.notes(), time.perf_counter() - started
        )

    def grid(self, m: Membership, types=ORDER_TYPES, bounds=None) -> Grid:
        """Both versions' decisions on ``m``'s orders at every sample total, per order type."""
        policies, directory, currency = self.policies, self.directory, self.currency
        relevant_steps = self.screen.relevant_steps
        relevant = {t: tuple(relevant_steps(p, m, t) for p in policies) for t in types}
        if bounds is None:
            found: set[Decimal] = set()
            # boundaries in the order's currency: the amounts of the policy that prices it
            priced = tuple(_in_currency(p, currency) for p in policies)
            for t in types:
                found |= _boundaries(
                    priced, tuple(relevant_steps(p, m, t, currency) for p in priced), m, directory
                )
            bounds = sorted(found)
        samples = samples_around(bounds, both_sides=len(bounds) <= 200)
        grid = Grid(samples, bounds)

        def run(order_type: str, subset: list[Sample]) -> list[tuple[Summary, Summary]]:
            old, new = (
                pruned(p, steps) for p, steps in zip(policies, relevant[order_type], strict=True)
            )
            out = []
            for s in subset:
                order = Order(
                    buyer=m.account_id,
                    total=s.total,
                    company=m.company_id,
                    type=order_type,
                    currency=currency,
                )
                out.append(
                    (
                        evaluate_summary(old, order, directory, self.now),
                        evaluate_summary(new, order, directory, self.now),
                    )
                )
                self.evaluations += 2
            return out

        first = "regular" if "regular" in types else types[0]
        grid.pairs[first] = run(first, samples)
        base = grid.pairs.get("regular")
        for t in types:
            if t in grid.pairs:
                continue
            bulk_differs = (
                t == "bulk"
                and m.group is not None
                and any(p.bulk_orders != "group_settings" for p in policies)
            )
            if base is not None and not self.type_specific and not bulk_differs and t != "quote":
                # the engine treats this type like a regular order: check a few points, then reuse
                step = max(1, len(samples) // 8)
                probe = list(range(0, len(samples), step))
                pairs = run(t, [samples[i] for i in probe])
                if all(pairs[j] == base[i] for j, i in enumerate(probe)):
                    grid.pairs[t] = base
                    continue
            grid.pairs[t] = run(t, samples)
        return grid


def _lone_class(cls: BuyerClass, member: str, directory: Directory) -> BuyerClass:
    """``member`` of ``cls`` in a class of its own: its decisions differ from its class's."""
    account = directory.account(member)
    lone = BuyerClass(
        cls.key + (member,),
        cls.company,
        cls.company_name,
        cls.role,
        cls.role_label,
        cls.group,
        cls.group_label,
        cls.master,
        cls.qualifiers,
        [member],
        active_group=cls.active_group,
    )
    lone.name = f"{account.name if account else member} ({cls.name})"
    return lone
