"""Static analysis of conditions: the total range they imply, their leaves, the names they use."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from .tree import And, Leaf, Node, Not, Or, Visitor, amount, as_set, day, parse


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


#: condition keys whose subject has one value per order (the order's currency and type, the
#: buyer's account, role and group): two tests of one key with no value in common never both hold
SINGLE_VALUED = frozenset(["currency", "order_type", "buyer_role", "buyer_group", "buyer_account"])


def _conjuncts(node: Node) -> list[Node]:
    """The parts that must all hold: through nested conjunctions, not into ``any``/``not``."""
    if isinstance(node, And):
        return [part for child in node.children for part in _conjuncts(child)]
    return [node]


def _value_tests(node: Node) -> tuple[dict[str, frozenset], dict[str, frozenset]]:
    """(values a single-valued subject must take, values it must not take) by key."""
    allowed: dict[str, frozenset] = {}
    refused: dict[str, frozenset] = {}
    for part in _conjuncts(node):
        if isinstance(part, Leaf) and part.key in SINGLE_VALUED:
            values = as_set(part.value)
            allowed[part.key] = allowed[part.key] & values if part.key in allowed else values
        elif (
            isinstance(part, Not)
            and isinstance(part.child, Leaf)
            and part.child.key in SINGLE_VALUED
        ):
            key = part.child.key
            refused[key] = refused.get(key, frozenset()) | as_set(part.child.value)
    return allowed, refused


def _total_range(node: Node) -> Interval:
    try:
        return node.accept(_INTERVALS)
    except (ArithmeticError, TypeError, ValueError):  # per-currency bounds: no single range
        return None, None


def _below(high: Bound | None, low: Bound | None) -> bool:
    """Whether every total under ``high`` lies under every total over ``low``."""
    if high is None or low is None:
        return False
    return high.value < low.value or (high.value == low.value and (high.strict or low.strict))


def exclude_each_other(first: Mapping[str, Any] | None, second: Mapping[str, Any] | None) -> bool:
    """Whether no order can meet both conditions, as far as their conjunctions show.

    True when both require a single-valued subject (the buyer's group, role or account, the
    order's type or currency) to take values with none in common, one refuses every value
    the other requires, or their total ranges do not meet.  Conservative: False means
    "maybe both", never "surely both".
    """
    a, b = parse(first), parse(second)
    (a_allowed, a_refused), (b_allowed, b_refused) = _value_tests(a), _value_tests(b)
    for key in SINGLE_VALUED:
        if key in a_allowed and key in b_allowed and not a_allowed[key] & b_allowed[key]:
            return True
        if key in a_allowed and a_allowed[key] <= b_refused.get(key, frozenset()):
            return True
        if key in b_allowed and b_allowed[key] <= a_refused.get(key, frozenset()):
            return True
    (a_low, a_high), (b_low, b_high) = _total_range(a), _total_range(b)
    return _below(a_high, b_low) or _below(b_high, a_low)


def date_edges(condition: Mapping[str, Any] | None) -> set[date]:
    """The days at whose first instant an ``order_date`` test of a condition can change: the
    date itself for ``gte``/``lt``, the day after for ``gt``/``lte``, both for ``eq``."""
    days: set[date] = set()
    for key, value in iter_leaves(condition):
        if key != "order_date":
            continue
        for op, bound in value.items():
            when = day(bound)
            if op in ("gte", "lt", "eq"):
                days.add(when)
            if op in ("gt", "lte", "eq"):
                days.add(when + timedelta(days=1))
    return days


def uses_key(condition: Mapping[str, Any] | None, key: str) -> bool:
    """Whether a condition tests ``key`` anywhere inside it."""
    return any(k == key for k, _ in iter_leaves(condition))
