"""Static analysis of conditions: the total range they imply, their leaves, the names they use."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from .tree import And, Leaf, Node, Not, Or, Visitor, amount, day, parse


@dataclass(frozen=True, slots=True)
class Bound:
    """One end of a total range: ``strict`` for gt/lt, not for gte/lte/eq."""

    value: Decimal
    strict: bool


Interval = tuple[Bound | None, Bound | None]


def _tighter_low(a: Bound | None, b: Bound) -> Bound:
    if a is None or b.value > a.value or (b.value == a.value and b.strict):
        return b
    return a


def _tighter_high(a: Bound | None, b: Bound) -> Bound:
    if a is None or b.value < a.value or (b.value == a.value and b.strict):
        return b
    return a


def interval_of(condition: Mapping[str, Any] | None) -> Interval:
    """The (low, high) bounds on ``total`` that a condition's top-level ``total`` and ``all`` imply.

    Used to spot unreachable steps; ``None`` means unbounded.  Only
    conjunctions are analysed, so the result is conservative.
    """
    return parse(condition).accept(_INTERVALS)


class IntervalFinder(Visitor):
    """The total range of a tree: ``total`` leaves narrowed through conjunctions, nothing else."""

    def visit_and(self, node: And) -> Interval:
        low: Bound | None = None
        high: Bound | None = None
        for child in node.children:
            child_low, child_high = child.accept(self)
            if child_low is not None:
                low = _tighter_low(low, child_low)
            if child_high is not None:
                high = _tighter_high(high, child_high)
        return low, high

    def visit_or(self, node: Or) -> Interval:
        return None, None  # a disjunction bounds nothing for sure

    def visit_not(self, node: Not) -> Interval:
        return None, None

    def visit_leaf(self, node: Leaf) -> Interval:
        low: Bound | None = None
        high: Bound | None = None
        if node.key == "total":
            for op, bound in node.value.items():
                value = amount(bound)
                if op in ("gt", "gte", "eq"):
                    low = _tighter_low(low, Bound(value, op == "gt"))
                if op in ("lt", "lte", "eq"):
                    high = _tighter_high(high, Bound(value, op == "lt"))
        return low, high


_INTERVALS = IntervalFinder()


class LeafCollector(Visitor):
    """Every leaf of a tree, through all/any/not, depth first, as (key, value)."""

    def __init__(self) -> None:
        self.leaves: list[tuple[str, Any]] = []

    def visit_leaf(self, node: Leaf) -> None:
        self.leaves.append((node.key, node.value))


def leaves_of(node: Node) -> list[tuple[str, Any]]:
    """The (key, value) leaves of a parsed condition, depth first."""
    collector = LeafCollector()
    node.accept(collector)
    return collector.leaves


def iter_leaves(condition: Mapping[str, Any] | None) -> Iterator[tuple[str, Any]]:
    """Every (key, value) leaf of a condition, through all/any/not, depth first."""
    return iter(leaves_of(parse(condition)))


def referenced_names(condition: Mapping[str, Any] | None) -> dict[str, set]:
    """Roles, groups, accounts and limits a condition refers to, anywhere inside it."""
    refs: dict[str, set] = {
        "buyer_role": set(),
        "buyer_group": set(),
        "buyer_account": set(),
        "exceeds": set(),
    }
    for key, value in iter_leaves(condition):
        if key in refs:
            refs[key].update(value if isinstance(value, list) else [value])
    return refs


def thresholds(condition: Mapping[str, Any] | None, key: str = "total") -> set[Decimal]:
    """Every bound on ``key`` inside a condition: where decisions can change."""
    return {
        amount(bound) for k, value in iter_leaves(condition) if k == key for bound in value.values()
    }


def date_edges(condition: Mapping[str, Any] | None) -> set[date]:
    """Every date an ``order_date`` test of a condition compares with: where decisions can
    change with the order's date."""
    return {
        day(bound)
        for k, value in iter_leaves(condition)
        if k == "order_date"
        for bound in value.values()
    }


def uses_key(condition: Mapping[str, Any] | None, key: str) -> bool:
    """Whether a condition tests ``key`` anywhere inside it."""
    return any(k == key for k, _ in iter_leaves(condition))
