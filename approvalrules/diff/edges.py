"""Band edges: every amount and count at which a decision can change, from one walk of each tree.

One :class:`EdgeCollector` (a visitor of the engine's condition tree) reads
every condition of a policy, steps, ``deny`` and ``bypass`` alike, and keeps
the bounds of each numeric dimension an order has: its total, its quantity
(the sum of its lines), its line count, and the ``lines`` tests (a line of
some SKU or category, of some quantity).  :func:`policy_edges` adds the
amounts outside conditions: the maximums, the order limit, budgets (against
an empty ledger), the buyer's money settings, the approval limits of the
company's members and the buyer's assignment tiers and limits, each read in
the currency the order is explored in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from ..engine import Directory, Policy
from ..engine.conditions import Leaf, Visitor, parse
from ..engine.currencies import MONEY_SETTINGS, DirectoryInCurrency
from ..engine.directory import Membership
from ..engine.money import CENT

#: the dimensions of an order besides its total that conditions compare with numbers
LINE_DIMENSIONS = ("line_count", "quantity")


@dataclass
class Edges:
    """Where decisions can change, per dimension; ``line_tests`` are the ``lines`` tests met."""

    total: set[Decimal] = field(default_factory=set)
    line_count: set[Decimal] = field(default_factory=set)
    quantity: set[Decimal] = field(default_factory=set)
    #: ``lines`` leaves (and restricted products), each once, in the order first met
    line_tests: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def add_line_test(self, spec: Mapping[str, Any]) -> None:
        """Keep a ``lines`` test once, one per SKU and category it lists.

        ``{sku: [A, B]}`` becomes ``{sku: A}`` and ``{sku: B}``: each SKU gets
        a line of its own, so a list that changes from [A, B] to [A, C] is
        explored at B and C too.
        """
        skus = spec["sku"] if isinstance(spec.get("sku"), list) else [spec.get("sku")]
        categories = (
            spec["category"] if isinstance(spec.get("category"), list) else [spec.get("category")]
        )
        for sku in skus:
            for category in categories:
                single = dict(spec)
                for key, value in (("sku", sku), ("category", category)):
                    if value is None:
                        single.pop(key, None)
                    else:
                        single[key] = value
                key = json.dumps(single, sort_keys=True, default=str)
                self.line_tests.setdefault(key, single)

    def update(self, other: Edges) -> None:
        """Add ``other``'s edges to these."""
        self.total |= other.total
        self.line_count |= other.line_count
        self.quantity |= other.quantity
        for key, spec in other.line_tests.items():
            self.line_tests.setdefault(key, spec)

    @property
    def uses_lines(self) -> bool:
        """Some condition or setting looks at the order's lines."""
        return bool(self.line_count or self.quantity or self.line_tests)


def _bounds(comparison: Any) -> set[Decimal]:
    """The amounts of one comparison (``{gt: 500, lte: 900}``); per-currency maps are skipped."""
    if not isinstance(comparison, Mapping):
        return set()
    return {Decimal(str(v)) for v in comparison.values() if not isinstance(v, Mapping)}


class EdgeCollector(Visitor):
    """The edges of every tree it visits, through ``all``/``any``/``not``."""

    def __init__(self, edges: Edges | None = None) -> None:
        self.edges = edges if edges is not None else Edges()

    def visit_leaf(self, node: Leaf) -> None:
        if node.key == "total":
            self.edges.total |= _bounds(node.value)
        elif node.key in LINE_DIMENSIONS:
            getattr(self.edges, node.key).update(_bounds(node.value))
        elif node.key == "lines":
            self.edges.add_line_test(node.value)

    def collect(self, conditions: Iterable[Mapping[str, Any] | None]) -> Edges:
        """Visit every condition; the edges found so far."""
        for condition in conditions:
            parse(condition).accept(self)
        return self.edges


def condition_edges(policy: Policy, steps: Iterable, role: str | None) -> Edges:
    """The edges of ``steps``, of every deny rule and of the bypass rules open to ``role``."""
    conditions = [step.condition for step in steps]
    conditions += [rule.condition for rule in policy.deny]
    conditions += [
        rule.condition for rule in policy.bypass if rule.roles is None or role in rule.roles
    ]
    return EdgeCollector().collect(conditions)


def directory_in(policy: Policy, currency: str | None, directory: Directory) -> Directory:
    """The directory as ``policy`` reads it for an order in ``currency`` (converted for a
    variant)."""
    rate = policy.conversion.get(currency) if currency else None
    if rate is None or currency == policy.currency or currency not in policy.variants:
        return directory  # no rate: evaluating refuses the order before reading any amount
    return DirectoryInCurrency(directory, policy.currency, currency, rate)


def policy_edges(policy: Policy, steps: Iterable, m: Membership, directory: Directory) -> Edges:
    """Every edge of ``policy`` for ``m``'s orders, in the currency ``policy`` prices.

    ``policy`` is the one an order meets (a variant for a natively priced
    currency), ``directory`` the view it reads (see :func:`directory_in`).
    """
    edges = condition_edges(policy, steps, m.role)
    found = edges.total
    found.add(Decimal(0))
    if policy.max_order_total is not None:
        found.add(policy.max_order_total)
    if policy.order_limit:
        found.add(policy.order_limit[0])
    for budget in policy.budgets:
        found.add(budget.amount)  # against an empty ledger
    membership = directory.membership(m.account_id, m.company_id) or m
    settings = policy.effective_settings(membership)
    for key in MONEY_SETTINGS:
        if settings.get(key) is not None:
            found.add(Decimal(settings[key]))
    for other in directory.memberships_of_company(m.company_id):
        limit = policy.effective_settings(other).get("approval_limit")
        if limit is not None:
            found.add(Decimal(limit))
    for assignment in directory.assignments_for(m.account_id, m.company_id):
        for value in (assignment.threshold, assignment.limit):
            if value is not None:
                found.add(Decimal(value))
    # the products an order may hold: each restricted or favourite one is a line of its own
    if settings.get("restricted_skus"):
        edges.add_line_test({"sku": sorted(settings["restricted_skus"])})
    if settings.get("restricted_categories"):
        edges.add_line_test({"category": sorted(settings["restricted_categories"])})
    if settings.get("favourites_only") and settings.get("favourites"):
        edges.add_line_test({"sku": sorted(settings["favourites"])})
    return edges


def converted_edges(amounts: Iterable[Decimal], rate: Decimal) -> set[Decimal]:
    """Totals in a converted currency at which the rule set's amounts are crossed.

    An order of ``t`` in that currency is compared as ``t * rate`` rounded to
    cents, so each amount ``a`` is crossed between the cent totals around
    ``a / rate``: both of them, and one cent beyond each, are edges.
    """
    out: set[Decimal] = set()
    for a in amounts:
        exact = a / rate
        below = exact.quantize(CENT, rounding=ROUND_FLOOR)
        above = exact.quantize(CENT, rounding=ROUND_CEILING)
        out |= {x for x in (below - CENT, below, above, above + CENT) if x >= 0}
    return out


def count_samples(edges: Iterable[Decimal]) -> list[int]:
    """Whole counts, each standing for the counts up to the next: every comparison with
    ``edges`` is constant on ``[s[i], s[i+1] - 1]`` (and on ``[s[-1], ...)``)."""
    found = {0}
    for e in edges:
        for x in (e.to_integral_value(ROUND_FLOOR), e.to_integral_value(ROUND_CEILING)):
            found |= {int(x), int(x) + 1}
    return sorted(x for x in found if x >= 0)
