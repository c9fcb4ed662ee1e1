"""Generated lines: the line count, quantity and ``lines`` tests explored by the boundary method.

The decisions of both versions depend on an order's lines only through its
line count, its quantity (the sum of its lines) and whether each ``lines``
test holds (a line of some SKU or category, of some quantity; restricted
products are such tests too).  Each of those is constant between the edges
the rule sets compare it with, so one order per combination of segments, a
:class:`LineScenario`, stands for every order in it.  Combinations no order
can have (three lines of total quantity 1) are left out: each generated
order's coordinates are measured, never assumed.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..engine.conditions import Facts, Line, compile_trees, describe_leaf, parse
from .edges import Edges, count_samples
from .grid import samples_around
from .values import fmt_amount

#: a SKU no rule set names: the lines that only fill the count and the quantity
FILLER_SKU = "other-sku"
#: more ``lines`` tests than this, or more distinct scenarios than :data:`MAX_SCENARIOS`: not
#: explored
MAX_LINE_TESTS = 8
MAX_SCENARIOS = 512
#: combinations of count, quantity and line tests tried in search of the distinct scenarios;
#: many coincide (a witness of ``sku A, quantity > 9`` is one of ``sku A`` too), and each
#: costs a few lines built and tested, where each scenario costs a grid of evaluations
MAX_COMBINATIONS = 8 * MAX_SCENARIOS


@dataclass(frozen=True)
class Range:
    """A range of one dimension: (low, low inclusive, high, high inclusive); None is unbounded."""

    low: Decimal | None
    low_inclusive: bool
    high: Decimal | None
    high_inclusive: bool

    def contains(self, value: Decimal) -> bool:
        """Whether ``value`` lies in the range."""
        low, high = self.low, self.high
        if low is not None and (value < low or (value == low and not self.low_inclusive)):
            return False
        return not (
            high is not None and (value > high or (value == high and not self.high_inclusive))
        )

    def follows(self, other: Range, whole: bool = False) -> bool:
        """This range starts where ``other`` ends, nothing between them (``whole``: counts)."""
        if other.high is None or self.low is None:
            return False
        if whole and other.high_inclusive and self.low_inclusive:
            return other.high + 1 == self.low
        return other.high == self.low and other.high_inclusive != self.low_inclusive

    def joined(self, other: Range) -> Range:
        """``other`` (which follows this) and this as one range."""
        return Range(self.low, self.low_inclusive, other.high, other.high_inclusive)

    def as_dict(self) -> dict:
        return {
            "low": fmt_amount(self.low) if self.low is not None else None,
            "low_inclusive": self.low_inclusive,
            "high": fmt_amount(self.high) if self.high is not None else None,
            "high_inclusive": self.high_inclusive,
        }


@dataclass(frozen=True)
class LineScenario:
    """Generated lines and the coordinates they stand for."""

    lines: tuple[Line, ...]
    line_count: Range | None  # None: the rule sets never compare the line count
    quantity: Range | None
    #: (text of a ``lines`` test, whether it holds), per test the rule sets use
    tests: tuple[tuple[str, bool], ...]
    #: the ``lines`` tests themselves, in the order of ``tests``
    specs: tuple = field(default=(), compare=False)

    @property
    def coordinates(self) -> tuple:
        """What the scenario stands for, whatever its generated lines."""
        return (self.line_count, self.quantity, self.tests)

    def as_dict(self) -> dict:
        return {
            "line_count": self.line_count.as_dict() if self.line_count else None,
            "quantity": self.quantity.as_dict() if self.quantity else None,
            "tests": [{"test": text, "holds": holds} for text, holds in self.tests],
        }

    def text(self) -> str:
        """``with 4 or more lines, quantity over 10, a line with sku X``: '' for no lines."""
        parts = []
        if self.line_count is not None:
            parts.append(_count_text(self.line_count))
        if self.quantity is not None:
            parts.append("quantity " + range_words(self.quantity))
        for text, holds in self.tests:
            parts.append(text if holds else "no " + text.removeprefix("a "))
        return ("with " + "; ".join(parts)) if parts else ""


#: the one scenario of rule sets that never look at lines: orders without lines
NO_LINES = LineScenario((), None, None, ())


def range_words(r: Range) -> str:
    """``over 10 up to 20``, ``from 3``, ``below 5``, ``exactly 4``, ``any``."""
    if r.low is not None and r.high is not None and r.low == r.high:
        return f"exactly {fmt_amount(r.low)}"
    parts = []
    if r.low is not None:
        parts.append(f"{'from' if r.low_inclusive else 'over'} {fmt_amount(r.low)}")
    if r.high is not None:
        parts.append(f"{'up to' if r.high_inclusive else 'below'} {fmt_amount(r.high)}")
    return " ".join(parts) or "any"


def _count_text(r: Range) -> str:
    low = int(r.low) if r.low is not None else 0
    if r.high is None:
        return "any number of lines" if low == 0 else f"{low} or more lines"
    high = int(r.high)
    if low == high:
        return "no lines" if low == 0 else f"{low} line{'s' if low != 1 else ''}"
    return f"up to {high} lines" if low == 0 else f"{low} to {high} lines"


def _ranges_of(samples: list, bounds: list[Decimal]) -> list[tuple[Decimal, Range]]:
    """Each sample of :func:`samples_around` with the range of the dimension it stands for."""
    out = []
    for s in samples:
        i = s.segment // 2
        if s.segment % 2 == 0:
            out.append((s.total, Range(bounds[i], True, bounds[i], True)))
        else:
            nxt = bounds[i + 1] if i + 1 < len(bounds) else None
            out.append((s.total, Range(bounds[i], False, nxt, False)))
    return out


def _count_ranges(edges: set[Decimal]) -> list[tuple[int, Range]]:
    points = count_samples(edges)
    out = []
    for i, n in enumerate(points):
        high = Decimal(points[i + 1] - 1) if i + 1 < len(points) else None
        out.append((n, Range(Decimal(n), True, high, True)))
    return out


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def _witness(spec: Mapping[str, Any]) -> Line:
    """A line for which the ``lines`` test ``spec`` holds."""
    sku = _first(spec["sku"]) if "sku" in spec else FILLER_SKU
    category = _first(spec["category"]) if "category" in spec else None
    quantity = Decimal(1)
    comparison = spec.get("quantity") or {}
    if comparison:
        bounds = sorted({Decimal(str(v)) for v in comparison.values()} | {Decimal(1)})
        (test,) = compile_trees([parse({"quantity": comparison})])
        for s in samples_around(bounds):
            if s.total > 0 and test(_facts((Line(sku, category, s.total),))):
                quantity = s.total
                break
    return Line(sku, category, quantity)


def _facts(lines: tuple[Line, ...]) -> Facts:
    return Facts(Decimal(0), None, "regular", lines, "", None, None, {}, frozenset())


def scenarios(edges: Edges) -> tuple[list[LineScenario], bool]:
    """The line scenarios that explore ``edges``, and whether they explore all of it.

    Rule sets that never look at lines get :data:`NO_LINES` alone.
    """
    if not edges.uses_lines:
        return [NO_LINES], True
    specs = list(edges.line_tests.values())[:MAX_LINE_TESTS]
    complete = len(edges.line_tests) <= MAX_LINE_TESTS
    texts = [describe_leaf("lines", spec) for spec in specs]
    tests = compile_trees([parse({"lines": spec}) for spec in specs])
    witnesses = [_witness(spec) for spec in specs]
    # the count compared: one scenario per count segment; else as many lines as the tests need
    counts = _count_ranges(edges.line_count) if edges.line_count else [(None, None)]
    q_bounds = sorted(edges.quantity | {Decimal(0)})
    quantities = _ranges_of(samples_around(q_bounds), q_bounds)
    combos = len(counts) * len(quantities) * 2 ** len(specs)
    if combos > MAX_COMBINATIONS:
        return [NO_LINES], False
    found: dict[tuple, LineScenario] = {}
    for (n, count_range), (q, _), wanted in itertools.product(
        counts, quantities, itertools.product((False, True), repeat=len(specs))
    ):
        chosen = [w for w, on in zip(witnesses, wanted, strict=True) if on]
        # the fewest lines the count's segment allows that hold the witnesses and the quantity
        low = n if n is not None else 0
        need = max(low, len(chosen), 1 if q > 0 else 0)
        high = count_range.high if count_range is not None else None
        # a line or two more than needed reach quantities the witnesses alone cannot
        for extra in range(3):
            if high is not None and need + extra > high:
                break
            lines = _build(need + extra, q, chosen)
            if lines is None:
                continue
            facts = _facts(lines)
            holds = tuple(test(facts) for test in tests)
            scenario = LineScenario(
                lines,
                _locate(Decimal(len(lines)), [r for _, r in counts]) if edges.line_count else None,
                _locate(facts.quantity, [r for _, r in quantities]) if edges.quantity else None,
                tuple(zip(texts, holds, strict=True)),
                tuple(specs),
            )
            found.setdefault((scenario.line_count, scenario.quantity, holds), scenario)
    if len(found) > MAX_SCENARIOS:
        return [NO_LINES], False
    return list(found.values()), complete


def _locate(value: Decimal, ranges: list[Range]) -> Range:
    for r in ranges:
        if r.contains(value):
            return r
    raise ValueError(value)  # pragma: no cover - the ranges cover every value from 0


def _build(count: int, quantity: Decimal, witnesses: list[Line]) -> tuple[Line, ...] | None:
    """``count`` lines holding ``witnesses``, of total ``quantity`` if the fillers can make it."""
    if len(witnesses) > count:
        return None
    fillers = count - len(witnesses)
    rest = quantity - sum((w.quantity for w in witnesses), Decimal(0))
    if fillers == 0:
        if rest > 0 and witnesses:  # no filler to carry the quantity: the last witness does
            last = witnesses[-1]
            witnesses = witnesses[:-1] + [Line(last.sku, last.category, last.quantity + rest)]
        return tuple(witnesses)
    if rest <= 0:
        rest = Decimal(fillers)  # the quantity cannot be met: fill with ones, measured anyway
    share = (rest / fillers).quantize(Decimal("0.01"))
    if share <= 0:
        return None
    last = rest - share * (fillers - 1)
    if last <= 0:
        return None
    filler = [Line(FILLER_SKU, None, share) for _ in range(fillers - 1)]
    return tuple(witnesses + filler + [Line(FILLER_SKU, None, last)])
