"""Date bands: the order dates at which a decision can change, and one sample instant per band.

Decisions depend on an order's date only through ``order_date`` tests (a
step's ``valid_from`` / ``valid_until`` is one, joined into its condition)
and the validity windows of the order limit and budgets.  Each such date is
an edge: the first instant of the day where the test starts or stops to
hold, in the time zone of the version that writes it.  Between two edges
every date decides alike, so the behavioural diff explores one instant per
band and says which dates a change covers ("orders dated from 2026-04-01
until 2026-06-30 over 500 ...").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from ..engine import Policy
from ..engine.conditions import date_edges as condition_date_edges
from ..engine.durations import isoformat

#: bands explored at most; beyond, the diff explores the given instant alone and says so
MAX_BANDS = 64


@dataclass(frozen=True)
class DateBand:
    """Submission instants ``[start, end)`` (None: unbounded) that every version decides alike;
    ``sample`` is the instant the diff evaluates orders at."""

    start: datetime | None
    end: datetime | None
    sample: datetime

    def text(self, zone: tzinfo) -> str:
        """``dated from 2026-04-01 until 2026-06-30`` (days in ``zone``, both inclusive); when
        an end is no midnight there (two versions in different zones), ``submitted from
        2026-12-27T23:00:00Z before 2026-12-28T00:00:00Z``."""
        ends = [t for t in (self.start, self.end) if t is not None]
        if all(t.astimezone(zone).time() == time(0) for t in ends):
            parts = []
            if self.start is not None:
                parts.append(f"from {self.start.astimezone(zone).date().isoformat()}")
            if self.end is not None:
                last = self.end.astimezone(zone).date() - timedelta(days=1)
                parts.append(f"until {last.isoformat()}")
            return "dated " + " ".join(parts)
        parts = []
        if self.start is not None:
            parts.append(f"from {isoformat(self.start)}")
        if self.end is not None:
            parts.append(f"before {isoformat(self.end)}")
        return "submitted " + " ".join(parts)

    def as_dict(self) -> dict:
        return {
            "from": isoformat(self.start) if self.start is not None else None,
            "until": isoformat(self.end) if self.end is not None else None,
            "sample": isoformat(self.sample),
        }


def _midnight(day_: date, zone: tzinfo) -> datetime:
    return datetime.combine(day_, time(0), tzinfo=zone).astimezone(UTC)


def date_edges(policy: Policy) -> set[datetime]:
    """The instants (UTC) at which the order's date starts or stops satisfying a date test of
    ``policy``: the midnights, in its ``time_zone``, that begin each day a test changes on."""
    conditions = [step.condition for step in policy.steps]
    conditions += [rule.condition for rule in policy.deny + policy.bypass]
    days: set[date] = set().union(*(condition_date_edges(c) for c in conditions))
    windows = [policy.order_limit_validity] + [budget.validity for budget in policy.budgets]
    for window in windows:
        if window is None:
            continue
        if window.valid_from is not None:
            days.add(window.valid_from)
        if window.valid_until is not None:
            days.add(window.valid_until + timedelta(days=1))
    return {_midnight(d, policy.time_zone) for d in days}


def date_bands(policies: Iterable[Policy], now: datetime) -> list[DateBand]:
    """The bands of submission instants the versions decide alike, each with a sample: ``now``
    for the band that holds it, else the band's first instant (the day before the first edge
    for the band before it).  One unbounded band when no version looks at dates."""
    edges = sorted(set().union(*(date_edges(p) for p in policies)))
    if not edges:
        return [DateBand(None, None, now)]
    starts: list[datetime | None] = [None, *edges]
    ends: list[datetime | None] = [*edges, None]
    bands = []
    for start, end in zip(starts, ends, strict=True):
        inside = (start is None or start <= now) and (end is None or now < end)
        if inside:
            sample = now
        elif start is None:
            sample = end - timedelta(days=1)
        else:
            sample = start
        bands.append(DateBand(start, end, sample))
    return bands
