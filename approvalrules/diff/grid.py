"""Sample totals around the boundaries, and the decisions of one buyer class at them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .decisions import Summary


@dataclass(frozen=True, slots=True)
class Sample:
    """A generated order total and the segment of the boundaries it stands for."""

    total: Decimal
    segment: int  # even: the point boundaries[segment // 2]; odd: the open interval after it


def samples_around(bounds: list[Decimal], both_sides: bool = True) -> list[Sample]:
    """Points at each boundary and just above it (and just below the next), plus a large total."""
    places = max(
        [2]
        + [
            -b.normalize().as_tuple().exponent
            for b in bounds
            if b.normalize().as_tuple().exponent < 0
        ]
    )
    eps = Decimal(1).scaleb(-places)
    out = []
    for i, b in enumerate(bounds):
        out.append(Sample(b, 2 * i))
        nxt = bounds[i + 1] if i + 1 < len(bounds) else None
        if nxt is None:
            out.append(Sample(b + eps, 2 * i + 1))
            large = max(b * 10, Decimal(1_000_000))
            out.append(Sample(large.quantize(Decimal(1)), 2 * i + 1))
        elif nxt - b > 2 * eps:
            out.append(Sample(b + eps, 2 * i + 1))
            if both_sides:
                out.append(Sample(nxt - eps, 2 * i + 1))
        else:
            out.append(Sample((b + nxt) / 2, 2 * i + 1))
    return out


class Grid:
    """Decisions of one buyer class under both versions: per order type and line scenario, per
    sample total.

    ``pairs[(order type, scenario index)]`` lists the (old, new) summaries at each sample.
    """

    def __init__(self, samples: list[Sample], bounds: list[Decimal], scenarios: list):
        self.samples = samples
        self.bounds = bounds
        self.scenarios = scenarios
        self.pairs: dict[tuple[str, int], list[tuple[Summary, Summary]]] = {}

    def of_type(self, order_type: str) -> list[tuple[Summary, Summary]]:
        """Every pair of one order type, scenario after scenario (empty if not evaluated)."""
        return [
            pair
            for index in range(len(self.scenarios))
            for pair in self.pairs.get((order_type, index), ())
        ]
