"""From the decision grids of all buyer classes to readable changes.

Runs of samples with the same change become total ranges; ranges that change
alike for whole companies, groups or roles are named by them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from ..engine import ORDER_TYPES
from .classes import BuyerClass, role_phrase
from .decisions import Summary, change_text
from .grid import Grid
from .lines import NO_LINES, LineScenario
from .values import fmt_amount


@dataclass
class BehaviourChange:
    """Orders whose decision changes: a total range, buyers, order types, old -> new."""

    low: Decimal | None
    low_inclusive: bool
    high: Decimal | None
    high_inclusive: bool
    order_types: tuple[str, ...] | None  # None: every order type that can be placed
    who: str
    classes: tuple[str, ...]
    change: str
    old: Summary
    new: Summary
    example: dict
    text: str = ""
    currency: str | None = None  # set when the rule sets price several currencies
    #: the lines of the orders that change: None when the rule sets never look at lines
    lines: LineScenario | None = None
    #: the submission dates the change covers (a ``diff.dates.DateBand``): None when it covers
    #: every date
    dates: Any = None

    def as_dict(self) -> dict:
        return {
            "text": self.text,
            "orders": _range_text(
                self.low, self.low_inclusive, self.high, self.high_inclusive, self.order_types
            )
            + (f" {self.lines.text()}" if self.lines else ""),
            "total": {
                "low": fmt_amount(self.low) if self.low is not None else None,
                "low_inclusive": self.low_inclusive,
                "high": fmt_amount(self.high) if self.high is not None else None,
                "high_inclusive": self.high_inclusive,
            },
            "order_types": list(self.order_types) if self.order_types else None,
            "currency": self.currency,
            "dates": self.dates.as_dict() if self.dates is not None else None,
            "lines": self.lines.as_dict() if self.lines else None,
            "who": self.who,
            "classes": list(self.classes),
            "change": self.change,
            "example": {
                "order": self.example,
                "old": self.old.as_dict(),
                "new": self.new.as_dict(),
            },
        }


@dataclass
class BehaviourReport:
    """What the behavioural diff found: the changes, the buyer classes, how many orders it took."""

    changes: list[BehaviourChange]
    classes: list[BuyerClass]
    evaluations: int
    notes: list[str]
    seconds: float = 0.0
    #: dimensions of the orders that could not be explored: the diff cannot vouch for them
    unexplored: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    @property
    def complete(self) -> bool:
        """Every dimension was explored: "no changes" means none."""
        return not self.unexplored

    def lines(self) -> list[str]:
        return [c.text for c in self.changes]

    def as_dict(self) -> dict:
        return {
            "changed": self.changed,
            "changes": [c.as_dict() for c in self.changes],
            "classes": [c.as_dict() for c in self.classes],
            "evaluations": self.evaluations,
            "notes": list(self.notes),
            "unexplored": list(self.unexplored),
        }


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _range_text(low, low_inc, high, high_inc, types) -> str:
    noun = "orders" if not types else _and(list(types)) + " orders"
    parts = []
    if low is not None and not (low == 0 and low_inc):
        parts.append(f"{'from' if low_inc else 'over'} {fmt_amount(low)}")
    if high is not None:
        if parts and not high_inc:
            parts.append("and")
        parts.append(f"{'up to' if high_inc else 'below'} {fmt_amount(high)}")
    if low is not None and high is not None and low == high and low_inc and high_inc:
        parts = [f"of exactly {fmt_amount(low)}"]
    if not parts:
        return f"all {noun}"
    return f"{noun} {' '.join(parts)}"


def report_changes(
    classes: list[BuyerClass], grids: dict[int, Grid], name: Callable[[str], str] = str
) -> list[BehaviourChange]:
    """The changes in every class's grid, merged by range, order type, lines and buyers.

    ``name``: account and company ids as the reader knows them (see ``directory_names``).
    """
    # 1. per class, order type and line scenario: runs of consecutive samples with one change
    runs: dict[tuple, dict] = {}
    for ci, cls in enumerate(classes):
        grid = grids[id(cls)]
        for (t, si), pairs in grid.pairs.items():
            texts = [change_text(*pair, name) for pair in pairs]
            i = 0
            while i < len(texts):
                if texts[i] is None:
                    i += 1
                    continue
                j = i
                while j + 1 < len(texts) and texts[j + 1] == texts[i]:
                    j += 1
                lo, hi = _bounds_of(grid, i, j)
                if _placeable(pairs[i]):
                    # orders both versions block alike do not change:
                    # "orders over 500", not "over 500 up to the maximum"
                    if i > 0 and all(_blocked_alike(pair) for pair in pairs[:i]):
                        lo = (None, True)
                    if j + 1 < len(pairs) and all(_blocked_alike(pair) for pair in pairs[j + 1 :]):
                        hi = (None, True)
                entry = runs.setdefault(
                    (ci, si, lo, hi, texts[i]),
                    {"types": [], "pair": pairs[i], "sample": grid.samples[i]},
                )
                entry["types"].append(t)
                i = j + 1
    # 2. order types: name them only when not every placeable type changes
    merged: dict[tuple, dict] = {}
    for (ci, si, lo, hi, text), entry in runs.items():
        grid = grids[id(classes[ci])]
        changed = sorted(entry["types"], key=ORDER_TYPES.index)
        entry["types"] = changed
        others = [t for t in ORDER_TYPES if t not in changed and (t, si) in grid.pairs]
        if _placeable(entry["pair"]) and all(
            _neutral(grid, t, grid.scenarios[si], lo, hi) for t in others
        ):
            types = None
        else:
            types = tuple(changed)
        lines = grid.scenarios[si]
        slot = merged.setdefault(
            (lo, hi, text, types, lines.coordinates),
            {"classes": [], "entry": entry, "ci": ci, "scenario": lines},
        )
        slot["classes"].append(ci)
    merged = _join_line_counts(merged)
    # 3. buyers: whole companies, groups and roles by name, else the classes
    out = []
    for (lo, hi, text, types, _), slot in merged.items():
        lines = slot["scenario"]
        affected = set(slot["classes"])
        who = _who(
            classes, grids, affected, lo, hi, types, lines, _placeable(slot["entry"]["pair"])
        )
        entry = slot["entry"]
        cls = classes[slot["ci"]]
        sample = entry["sample"]
        example = {
            "buyer": cls.representative,
            "company": cls.company,
            "total": fmt_amount(sample.total),
            "type": (types or entry["types"])[0],
        }
        if lines is not NO_LINES:
            example["lines"] = [
                {"sku": line.sku, "category": line.category, "quantity": fmt_amount(line.quantity)}
                for line in lines.lines
            ]
        change = BehaviourChange(
            low=lo[0],
            low_inclusive=lo[1],
            high=hi[0],
            high_inclusive=hi[1],
            order_types=types,
            who=who,
            classes=tuple(classes[i].name for i in sorted(affected)),
            change=text,
            old=entry["pair"][0],
            new=entry["pair"][1],
            example=example,
            lines=None if lines is NO_LINES else lines,
        )
        orders = _range_text(lo[0], lo[1], hi[0], hi[1], types)
        if change.lines is not None and change.lines.text():
            orders += " " + change.lines.text()
        change.text = f"{orders} by {who}: {text}"
        out.append((min(affected), lo[0] if lo[0] is not None else Decimal(-1), change))
    out.sort(key=lambda x: (x[0], x[1], x[2].text))
    return [c for _, _, c in out]


def _join_line_counts(merged: dict[tuple, dict]) -> dict[tuple, dict]:
    """Changes alike but for adjacent line counts, as one change over the joined counts."""

    def low_count(item) -> Decimal:
        count = item[1]["scenario"].line_count
        return count.low if count is not None and count.low is not None else Decimal(0)

    out: dict[tuple, dict] = {}
    for key, slot in sorted(merged.items(), key=low_count):
        lines = slot["scenario"]
        for okey, other in list(out.items()):
            olines = other["scenario"]
            if (
                lines.line_count is not None
                and olines.line_count is not None
                and okey[:4] == key[:4]
                and olines.coordinates[1:] == lines.coordinates[1:]
                and lines.line_count.follows(olines.line_count, whole=True)
                and sorted(other["classes"]) == sorted(slot["classes"])
            ):
                wider = replace(olines, line_count=olines.line_count.joined(lines.line_count))
                del out[okey]
                _put(out, key[:4] + (wider.coordinates,), {**other, "scenario": wider})
                break
        else:
            _put(out, key, slot)
    return out


def _put(out: dict[tuple, dict], key: tuple, slot: dict) -> None:
    """``slot`` under ``key``; classes whose joined counts make the same change share it."""
    if key in out:
        out[key]["classes"] = sorted(set(out[key]["classes"]) | set(slot["classes"]))
    else:
        out[key] = slot


def _bounds_of(grid: Grid, i: int, j: int) -> tuple[tuple, tuple]:
    first, last = grid.samples[i].segment, grid.samples[j].segment
    b = grid.bounds
    lo = (b[first // 2], first % 2 == 0)
    if first == 0:
        lo = (None, True)
    if last % 2 == 0:
        hi = (b[last // 2], True)
    elif last // 2 + 1 < len(b):
        hi = (b[last // 2 + 1], False)
    else:
        hi = (None, True)
    return lo, hi


def _in_range(grid: Grid, lo, hi) -> list[int]:
    """Samples of ``grid`` whose segment meets the total range (lo, hi).

    The grid's own boundaries may differ from the range's.
    """
    b = grid.bounds
    low = lo[0] if lo[0] is not None else Decimal(-1)
    high = hi[0]

    def above_low(x: Decimal, inclusive_point: bool) -> bool:
        return x > low or (x == low and lo[1] and inclusive_point)

    def below_high(x: Decimal, inclusive_point: bool) -> bool:
        return high is None or x < high or (x == high and hi[1] and inclusive_point)

    out = []
    for idx, s in enumerate(grid.samples):
        i = s.segment // 2
        if s.segment % 2 == 0:
            if above_low(b[i], True) and below_high(b[i], True):
                out.append(idx)
        else:
            start = b[i]
            end = b[i + 1] if i + 1 < len(b) else None
            # the open interval (start, end) meets the range when start < high and end > low
            if (high is None or start < high) and (end is None or end > low):
                out.append(idx)
    return out


def _blocked_alike(pair: tuple[Summary, Summary]) -> bool:
    """Both versions refuse the order (the reasons may differ)."""
    return pair[0].outcome in ("blocked", "error") and pair[1].outcome in ("blocked", "error")


def _placeable(pair: tuple[Summary, Summary]) -> bool:
    """A change that lets an order through on at least one side.

    Orders both versions block alike are then beside the point.
    """
    return pair[0].outcome not in ("blocked", "error") or pair[1].outcome not in (
        "blocked",
        "error",
    )


def _neutral(grid: Grid, order_type: str, lines: LineScenario, lo, hi) -> bool:
    """Orders of this type and lines in this range are blocked (or refused) the same way by both
    versions.  A grid explored with other line scenarios must block all of them alike."""
    indices = [i for i, s in enumerate(grid.scenarios) if s.coordinates == lines.coordinates]
    for index in indices or range(len(grid.scenarios)):
        pairs = grid.pairs.get((order_type, index))
        if pairs is not None and not all(_blocked_alike(pairs[i]) for i in _in_range(grid, lo, hi)):
            return False
    return True


def _who(
    classes: list[BuyerClass],
    grids,
    affected: set[int],
    lo,
    hi,
    types,
    scenario: LineScenario,
    ignore_blocked: bool = True,
) -> str:
    def neutral(ci: int) -> bool:
        if not ignore_blocked:
            return False
        grid = grids[id(classes[ci])]
        return all(_neutral(grid, t, scenario, lo, hi) for t in (types or ORDER_TYPES))

    def covers(members: list[int]) -> bool:
        return all(ci in affected or neutral(ci) for ci in members) and any(
            ci in affected for ci in members
        )

    remaining = set(affected)
    names = []
    companies: dict[str, list[int]] = {}
    for ci, c in enumerate(classes):
        companies.setdefault(c.company, []).append(ci)
    several = len(companies) > 1
    if len(classes) > 1 and covers(list(range(len(classes)))):
        return "all buyers"
    for members in companies.values():
        if not (set(members) & remaining):
            continue
        if len(members) > 1 and covers(members):
            names.append(f"all buyers of {classes[members[0]].company_name}")
            remaining -= set(members)
            continue
        groups: dict[str, list[int]] = {}
        for ci in members:
            if classes[ci].active_group:
                groups.setdefault(classes[ci].active_group, []).append(ci)
        for group, gmembers in groups.items():
            if set(gmembers) & remaining and covers(gmembers):
                label = classes[gmembers[0]].group_label or group
                names.append(
                    f"{label} members"
                    + (f" of {classes[gmembers[0]].company_name}" if several else "")
                )
                remaining -= set(gmembers)
        roles: dict[str, list[int]] = {}
        for ci in members:
            roles.setdefault(classes[ci].role, []).append(ci)
        for rmembers in roles.values():
            if (
                len(rmembers) > 1
                and set(rmembers) <= remaining | {ci for ci in rmembers if neutral(ci)}
                and set(rmembers) & remaining
            ):
                names.append(
                    role_phrase(classes[rmembers[0]].role_label)
                    + (f" of {classes[rmembers[0]].company_name}" if several else "")
                )
                remaining -= set(rmembers)
    for ci in sorted(remaining):
        names.append(classes[ci].name)
    return _and(names)
