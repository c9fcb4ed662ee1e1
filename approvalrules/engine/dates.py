"""The rule set's calendar: its time zone, an order's date, validity windows, fixed expiry dates.

Every date a rule set writes (``order_date`` conditions, ``valid_from`` /
``valid_until``, ``expiry.date``) is a calendar date in the rule set's
``time_zone`` (UTC unless it names an IANA zone).  An order's date is the date
of its submission instant (the evaluation's ``now``, or the original submission
when an order is decided again) in that zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: the zone of a rule set that names none
DEFAULT_TIME_ZONE = "UTC"


def time_zone(name: str | None) -> tzinfo:
    """The zone a rule set names (``time_zone``), UTC without one.

    Raises ``ValueError`` for a name the zone database does not know (the
    semantic check reports it before any policy is compiled).
    """
    if not name or name == DEFAULT_TIME_ZONE:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def time_zone_problem(name: str) -> str | None:
    """Why ``name`` is not a usable time zone, or None when it is."""
    try:
        time_zone(name)
    except ValueError:
        return (
            f"time_zone {name!r} is not an IANA time zone; write a name like Europe/Berlin, "
            "America/New_York or UTC"
        )
    return None


def local_date(instant: datetime, zone: tzinfo) -> date:
    """The calendar date of ``instant`` in ``zone``."""
    return instant.astimezone(zone).date()


def parse_day(text: str) -> date:
    """``2026-03-31`` as a date; ``ValueError`` for a date that does not exist (2026-02-30)."""
    return date.fromisoformat(str(text))


def date_problem(text: Any) -> str | None:
    """Why ``text`` is not a real calendar date, or None."""
    try:
        parse_day(text)
    except ValueError:
        return f"{text!r} is not a calendar date; write YYYY-MM-DD, e.g. 2026-03-31"
    return None


@dataclass(frozen=True, slots=True)
class Validity:
    """``valid_from`` / ``valid_until`` of a step, limit or budget: both inclusive, either open."""

    valid_from: date | None = None
    valid_until: date | None = None

    def holds_on(self, day: date) -> bool:
        """Whether the entry applies to an order dated ``day``."""
        if self.valid_from is not None and day < self.valid_from:
            return False
        return self.valid_until is None or day <= self.valid_until

    def text(self) -> str:
        """``from 2026-01-01 until 2026-06-30`` (either end may be missing)."""
        parts = []
        if self.valid_from is not None:
            parts.append(f"from {self.valid_from.isoformat()}")
        if self.valid_until is not None:
            parts.append(f"until {self.valid_until.isoformat()}")
        return " ".join(parts)

    def condition(self) -> dict[str, dict[str, str]]:
        """The same window as an ``order_date`` condition (a step's window joins its ``when``)."""
        spec = {}
        if self.valid_from is not None:
            spec["gte"] = self.valid_from.isoformat()
        if self.valid_until is not None:
            spec["lte"] = self.valid_until.isoformat()
        return {"order_date": spec}


def validity_of(spec: Mapping[str, Any] | None) -> Validity | None:
    """The validity window an entry declares, or None when it declares none (always valid)."""
    if not spec:
        return None
    start, end = spec.get("valid_from"), spec.get("valid_until")
    if start is None and end is None:
        return None
    return Validity(
        parse_day(start) if start is not None else None,
        parse_day(end) if end is not None else None,
    )


def with_validity(
    condition: Mapping[str, Any] | None, validity: Validity | None
) -> Mapping[str, Any] | None:
    """A step's condition with its validity window joined in (an ``order_date`` test), so that
    evaluation, explanations, descriptions and the diff all see the window."""
    if validity is None:
        return condition
    window = validity.condition()
    if not condition:
        return window
    if "order_date" in condition:
        return {"all": [window, dict(condition)]}
    return {**window, **condition}


def deadline(text: str, zone: tzinfo) -> datetime:
    """A fixed expiry (``expiry.date``) as a UTC instant.

    A date means the end of that day in ``zone`` (the first instant of the next
    day); a date-time with an offset is taken as written.
    """
    text = str(text)
    if "T" in text:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)
    next_day = parse_day(text) + timedelta(days=1)
    return datetime.combine(next_day, time(0), tzinfo=zone).astimezone(UTC)


def deadline_problem(text: Any) -> str | None:
    """Why ``text`` is not a usable expiry date, or None."""
    try:
        deadline(text, UTC)
    except ValueError:
        return (
            f"{text!r} is not a date or a date-time; write 2026-03-31 or 2026-03-31T17:00:00+01:00"
        )
    return None


def earliest(instants: Iterable[datetime | None]) -> datetime | None:
    """The earliest of the instants given, ignoring None; None when there are none."""
    found = [instant for instant in instants if instant is not None]
    return min(found) if found else None
